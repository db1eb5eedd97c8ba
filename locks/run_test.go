package locks_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/locksim/locksim/locks"
)

func TestRunSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		var token locks.Token
		err := locks.Run(t.Context(), f, "k", func(ctx context.Context, lease locks.Lease) error {
			if !f.held("k") {
				t.Error("fn runs without the lock held")
			}
			token = lease.Token()
			time.Sleep(3500 * time.Millisecond) // three renewals at 1 s
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if token != 1 {
			t.Errorf("token %d", token)
		}
		if f.held("k") {
			t.Error("lock still held after Run")
		}
		if got := f.renews.Load(); got != 3 {
			t.Errorf("%d renewals in 3.5 s at 1 s, want 3", got)
		}
	})
}

func TestRunFnErrorAndPanic(t *testing.T) {
	boom := errors.New("boom")
	for _, c := range []struct {
		name string
		fn   func(context.Context, locks.Lease) error
		err  error
		pnc  any
	}{
		{"error", func(context.Context, locks.Lease) error { return boom }, boom, nil},
		{"panic", func(context.Context, locks.Lease) error { panic("kaboom") }, nil, "kaboom"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFake()
			err := locks.Run(t.Context(), f, "k", c.fn)
			var fnErr *locks.FnError
			if !errors.As(err, &fnErr) {
				t.Fatalf("Run: %v, want a *FnError", err)
			}
			if errors.Is(err, locks.ErrLockLost) {
				t.Error("a FnError matches ErrLockLost")
			}
			if fnErr.Err != c.err || fnErr.Panic != c.pnc {
				t.Errorf("FnError{Err: %v, Panic: %v}", fnErr.Err, fnErr.Panic)
			}
			if c.pnc != nil && len(fnErr.Stack) == 0 {
				t.Error("no stack for a panic")
			}
			if c.err != nil && !errors.Is(err, c.err) {
				t.Error("FnError does not unwrap to fn's error")
			}
			if f.held("k") {
				t.Error("lock not released after fn failed")
			}
		})
	}
}

// TestRunLostByRenew: the lock is stolen; the next renewal finds out,
// fn's context is cancelled and Run returns ErrLockLost without releasing.
func TestRunLostByRenew(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		start := time.Now()
		var cancelledAt time.Duration
		err := locks.Run(t.Context(), f, "k", func(ctx context.Context, lease locks.Lease) error {
			time.Sleep(1500 * time.Millisecond)
			f.steal("k")
			<-ctx.Done()
			cancelledAt = time.Since(start)
			return errors.New("fn saw its context end")
		})
		if !errors.Is(err, locks.ErrLockLost) {
			t.Fatalf("Run: %v, want ErrLockLost", err)
		}
		var fnErr *locks.FnError
		if errors.As(err, &fnErr) {
			t.Error("a lost lock came back as a FnError")
		}
		if cancelledAt != 2*time.Second {
			t.Errorf("fn cancelled at %v, want at the renewal at 2s", cancelledAt)
		}
		if f.releases.Load() != 0 {
			t.Error("Run released a lost lock")
		}
	})
}

// TestRunLostSignal: the backend notices the loss itself (Lost closed)
// between renewals.
func TestRunLostSignal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		start := time.Now()
		err := locks.Run(t.Context(), f, "k", func(ctx context.Context, lease locks.Lease) error {
			go func() {
				time.Sleep(300 * time.Millisecond)
				lease.(*fakeLease).sig.Lose("session gone")
			}()
			<-ctx.Done()
			if d := time.Since(start); d != 300*time.Millisecond {
				t.Errorf("fn cancelled at %v, want 300ms", d)
			}
			return nil
		})
		var lost *locks.LostError
		if !errors.As(err, &lost) || lost.Reason != "session gone" {
			t.Fatalf("Run: %v, want the lease's LostError", err)
		}
	})
}

// TestRunRenewErrorsRetried: renewal errors other than a loss (a server
// down) are retried at the next tick; the lease decides when it is lost.
func TestRunRenewErrorsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		down := &locks.BackendError{Backend: "fake", Op: "renew", Err: errors.New("unreachable")}
		f.renewErr = func(n int) error {
			if n <= 2 {
				return down
			}
			return nil
		}
		err := locks.Run(t.Context(), f, "k", func(ctx context.Context, _ locks.Lease) error {
			time.Sleep(4500 * time.Millisecond)
			return ctx.Err()
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := f.renews.Load(); got != 4 {
			t.Errorf("%d renewals, want 4", got)
		}
	})
}

func TestRunAcquireError(t *testing.T) {
	f := newFake()
	f.acquireErr = &locks.BackendError{Backend: "fake", Op: "acquire", Err: errors.New("down")}
	called := false
	err := locks.Run(t.Context(), f, "k", func(context.Context, locks.Lease) error { called = true; return nil })
	var be *locks.BackendError
	if !errors.As(err, &be) || called {
		t.Fatalf("Run: %v (fn called: %v)", err, called)
	}
}

// TestRunReleaseBounded: a release that never answers holds Run for one
// TTL at most.
func TestRunReleaseBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.release = func(ctx context.Context, _ *fakeLease) error {
			<-ctx.Done()
			return &locks.BackendError{Backend: "fake", Op: "release", Err: context.Cause(ctx)}
		}
		start := time.Now()
		err := locks.Run(t.Context(), f, "k", func(context.Context, locks.Lease) error { return nil })
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Run: %v, want the release's deadline", err)
		}
		if d := time.Since(start); d != f.opts.TTL {
			t.Errorf("Run returned after %v, want TTL %v", d, f.opts.TTL)
		}
	})
}

// TestRunFnErrorWinsOverReleaseError: fn's error is the one reported.
func TestRunFnErrorWinsOverReleaseError(t *testing.T) {
	f := newFake()
	f.release = func(context.Context, *fakeLease) error { return errors.New("release failed") }
	boom := errors.New("boom")
	err := locks.Run(t.Context(), f, "k", func(context.Context, locks.Lease) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Run: %v", err)
	}
}

func TestTryRun(t *testing.T) {
	f := newFake()
	lease, err := f.TryAcquire(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	err = locks.TryRun(t.Context(), f, "k", func(context.Context, locks.Lease) error {
		t.Error("fn ran while the lock was held elsewhere")
		return nil
	})
	if !errors.Is(err, locks.ErrNotAcquired) {
		t.Fatalf("TryRun: %v, want ErrNotAcquired", err)
	}
	if err := lease.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	ran := false
	if err := locks.TryRun(t.Context(), f, "k", func(context.Context, locks.Lease) error { ran = true; return nil }); err != nil || !ran {
		t.Fatalf("TryRun on a free lock: %v, ran %v", err, ran)
	}
}

// TestRunWaitsForLock: Run blocks (Poll) until the holder releases.
func TestRunWaitsForLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		lease, _ := f.TryAcquire(t.Context(), "k")
		go func() {
			time.Sleep(950 * time.Millisecond)
			lease.Release(context.Background())
		}()
		start := time.Now()
		var token locks.Token
		if err := locks.Run(t.Context(), f, "k", func(_ context.Context, l locks.Lease) error { token = l.Token(); return nil }); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("acquired after %v, want 1s (the next poll after the release)", d)
		}
		if token != 2 {
			t.Errorf("token %d, want 2", token)
		}
	})
}

// TestRunLostWhileRenewHangs: a renewal stuck on a server that does not
// answer (a cut link) must not keep fn running once the lease says it is
// lost, and each renewal is bounded by the renew interval.
func TestRunLostWhileRenewHangs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		var hung atomic.Int32
		f.renewErr = func(n int) error {
			hung.Add(1)
			// Block like a renewal on a cut link: far longer than the test.
			time.Sleep(time.Hour)
			return nil
		}
		start := time.Now()
		err := locks.Run(t.Context(), f, "k", func(ctx context.Context, lease locks.Lease) error {
			go func() {
				// The first renewal starts at 1 s and hangs; the lease
				// learns of its loss (say its keepalive deadline passed).
				time.Sleep(1500 * time.Millisecond)
				lease.(*fakeLease).sig.Lose("keepalive deadline passed")
			}()
			<-ctx.Done()
			if d := time.Since(start); d != 1500*time.Millisecond {
				t.Errorf("fn cancelled at %v, want 1.5s", d)
			}
			return nil
		})
		if !errors.Is(err, locks.ErrLockLost) {
			t.Fatalf("Run: %v, want ErrLockLost", err)
		}
		if hung.Load() != 1 {
			t.Fatalf("%d renewals started, want 1", hung.Load())
		}
	})
}
