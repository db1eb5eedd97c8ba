package locks

import (
	"context"
	"errors"
	"time"
)

// Sleep waits d on clock, or until ctx ends (returning ctx.Err()).
func Sleep(ctx context.Context, clock Clock, d time.Duration) error {
	t := clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C():
		return nil
	}
}

// Poll implements a polling Acquire on top of a TryAcquire: it calls try
// until it returns something other than ErrNotAcquired, sleeping interval
// between attempts (on the client's clock). It gives up with ErrNotAcquired
// once o.WaitTimeout has passed on that clock, or with ctx.Err().
func Poll(ctx context.Context, o Options, try func(context.Context) (Lease, error)) (Lease, error) {
	var deadline time.Time
	if o.WaitTimeout > 0 {
		deadline = o.Clock.Now().Add(o.WaitTimeout)
	}
	for {
		lease, err := try(ctx)
		if !errors.Is(err, ErrNotAcquired) {
			return lease, err
		}
		wait := o.PollInterval
		if !deadline.IsZero() {
			left := deadline.Sub(o.Clock.Now())
			if left <= 0 {
				return nil, err
			}
			wait = min(wait, left)
		}
		if err := Sleep(ctx, o.Clock, wait); err != nil {
			return nil, err
		}
	}
}

// WithTimeout is context.WithTimeout measured on clock instead of the
// runtime's clock: the returned context is cancelled d after the call, as
// clock measures it, or when ctx ends. When the time is up, ctx.Err() of the
// returned context is context.Canceled and context.Cause is
// context.DeadlineExceeded. The caller must call the CancelFunc.
func WithTimeout(ctx context.Context, clock Clock, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	t := clock.NewTimer(d)
	go func() {
		select {
		case <-t.C():
			cancel(context.DeadlineExceeded)
		case <-ctx.Done():
			t.Stop()
		}
	}()
	return ctx, func() { cancel(context.Canceled) }
}
