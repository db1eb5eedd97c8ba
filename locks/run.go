package locks

import (
	"context"
	"errors"
	"runtime/debug"
	"time"

	"github.com/locksim/locksim/locks/machine"
	holdm "github.com/locksim/locksim/locks/machine/hold"
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

// hold runs fn under lease: the hold loop of package locks/machine/hold
// (renewer, watcher, release deadline), driven here on goroutines over the
// lease, as the simulator drives the same machine over its models.
func hold(ctx context.Context, o Options, lease Lease, fn func(ctx context.Context, lease Lease) error) error {
	fnCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	sectionDone := make(chan struct{})
	result := make(chan error, 1)
	go func() { result <- driveHold(ctx, fnCtx, cancel, o, lease, sectionDone) }()
	fnErr := callFn(fnCtx, lease, fn)
	close(sectionDone)
	loopErr, released := <-result, true
	if errors.Is(loopErr, errNotReleased) {
		released = false
	}
	if !released {
		// Lost before the release: whatever fn returned.
		if lostErr := lease.Err(); lostErr != nil {
			return lostErr
		}
		return &LostError{Key: lease.Key(), Reason: "renewal found the lock lost"}
	}
	if fnErr != nil {
		return fnErr
	}
	return loopErr
}

// errNotReleased is driveHold's way of saying that the hold ended lost
// without a release.
var errNotReleased = errors.New("locks: not released")

// driveHold carries out the hold machine's outputs until the hold is over
// and returns the release's error, or errNotReleased.
func driveHold(ctx, fnCtx context.Context, cancel context.CancelFunc, o Options, lease Lease, sectionDone <-chan struct{}) error {
	m := holdm.New(holdm.Config{RenewEvery: o.RenewEvery, TTL: o.TTL})
	var (
		timer     Timer
		timerC    <-chan time.Time
		lost      = lease.Lost()
		section   = sectionDone
		renewDone = make(chan machine.Result, 1)
		relErr    error
		buf       [4]holdm.Output
	)
	stopTimer := func() {
		if timer != nil {
			timer.Stop()
			timer, timerC = nil, nil
		}
	}
	defer stopTimer()
	// pollLost gives the machine a loss the lease already knows, before
	// an input that decides on it (the section's end, the renewer's).
	pollLost := func(out []holdm.Output) []holdm.Output {
		if lost == nil {
			return out
		}
		select {
		case <-lost:
			lost = nil
			return m.Lost(out)
		default:
			return out
		}
	}
	var relBuf [1]holdm.Output
	out := m.Start(buf[:0])
	for {
		next := out
		out = nil
		for _, op := range next {
			switch op.Kind {
			case holdm.OutTimer:
				stopTimer()
				timer = o.Clock.NewTimer(op.D)
				timerC = timer.C()
			case holdm.OutRenew:
				d := op.D
				go func() {
					// One renewal may take until the next one is due, no
					// longer.
					rctx, rcancel := WithTimeout(fnCtx, o.Clock, d)
					err := lease.Renew(rctx)
					rcancel()
					renewDone <- result(err)
				}()
			case holdm.OutCancel:
				stopTimer()
				cancel()
			case holdm.OutRelease:
				// With the caller's context (fn's is cancelled), even if
				// it ended, but for one TTL at most on the client's clock:
				// a server that does not answer must not hold Run forever.
				relCtx, relCancel := WithTimeout(context.WithoutCancel(ctx), o.Clock, op.D)
				relErr = lease.Release(relCtx)
				relCancel()
				out = m.Released(result(relErr), relBuf[:0])
			case holdm.OutDone:
				if op.Result == machine.Lost && relErr == nil {
					return errNotReleased
				}
				return relErr
			}
		}
		if out != nil {
			continue // the release's end
		}
		out = buf[:0]
		select {
		case <-timerC:
			timer, timerC = nil, nil
			out = m.Fire(out)
		case res := <-renewDone:
			out = m.Renewed(res, pollLost(out))
		case <-lost:
			lost = nil
			out = m.Lost(out)
		case <-section:
			section = nil
			out = m.SectionDone(pollLost(out))
		}
	}
}

// result is how an operation on a lease ended, as the machines say it.
func result(err error) machine.Result {
	switch {
	case err == nil:
		return machine.OK
	case errors.Is(err, ErrLockLost):
		return machine.Lost
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return machine.Cancelled
	}
	return machine.Failed
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
