package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/postgres"
)

func newAdvisory(t testing.TB, opts ...locks.Option) *postgres.Advisory {
	t.Helper()
	opts = append([]locks.Option{locks.WithRenewEvery(100 * time.Millisecond)}, opts...)
	a, err := postgres.NewAdvisory(context.Background(), server.DSN(), postgres.AdvisoryConfig{}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// advisoryHolders reports how many sessions hold the advisory lock on key.
func advisoryHolders(t *testing.T, a *postgres.Advisory, key string) int {
	t.Helper()
	pool := newPool(t)
	space, h := a.LockKey(key)
	var n int
	err := pool.QueryRow(context.Background(),
		`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
		 AND classid = $1::int4::oid AND objid = $2::int4::oid AND objsubid = 2`, space, h).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAdvisoryCounterNoLostIncrement(t *testing.T) {
	leakCheck(t)
	key := testKey(t)
	const clients, rounds = 4, 8
	var counter atomic.Int64
	var mu sync.Mutex
	var tokens []locks.Token
	var wg sync.WaitGroup
	errs := make(chan error, clients*rounds)
	for range clients {
		a := newAdvisory(t)
		wg.Go(func() {
			for range rounds {
				errs <- locks.Run(ctxTimeout(t, 30*time.Second), a, key, func(ctx context.Context, lease locks.Lease) error {
					mu.Lock()
					tokens = append(tokens, lease.Token())
					mu.Unlock()
					v := counter.Load()
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

func TestAdvisoryTryAcquireWhileHeld(t *testing.T) {
	leakCheck(t)
	key := testKey(t)
	a := newAdvisory(t)
	ctx := ctxTimeout(t, 10*time.Second)
	la, err := a.TryAcquire(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.TryAcquire(ctx, key); !errors.Is(err, locks.ErrNotAcquired) {
		t.Fatalf("TryAcquire while held: %v, want ErrNotAcquired", err)
	}
	if n := advisoryHolders(t, a, key); n != 1 {
		t.Fatalf("%d holders, want 1", n)
	}
	if err := la.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if n := advisoryHolders(t, a, key); n != 0 {
		t.Fatalf("%d holders after release", n)
	}
	lb, err := a.TryAcquire(ctx, key)
	if err != nil {
		t.Fatalf("TryAcquire after release: %v", err)
	}
	if lb.Token() <= la.Token() {
		t.Errorf("token %v after %v", lb.Token(), la.Token())
	}
	if err := lb.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// Releasing twice is harmless.
	if err := lb.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// Another session cannot unlock the holder's advisory lock.
func TestAdvisoryReleaseByNonOwnerRefused(t *testing.T) {
	leakCheck(t)
	key := testKey(t)
	a := newAdvisory(t)
	ctx := ctxTimeout(t, 10*time.Second)
	lease, err := a.TryAcquire(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Release(ctx)
	pool := newPool(t)
	space, h := a.LockKey(key)
	var unlocked bool
	if err := pool.QueryRow(ctx, "SELECT pg_advisory_unlock($1::int4, $2::int4)", space, h).Scan(&unlocked); err != nil {
		t.Fatal(err)
	}
	if unlocked {
		t.Fatal("another session unlocked the holder's lock")
	}
	if _, err := a.TryAcquire(ctx, key); !errors.Is(err, locks.ErrNotAcquired) {
		t.Fatalf("TryAcquire after a refused foreign unlock: %v", err)
	}
}

// pg_terminate_backend on the holder's connection frees the lock; the next
// Renew finds out, and Run cancels fn and returns ErrLockLost.
func TestAdvisoryRunCancelledOnTerminatedBackend(t *testing.T) {
	leakCheck(t)
	key := testKey(t)
	a := newAdvisory(t)
	pool := newPool(t)
	ctx := ctxTimeout(t, 10*time.Second)

	var holder locks.Lease
	err := locks.Run(ctx, a, key, func(ctx context.Context, lease locks.Lease) error {
		holder = lease
		pid := lease.(*postgres.AdvisoryLease).BackendPID()
		var ok bool
		// With a timeout, pg_terminate_backend waits until the backend is gone.
		if err := pool.QueryRow(ctx, "SELECT pg_terminate_backend($1::int4, 5000)", int32(pid)).Scan(&ok); err != nil || !ok {
			return fmt.Errorf("pg_terminate_backend: %v, %v", ok, err)
		}
		// The lock is free for others at once, while this holder still
		// believes it holds it.
		other, err := a.TryAcquire(ctx, key)
		if err != nil {
			return fmt.Errorf("TryAcquire after the holder's backend died: %w", err)
		}
		defer other.Release(context.Background())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Second):
			return errors.New("fn's context not cancelled after the backend died")
		}
	})
	if !errors.Is(err, locks.ErrLockLost) {
		t.Fatalf("Run after pg_terminate_backend: %v, want ErrLockLost", err)
	}
	select {
	case <-holder.Lost():
	default:
		t.Fatal("Lost not closed")
	}
	if err := holder.Release(ctx); !errors.Is(err, locks.ErrLockLost) {
		t.Fatalf("release of a lost lease: %v", err)
	}
}

func TestAdvisoryTokensStrictlyIncrease(t *testing.T) {
	key := testKey(t)
	as := []*postgres.Advisory{newAdvisory(t), newAdvisory(t)}
	ctx := ctxTimeout(t, 10*time.Second)
	var last locks.Token
	for i := range 10 {
		var lease locks.Lease
		var err error
		if i%2 == 0 {
			lease, err = as[i%2].Acquire(ctx, key)
		} else {
			lease, err = as[i%2].TryAcquire(ctx, key)
		}
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

// A cancelled context stops an Acquire waiting in pg_advisory_lock, and the
// abandoned wait never turns into a grant.
func TestAdvisoryCancelledContextStopsAcquire(t *testing.T) {
	leakCheck(t)
	key := testKey(t)
	a := newAdvisory(t)
	held, err := a.Acquire(ctxTimeout(t, 5*time.Second), key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	if _, err := a.Acquire(ctx, key); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire with a cancelled context: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Acquire returned %v after the cancel", d-200*time.Millisecond)
	}
	if err := held.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := advisoryHolders(t, a, key); n != 0 {
		t.Fatalf("%d holders after the waiter was cancelled and the holder released", n)
	}
}

func TestAdvisoryWaitTimeout(t *testing.T) {
	leakCheck(t)
	key := testKey(t)
	a := newAdvisory(t)
	b := newAdvisory(t, locks.WithWaitTimeout(150*time.Millisecond))
	ctx := ctxTimeout(t, 10*time.Second)
	held, err := a.Acquire(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release(ctx)
	start := time.Now()
	if _, err := b.Acquire(ctx, key); !errors.Is(err, locks.ErrNotAcquired) {
		t.Fatalf("Acquire past its wait timeout: %v", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Errorf("gave up after %v", d)
	}
}

func TestAdvisoryLockKeyIsLockersCRC(t *testing.T) {
	a := newAdvisory(t)
	// Zlib.crc32("new-feed-checker") = 2304029242, above 2^31-1, so
	// Locker::Advisory subtracts 2^32.
	space, h := a.LockKey("new-feed-checker")
	if space != 1 || int64(h) != 2304029242-1<<32 {
		t.Errorf("LockKey = (%d, %d)", space, h)
	}
}
