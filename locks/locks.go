package locks

import (
	"context"
	"fmt"
)

// Token is a fencing token: an integer that strictly increases across the
// grants of one key, so that a protected resource can refuse a write from a
// holder whose lock has since been granted to somebody else.
type Token int64

// String formats the token as a decimal integer.
func (t Token) String() string { return fmt.Sprintf("%d", int64(t)) }

// Locker grants leases on keys. Implementations are safe for concurrent use.
type Locker interface {
	// Acquire blocks (polling or watching, as the backend does) until the
	// lock on key is held, the wait timeout passes (ErrNotAcquired) or ctx
	// ends (ctx.Err()).
	Acquire(ctx context.Context, key string) (Lease, error)
	// TryAcquire makes one attempt and returns ErrNotAcquired at once if
	// the lock is held elsewhere.
	TryAcquire(ctx context.Context, key string) (Lease, error)
	// Options reports the options this locker was built with (after
	// defaults), so that Run can renew on the backend's schedule.
	Options() Options
}

// Lease is one grant of a lock to one holder.
type Lease interface {
	// Key is the locked key.
	Key() string
	// Token is the fencing token of this grant.
	Token() Token
	// Lost is closed when this holder learns that the lock is gone
	// (expired, stolen, session invalidated, connection lost). It is not
	// closed by Release.
	Lost() <-chan struct{}
	// Err is nil while the lease is believed held; after Lost is closed it
	// is an error matching ErrLockLost that says why.
	Err() error
	// Renew extends the lease. It returns an error matching ErrLockLost if
	// the lock is no longer this holder's, and closes Lost in that case.
	Renew(ctx context.Context) error
	// Release gives the lock up. Releasing a lock that is no longer ours
	// returns an error matching ErrLockLost and changes nothing.
	Release(ctx context.Context) error
}

// Guarded is implemented by the leases of backends whose lock service can
// make an operation on its own store conditional on the lock, in one
// atomic step with the lock check — in the spirit of etcd's
// Mutex.IsOwner(): data kept this way is safe from a holder that no
// longer holds the lock (a paused process, a client cut off past its
// lease), without fencing tokens at a separate resource.
//
// Each backend says where the data lives (an etcd key, a Consul KV entry,
// a row of a PostgreSQL table) and what "still holds" means at its
// service. Backends whose service has no such operation (memcached) do
// not implement it. Find it with a type assertion:
//
//	if g, ok := lease.(locks.Guarded); ok { err = g.GuardedPut(ctx, key, value) }
type Guarded interface {
	Lease
	// GuardedGet returns the value stored under key in the lock service's
	// store (nil if there is none) if this lease still holds the lock,
	// checked in the same atomic step as the read. If the lock is no
	// longer held it returns an error matching ErrNotHeld and ErrLockLost,
	// and the lease is lost (Lost is closed). Other errors
	// (*BackendError) leave the outcome unknown.
	GuardedGet(ctx context.Context, key string) ([]byte, error)
	// GuardedPut stores value under key in the lock service's store if,
	// and only if, this lease still holds the lock, checked in the same
	// atomic step as the write. If the lock is no longer held it changes
	// nothing, returns an error matching ErrNotHeld and ErrLockLost, and
	// the lease is lost. Other errors (*BackendError) leave the outcome
	// unknown: the write may or may not have happened.
	GuardedPut(ctx context.Context, key string, value []byte) error
}
