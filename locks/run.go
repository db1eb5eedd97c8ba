package locks

import (
	"context"
	"errors"
	"runtime/debug"
)

// Run holds key while fn runs: it acquires the lock (blocking), renews it
// every RenewEvery of the locker's options, cancels fn's context as soon as
// the lock is lost, and releases it when fn returns.
//
// It returns nil if fn succeeded and the lock was held throughout; an error
// matching ErrLockLost if the lock was lost while fn ran (whatever fn then
// returned); a *FnError if fn returned an error or panicked; or the error of
// acquiring or releasing the lock.
//
// Cancelling fn's context is all Run can do: code in fn that ignores its
// context keeps running after the loss, which is why writes to a protected
// resource should carry lease.Token().
func Run(ctx context.Context, l Locker, key string, fn func(ctx context.Context, lease Lease) error) error {
	lease, err := l.Acquire(ctx, key)
	if err != nil {
		return err
	}
	return hold(ctx, l.Options(), lease, fn)
}

// TryRun is Run with one attempt to acquire: it returns ErrNotAcquired at
// once, without running fn, if the lock is held elsewhere (Locker's
// non-blocking run, which skips the block).
func TryRun(ctx context.Context, l Locker, key string, fn func(ctx context.Context, lease Lease) error) error {
	lease, err := l.TryAcquire(ctx, key)
	if err != nil {
		return err
	}
	return hold(ctx, l.Options(), lease, fn)
}

func hold(ctx context.Context, o Options, lease Lease, fn func(ctx context.Context, lease Lease) error) error {
	fnCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The watcher cancels fn as soon as the lease says it is lost, even
	// while a renewal hangs on a server that does not answer.
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		select {
		case <-fnCtx.Done():
		case <-lease.Lost():
			cancel()
		}
	}()
	renewerDone := make(chan struct{})
	go func() {
		defer close(renewerDone)
		for {
			t := o.Clock.NewTimer(o.RenewEvery)
			select {
			case <-fnCtx.Done():
				t.Stop()
				return
			case <-t.C():
				// One renewal may take until the next one is due, no longer.
				rctx, rcancel := WithTimeout(fnCtx, o.Clock, o.RenewEvery)
				err := lease.Renew(rctx)
				rcancel()
				if errors.Is(err, ErrLockLost) {
					cancel()
					return
				}
				// Other renewal errors (a timeout, a server down) are retried
				// at the next tick; the lease itself decides when it is lost.
			}
		}
	}()

	fnErr := callFn(fnCtx, lease, fn)
	cancel()
	<-renewerDone
	<-watcherDone

	if lostErr := lease.Err(); lostErr != nil {
		return lostErr
	}
	// Release with the caller's context (fn's is already cancelled), even
	// if it ended, but for one TTL at most on the client's clock: after
	// that the lease has expired anyway, and a server that does not answer
	// must not hold Run forever.
	relCtx, relCancel := WithTimeout(context.WithoutCancel(ctx), o.Clock, o.TTL)
	relErr := lease.Release(relCtx)
	relCancel()
	if fnErr != nil {
		return fnErr
	}
	return relErr
}

func callFn(ctx context.Context, lease Lease, fn func(ctx context.Context, lease Lease) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &FnError{Panic: p, Stack: debug.Stack()}
		}
	}()
	if e := fn(ctx, lease); e != nil {
		return &FnError{Err: e}
	}
	return nil
}
