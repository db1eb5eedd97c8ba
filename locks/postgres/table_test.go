package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/postgres"
)

// fast are short timings for tests.
var fast = []locks.Option{
	locks.WithTTL(2 * time.Second),
	locks.WithRenewEvery(200 * time.Millisecond),
	locks.WithPollInterval(10 * time.Millisecond),
}

func newLocker(t testing.TB, pool *pgxpool.Pool, owner string, cfg postgres.Config, opts ...locks.Option) *postgres.Locker {
	t.Helper()
	opts = append(append(append([]locks.Option(nil), fast...), locks.WithOwner(owner)), opts...)
	l, err := postgres.New(context.Background(), pool, cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLockerDefaults(t *testing.T) {
	pool := newPool(t)
	l, err := postgres.New(context.Background(), pool, postgres.Config{})
	if err != nil {
		t.Fatal(err)
	}
	o := l.Options()
	if o.TTL != 30*time.Second || o.RenewEvery != 10*time.Second || o.PollInterval != 500*time.Millisecond {
		t.Errorf("defaults = %v/%v/%v, want Locker's 30s/10s/0.5s", o.TTL, o.RenewEvery, o.PollInterval)
	}
	if c := l.Config(); c.Table != "locks" || c.Clock != postgres.ClockDB {
		t.Errorf("config = %+v", c)
	}
	if _, err := postgres.New(context.Background(), pool, postgres.Config{Clock: "sundial"}); err == nil {
		t.Error("unknown clock source accepted")
	}
}

// N clients contending on one counter through Run lose no increment, and
// the tokens of successive grants strictly increase.
func TestLockerCounterNoLostIncrement(t *testing.T) {
	leakCheck(t)
	pool := newPool(t)
	key := testKey(t)
	const clients, rounds = 5, 10

	var counter atomic.Int64
	var mu sync.Mutex
	var tokens []locks.Token
	var wg sync.WaitGroup
	errs := make(chan error, clients*rounds)
	for c := range clients {
		l := newLocker(t, pool, fmt.Sprintf("c%d", c), postgres.Config{})
		wg.Go(func() {
			for range rounds {
				errs <- locks.Run(ctxTimeout(t, 30*time.Second), l, key, func(ctx context.Context, lease locks.Lease) error {
					mu.Lock()
					tokens = append(tokens, lease.Token())
					mu.Unlock()
					v := counter.Load() // read, wait, write: loses increments without exclusion
					time.Sleep(time.Millisecond)
					counter.Store(v + 1)
					return nil
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := counter.Load(); got != clients*rounds {
		t.Errorf("counter = %d, want %d", got, clients*rounds)
	}
	for i := 1; i < len(tokens); i++ {
		if tokens[i] <= tokens[i-1] {
			t.Fatalf("token %d (%v) not above the one before (%v)", i, tokens[i], tokens[i-1])
		}
	}
}

func TestLockerTryAcquireWhileHeld(t *testing.T) {
	pool := newPool(t)
	key := testKey(t)
	a := newLocker(t, pool, "a", postgres.Config{})
	b := newLocker(t, pool, "b", postgres.Config{})
	ctx := ctxTimeout(t, 10*time.Second)

	la, err := a.TryAcquire(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.TryAcquire(ctx, key); !errors.Is(err, locks.ErrNotAcquired) {
		t.Fatalf("TryAcquire while held: %v, want ErrNotAcquired", err)
	}
	// Two leases of the same owner are two holders too (one guid each).
	if _, err := a.TryAcquire(ctx, key); !errors.Is(err, locks.ErrNotAcquired) {
		t.Fatalf("second TryAcquire by the same owner: %v, want ErrNotAcquired", err)
	}
	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	lb, err := b.TryAcquire(ctx, key)
	if err != nil {
		t.Fatalf("TryAcquire after release: %v", err)
	}
	if lb.Token() <= la.Token() {
		t.Errorf("token %v after %v", lb.Token(), la.Token())
	}
	if err := lb.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// A blocking Acquire with a wait timeout gives up with ErrNotAcquired.
func TestLockerWaitTimeout(t *testing.T) {
	pool := newPool(t)
	key := testKey(t)
	a := newLocker(t, pool, "a", postgres.Config{})
	b := newLocker(t, pool, "b", postgres.Config{}, locks.WithWaitTimeout(150*time.Millisecond))
	ctx := ctxTimeout(t, 10*time.Second)
	if _, err := a.Acquire(ctx, key); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := b.Acquire(ctx, key); !errors.Is(err, locks.ErrNotAcquired) {
		t.Fatalf("Acquire past its wait timeout: %v", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Errorf("gave up after %v", d)
	}
}

// holderOf reads locked_by of key.
func holderOf(t *testing.T, pool *pgxpool.Pool, table, key string) *string {
	t.Helper()
	var by *string
	if err := pool.QueryRow(context.Background(), "SELECT locked_by FROM "+table+" WHERE key = $1", key).Scan(&by); err != nil {
		t.Fatal(err)
	}
	return by
}

// After a's lease expired and b took the row, a can neither renew nor
// release it, and b keeps it.
func TestLockerExpiredHolderLosesToNewOwner(t *testing.T) {
	leakCheck(t)
	pool := newPool(t)
	key := testKey(t)
	a := newLocker(t, pool, "a", postgres.Config{}, locks.WithTTL(time.Second))
	b := newLocker(t, pool, "b", postgres.Config{})
	ctx := ctxTimeout(t, 10*time.Second)

	la, err := a.Acquire(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	// Unexpired and renewed: still ours, even though time passes.
	if err := la.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	// Expired, but nobody took it: Locker's renew still succeeds.
	if err := la.Renew(ctx); err != nil {
		t.Fatalf("renew of an expired row nobody took: %v", err)
	}
	time.Sleep(1100 * time.Millisecond)

	lb, err := b.TryAcquire(ctx, key)
	if err != nil {
		t.Fatalf("TryAcquire of an expired row: %v", err)
	}
	if lb.Token() <= la.Token() {
		t.Errorf("token %v after %v", lb.Token(), la.Token())
	}
	select {
	case <-la.Lost():
		t.Fatal("Lost closed before the holder found out")
	default:
	}

	err = la.Renew(ctx)
	var lost *locks.LostError
	if !errors.Is(err, locks.ErrLockLost) || !errors.As(err, &lost) || lost.Key != key {
		t.Fatalf("renew after the row was taken: %v, want ErrLockLost", err)
	}
	select {
	case <-la.Lost():
	default:
		t.Fatal("Lost not closed after a failed renew")
	}
	if !errors.Is(la.Err(), locks.ErrLockLost) {
		t.Errorf("Err() = %v", la.Err())
	}

	// Release by the old holder is refused and changes nothing.
	if err := la.Release(ctx); !errors.Is(err, locks.ErrLockLost) {
		t.Fatalf("release by a non-owner: %v, want ErrLockLost", err)
	}
	by := holderOf(t, pool, "locks", key)
	if by == nil || *by != lb.(*postgres.Lease).LockedBy() {
		t.Fatalf("locked_by = %v after a refused release, want b's %q", by, lb.(*postgres.Lease).LockedBy())
	}
	if err := lb.Renew(ctx); err != nil {
		t.Fatalf("b's renew: %v", err)
	}
	if err := lb.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if by := holderOf(t, pool, "locks", key); by != nil {
		t.Fatalf("locked_by = %q after release", *by)
	}
}

// Run cancels fn's context when the row is stolen from outside, within a
// renewal interval or so (the gem raises LockStolen in the block's thread
// at its next renew, locker.rb line 83), and returns ErrLockLost without
// releasing.
func TestLockerRunCancelledOnSteal(t *testing.T) {
	leakCheck(t)
	pool := newPool(t)
	key := testKey(t)
	l := newLocker(t, pool, "victim", postgres.Config{})
	ctx := ctxTimeout(t, 10*time.Second)

	stolen := make(chan struct{})
	err := locks.Run(ctx, l, key, func(ctx context.Context, lease locks.Lease) error {
		if _, err := pool.Exec(ctx, "UPDATE locks SET locked_by = 'thief', sequence = sequence + 1 WHERE key = $1", key); err != nil {
			return err
		}
		close(stolen)
		at := time.Now()
		select {
		case <-ctx.Done():
			// The next renewal is due at most RenewEvery after the steal;
			// it takes a round trip, and the machine is shared.
			if d, bound := time.Since(at), 2*l.Options().RenewEvery+time.Second; d > bound {
				return fmt.Errorf("fn's context ended %v after the steal, later than %v", d, bound)
			}
			if !errors.Is(lease.Err(), locks.ErrLockLost) {
				return fmt.Errorf("context ended but the lease says %v", lease.Err())
			}
			return ctx.Err()
		case <-time.After(5 * time.Second):
			return errors.New("fn's context not cancelled after the row was stolen")
		}
	})
	select {
	case <-stolen:
	default:
		t.Fatalf("Run: %v", err)
	}
	if !errors.Is(err, locks.ErrLockLost) {
		t.Fatalf("Run after a steal: %v, want ErrLockLost", err)
	}
	var fnErr *locks.FnError
	if errors.As(err, &fnErr) {
		t.Fatalf("Run returned fn's error, not the loss: %v", err)
	}
	if by := holderOf(t, pool, "locks", key); by == nil || *by != "thief" {
		t.Fatalf("locked_by = %v, the thief's row was touched", by)
	}
}

func TestLockerTokensStrictlyIncrease(t *testing.T) {
	pool := newPool(t)
	key := testKey(t)
	ls := []*postgres.Locker{
		newLocker(t, pool, "a", postgres.Config{}),
		newLocker(t, pool, "b", postgres.Config{}),
	}
	ctx := ctxTimeout(t, 10*time.Second)
	var last locks.Token
	for i := range 10 {
		lease, err := ls[i%2].Acquire(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if lease.Token() <= last {
			t.Fatalf("grant %d: token %v after %v", i, lease.Token(), last)
		}
		last = lease.Token()
		if err := lease.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLockerCancelledContextStopsAcquire(t *testing.T) {
	leakCheck(t)
	pool := newPool(t)
	key := testKey(t)
	a := newLocker(t, pool, "a", postgres.Config{})
	b := newLocker(t, pool, "b", postgres.Config{})
	if _, err := a.Acquire(ctxTimeout(t, 5*time.Second), key); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, err := b.Acquire(ctx, key)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire with a cancelled context: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Acquire returned %v after the cancel", d-200*time.Millisecond)
	}
}

// With clock=client, a client whose clock runs a minute ahead takes a row
// that is still held; with clock=db the same client cannot.
func TestLockerClockSkewClientVersusDB(t *testing.T) {
	pool := newPool(t)
	ahead := locks.WithClock(skewedClock{offset: time.Minute})
	ctx := ctxTimeout(t, 10*time.Second)
	for _, tc := range []struct {
		clock      postgres.ClockSource
		twoHolders bool
	}{
		{postgres.ClockClient, true},
		{postgres.ClockDB, false},
	} {
		t.Run(string(tc.clock), func(t *testing.T) {
			key := testKey(t)
			cfg := postgres.Config{Clock: tc.clock}
			honest := newLocker(t, pool, "honest", cfg, locks.WithTTL(10*time.Second))
			skewed := newLocker(t, pool, "skewed", cfg, ahead)
			held, err := honest.Acquire(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			_, err = skewed.TryAcquire(ctx, key)
			switch {
			case tc.twoHolders && err != nil:
				t.Fatalf("skewed client did not take the held row: %v", err)
			case !tc.twoHolders && !errors.Is(err, locks.ErrNotAcquired):
				t.Fatalf("skewed client: %v, want ErrNotAcquired", err)
			}
			// The honest holder believes it holds the lock until it renews.
			err = held.Renew(ctx)
			if tc.twoHolders != errors.Is(err, locks.ErrLockLost) {
				t.Fatalf("honest holder's renew: %v", err)
			}
		})
	}
}

func TestLockerCustomTable(t *testing.T) {
	pool := newPool(t)
	ctx := ctxTimeout(t, 10*time.Second)
	if _, err := pool.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS locksim`); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"SomeOtherLock", "locksim.mutexes"} {
		l := newLocker(t, pool, "a", postgres.Config{Table: table})
		// A second locker on the existing table.
		newLocker(t, pool, "b", postgres.Config{Table: table})
		lease, err := l.Acquire(ctx, "k")
		if err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		var n int
		q := fmt.Sprintf(`SELECT count(*) FROM %s WHERE locked_by IS NOT NULL`, map[string]string{
			"SomeOtherLock": `"SomeOtherLock"`, "locksim.mutexes": `locksim.mutexes`}[table])
		if err := pool.QueryRow(ctx, q).Scan(&n); err != nil || n != 1 {
			t.Fatalf("%s: %d held rows, %v", table, n, err)
		}
		if err := lease.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLockerBackendError(t *testing.T) {
	pool, err := pgxpool.New(context.Background(), "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	_, err = postgres.New(ctxTimeout(t, 5*time.Second), pool, postgres.Config{})
	var be *locks.BackendError
	if !errors.As(err, &be) || be.Backend != "postgres" {
		t.Fatalf("New on a closed port: %v, want a postgres *locks.BackendError", err)
	}
}
