package locks_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/locksim/locksim/locks"
)

func TestPoll(t *testing.T) {
	other := errors.New("server down")
	for _, c := range []struct {
		name      string
		wait      time.Duration // WaitTimeout
		freeAfter int           // attempts refused before success; -1: never
		err       error         // returned on the attempt after the refusals, if set
		cancelAt  time.Duration // cancel the context then, if set
		wantErr   error
		wantAt    time.Duration
		wantTries int
	}{
		{name: "free at once", freeAfter: 0, wantAt: 0, wantTries: 1},
		{name: "free after three polls", freeAfter: 3, wantAt: 300 * time.Millisecond, wantTries: 4},
		{name: "wait timeout", wait: 250 * time.Millisecond, freeAfter: -1, wantErr: locks.ErrNotAcquired, wantAt: 250 * time.Millisecond, wantTries: 4},
		{name: "context cancelled", freeAfter: -1, cancelAt: 150 * time.Millisecond, wantErr: context.Canceled, wantAt: 150 * time.Millisecond, wantTries: 2},
		{name: "other error at once", freeAfter: 1, err: other, wantErr: other, wantAt: 100 * time.Millisecond, wantTries: 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				o, err := locks.Apply(locks.Options{TTL: time.Second, RenewEvery: 300 * time.Millisecond, PollInterval: 100 * time.Millisecond, WaitTimeout: c.wait})
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				if c.cancelAt > 0 {
					time.AfterFunc(c.cancelAt, cancel)
				}
				tries := 0
				start := time.Now()
				lease, err := locks.Poll(ctx, o, func(context.Context) (locks.Lease, error) {
					tries++
					if c.freeAfter < 0 || tries <= c.freeAfter {
						return nil, locks.ErrNotAcquired
					}
					if c.err != nil {
						return nil, c.err
					}
					return &fakeLease{key: "k"}, nil
				})
				if !errors.Is(err, c.wantErr) || (c.wantErr == nil && lease == nil) {
					t.Fatalf("Poll: %v, %v; want error %v", lease, err, c.wantErr)
				}
				if d := time.Since(start); d != c.wantAt {
					t.Errorf("returned after %v, want %v", d, c.wantAt)
				}
				if tries != c.wantTries {
					t.Errorf("%d attempts, want %d", tries, c.wantTries)
				}
			})
		})
	}
}

// TestPollUsesClock: the wait timeout is measured on the injected clock,
// not the runtime's.
func TestPollUsesClock(t *testing.T) {
	clock := &manualClock{now: time.Unix(1000, 0)}
	o, err := locks.Apply(locks.Options{TTL: time.Second, RenewEvery: 300 * time.Millisecond, PollInterval: 100 * time.Millisecond, WaitTimeout: time.Second, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := locks.Poll(t.Context(), o, func(context.Context) (locks.Lease, error) { return nil, locks.ErrNotAcquired })
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // real time passes; the clock does not
	select {
	case err := <-done:
		t.Fatalf("Poll returned %v while its clock stood still", err)
	default:
	}
	for i := 0; i < 200; i++ {
		clock.Advance(100 * time.Millisecond)
		select {
		case err := <-done:
			if !errors.Is(err, locks.ErrNotAcquired) {
				t.Fatalf("Poll: %v", err)
			}
			return
		case <-time.After(time.Millisecond):
		}
	}
	t.Fatal("Poll did not give up after its clock passed the wait timeout")
}

func TestSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if err := locks.Sleep(t.Context(), locks.SystemClock{}, time.Second); err != nil || time.Since(start) != time.Second {
			t.Errorf("Sleep: %v after %v", err, time.Since(start))
		}
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(100*time.Millisecond, cancel)
		start = time.Now()
		if err := locks.Sleep(ctx, locks.SystemClock{}, time.Second); !errors.Is(err, context.Canceled) || time.Since(start) != 100*time.Millisecond {
			t.Errorf("cancelled Sleep: %v after %v", err, time.Since(start))
		}
	})
}

func TestWithTimeout(t *testing.T) {
	t.Run("fires on its clock", func(t *testing.T) {
		clock := &manualClock{now: time.Unix(1000, 0)}
		ctx, cancel := locks.WithTimeout(t.Context(), clock, time.Second)
		defer cancel()
		clock.Advance(999 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Fatal("done before its time")
		case <-time.After(20 * time.Millisecond):
		}
		clock.Advance(time.Millisecond)
		<-ctx.Done()
		if !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
			t.Errorf("cause %v", context.Cause(ctx))
		}
	})
	t.Run("cancel first", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := locks.WithTimeout(t.Context(), locks.SystemClock{}, time.Second)
			cancel()
			<-ctx.Done()
			if !errors.Is(context.Cause(ctx), context.Canceled) {
				t.Errorf("cause %v", context.Cause(ctx))
			}
			synctest.Wait() // the timer goroutine has exited
		})
	})
	t.Run("parent ends", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			parent, cancelParent := context.WithCancel(t.Context())
			ctx, cancel := locks.WithTimeout(parent, locks.SystemClock{}, time.Hour)
			defer cancel()
			cancelParent()
			<-ctx.Done()
			if !errors.Is(ctx.Err(), context.Canceled) {
				t.Errorf("err %v", ctx.Err())
			}
		})
	})
}
