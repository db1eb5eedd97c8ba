package locks

import (
	"errors"
	"fmt"
)

// ErrNotAcquired is returned by TryAcquire when the lock is held elsewhere,
// and by Acquire when its wait timeout passes.
var ErrNotAcquired = errors.New("locks: lock not acquired: held elsewhere")

// ErrLockLost means the holder no longer has the lock: its lease expired,
// was stolen, or its session or connection is gone (Locker's LockStolen,
// Consul::Mutex's LostLockError). Match it with errors.Is; a *LostError
// carries the reason.
var ErrLockLost = errors.New("locks: lock lost")

// LostError says why a lease was lost. It matches ErrLockLost.
type LostError struct {
	Key    string
	Reason string
}

// Error implements error.
func (e *LostError) Error() string {
	return fmt.Sprintf("locks: lock %q lost: %s", e.Key, e.Reason)
}

// Is reports whether target is ErrLockLost.
func (e *LostError) Is(target error) bool { return target == ErrLockLost }

// BackendError is a failure talking to the lock service (seed 003's
// ConsulError), naming the backend and the operation.
type BackendError struct {
	Backend string // "etcd", "postgres", "memcache", "consul", ...
	Op      string // "acquire", "renew", "release", "connect", ...
	Err     error
}

// Error implements error.
func (e *BackendError) Error() string {
	return fmt.Sprintf("locks: %s %s: %v", e.Backend, e.Op, e.Err)
}

// Unwrap returns the underlying error.
func (e *BackendError) Unwrap() error { return e.Err }

// FnError is returned by Run when the function it ran returned an error or
// panicked (seed 003's ThreadExceptionError). It is distinct from the lock's
// own errors: errors.Is(err, ErrLockLost) is false for it.
type FnError struct {
	Err   error  // the function's error, or nil if it panicked
	Panic any    // the panic value, if it panicked
	Stack []byte // the stack at the panic
}

// Error implements error.
func (e *FnError) Error() string {
	if e.Err != nil {
		return "locks: critical section failed: " + e.Err.Error()
	}
	return fmt.Sprintf("locks: critical section panicked: %v", e.Panic)
}

// Unwrap returns the function's error.
func (e *FnError) Unwrap() error { return e.Err }

// ErrNotHeld is returned by a Guarded lease's operations when the lock
// service refused them because this lease no longer holds the lock: the
// operation did not happen. The errors that match it also match
// ErrLockLost.
var ErrNotHeld = errors.New("locks: guarded operation refused: the lock is no longer held")

// NotHeld wraps lost, the error of a lease just marked lost because its
// service refused a guarded operation (LostSignal.Lose's), in an error
// that matches ErrNotHeld as well. Backends implementing Guarded use it:
//
//	return locks.NotHeld(lease.Lose("guarded write refused: key gone"))
func NotHeld(lost error) error { return &notHeldError{lost: lost} }

type notHeldError struct{ lost error }

func (e *notHeldError) Error() string        { return ErrNotHeld.Error() + ": " + e.lost.Error() }
func (e *notHeldError) Is(target error) bool { return target == ErrNotHeld }
func (e *notHeldError) Unwrap() error        { return e.lost }
