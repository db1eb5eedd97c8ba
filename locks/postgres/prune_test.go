package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/locksim/locksim/checker"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/postgres"
	"github.com/locksim/locksim/resource"
)

// pruneTable is a lock table of the test's own: Prune deletes across the
// whole table, and the other tests' rows live in "locks".
func pruneTable(t *testing.T) string {
	return strings.ToLower(fmt.Sprintf("prune_%s_%d", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().UnixNano()))
}

// keysOf lists the keys of table.
func keysOf(t *testing.T, pool *pgxpool.Pool, table string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT key FROM `+pgx.Identifier{table}.Sanitize()+` ORDER BY key`)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// Prune selects as the gem's spec says: locked_until before the given
// time; later rows and rows never locked stay.
func TestLockerPruneSelection(t *testing.T) {
	pool := newPool(t)
	table := pruneTable(t)
	l := newLocker(t, pool, "a", postgres.Config{Table: table})
	ctx := ctxTimeout(t, 10*time.Second)
	now := time.Now()
	q := pgx.Identifier{table}.Sanitize()
	for i, age := range []time.Duration{2, 4, 6, 8} {
		if _, err := pool.Exec(ctx, `INSERT INTO `+q+` (key, locked_until) VALUES ($1, $2)`,
			fmt.Sprintf("key%d", i+1), now.Add(-age*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `INSERT INTO `+q+` (key) VALUES ('never-locked')`); err != nil {
		t.Fatal(err)
	}
	n, err := l.Prune(ctx, now.Add(-5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("Prune deleted %d rows, want 2", n)
	}
	if got, want := fmt.Sprint(keysOf(t, pool, table)), "[key1 key2 never-locked]"; got != want {
		t.Errorf("rows after Prune: %s, want %s", got, want)
	}
}

// memRecorder is a resource.Recorder that keeps the resource's decisions.
type memRecorder struct {
	mu     sync.Mutex
	start  time.Time
	events []history.Event
}

func (r *memRecorder) Record(e *history.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, *e)
}

func (r *memRecorder) Now() int64 { return int64(time.Since(r.start)) }

// After a prune deletes an expired row, its sequence starts again: the
// next holder's token is 1, below the token of a holder from before the
// prune. The checker flags the grant (fencing-lock); a resource fenced on
// tokens rejects the legitimate new holder's write and accepts the stale
// one's; the stale holder's renew finds no row (LockStolen).
func TestLockerPruneRestartsTokens(t *testing.T) {
	pool := newPool(t)
	table := pruneTable(t)
	key := testKey(t)
	cfg := postgres.Config{Table: table}
	a := newLocker(t, pool, "a", cfg, locks.WithTTL(time.Second), locks.WithRenewEvery(100*time.Millisecond))
	b := newLocker(t, pool, "b", cfg)
	ctx := ctxTimeout(t, 20*time.Second)
	rec := &memRecorder{start: time.Now()}
	// The history of the grants and of the resource's decisions, in the
	// order they happened, for the checker.
	ev := func(proc string, typ history.Type, f string, tok int64, hasTok bool) {
		rec.Record(&history.Event{T: rec.Now(), Proc: proc, Type: typ, F: f, Key: key, Token: tok, HasToken: hasTok})
	}

	// Three grants and releases, then a's fourth grant: token 4.
	for range 3 {
		lease, err := a.Acquire(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := lease.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ev("a", history.Invoke, history.FAcquire, 0, false)
	stale, err := a.Acquire(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	ev("a", history.OK, history.FAcquire, int64(stale.Token()), true)
	if stale.Token() != 4 {
		t.Fatalf("a's fourth grant: token %v, want 4", stale.Token())
	}
	store, err := resource.NewStore(resource.ModeWrites, rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Write(key, int64(stale.Token()), true, 1); err != nil {
		t.Fatalf("a's write with token %v: %v", stale.Token(), err)
	}

	// a is not renewed (a pause): its lease runs out and a prune deletes
	// the row.
	time.Sleep(1100 * time.Millisecond)
	n, err := a.Prune(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("Prune deleted %d rows, want 1 (a's expired row)", n)
	}

	ev("b", history.Invoke, history.FAcquire, 0, false)
	fresh, err := b.Acquire(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	ev("b", history.OK, history.FAcquire, int64(fresh.Token()), true)
	if fresh.Token() != 1 {
		t.Fatalf("first grant after the prune: token %v, want 1 (sequence restarted)", fresh.Token())
	}
	if fresh.Token() > stale.Token() {
		t.Fatalf("token %v after the prune is above %v from before", fresh.Token(), stale.Token())
	}

	// The fenced resource has seen token 4: it rejects b, the holder, and
	// accepts a, who no longer holds the lock.
	if err := store.Write(key, int64(fresh.Token()), true, 2); !errors.Is(err, resource.ErrStaleToken) {
		t.Fatalf("b's write with token %v after a's with %v: %v, want ErrStaleToken", fresh.Token(), stale.Token(), err)
	}
	if err := store.Write(key, int64(stale.Token()), true, 3); err != nil {
		t.Fatalf("a's stale write with token %v: %v, want accepted", stale.Token(), err)
	}

	// a's renew updates nothing: LockStolen.
	if err := stale.Renew(ctx); !errors.Is(err, locks.ErrLockLost) {
		t.Fatalf("a's renew after the prune: %v, want ErrLockLost", err)
	}
	ev("a", history.Info, history.FLost, int64(stale.Token()), true)

	// The checker sees b granted a token not above one granted before
	// b's acquire was invoked (fencing-lock), while a still believed it
	// held the lock (mutual exclusion).
	chk := checker.New(checker.Options{})
	for i := range rec.events {
		chk.Add(&rec.events[i])
	}
	res := chk.Finish()
	counts := res.Counts()
	if counts[checker.FencingLock] != 1 || counts[checker.MutualExclusion] != 1 {
		t.Fatalf("checker: %v (%+v), want one fencing-lock and one mutual-exclusion", counts, res.Violations)
	}
	if err := fresh.Release(ctx); err != nil {
		t.Fatal(err)
	}
}
