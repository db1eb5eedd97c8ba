// Package etcd is the locks backend on etcd: go.etcd.io/etcd/client/v3 and
// its concurrency package, a session on a lease and a concurrency.Mutex, as
// the design card describes. It adds no safety of its own: what etcd's lock
// does under partitions, pauses and lease expiry is what locksim tests
// (Jepsen found two holders at once on etcd 3.4.3: etcd-io/etcd#11456).
//
// How the locks.Locker contract maps onto etcd, with every choice and
// deviation:
//
//   - One grant is one session: Acquire grants a lease (TTL), starts the
//     session's keepalive, and locks a concurrency.Mutex on
//     Prefix+key. Release unlocks the mutex and revokes the lease
//     (concurrency's Session.Close, with the caller's context).
//   - Token is the create revision of the mutex's own key, the value
//     Mutex.IsOwner compares against. Grants are in create-revision order,
//     so tokens strictly increase across the grants of a key. Lease.IsOwner
//     offers etcd's own fencing: a comparison to guard a transaction; the
//     Lease implements locks.Guarded with it (GuardedPut and GuardedGet:
//     a transaction on the caller's etcd key, If(IsOwner())).
//   - TTL becomes the lease TTL in whole seconds, rounded up (etcd's
//     granularity); 1 s at least. The server also enforces its own minimum
//     (1.5 election timeouts) and extends every lease when a new leader is
//     elected.
//   - Renewal: the session's keepalive runs inside the etcd client, every
//     TTL/3 on Go's runtime clock, whatever RenewEvery says; Renew (which
//     locks.Run calls every RenewEvery) is one extra KeepAliveOnce. Pausing
//     the client process stops both.
//   - Lost is closed when the session ends without Release: the lease was
//     revoked or expired (a keepalive answered TTL 0), the client got no
//     keepalive answer within the TTL (timed by the etcd client on the
//     runtime clock), or the client was closed. The server can expire the
//     lease before the client notices: there is a window with two holders,
//     and only the Token can tell them apart.
//   - Clock: the wait timeout of Acquire and the cleanup timeouts are
//     measured on the Options' Clock. The etcd client's own timers
//     (keepalive schedule, lease deadline, gRPC timeouts) and the server's
//     lease expiry are not reachable through it.
//   - PollInterval is not used: Acquire waits on a watch for the deletion
//     of the key ahead of it (a FIFO queue by create revision).
//   - Owner is not stored: concurrency.Mutex writes an empty value under
//     Prefix+key+"/"+lease ID. The owner is the lease.
//   - A paused member: the kernel still accepts packets for it, so an RPC
//     or the keepalive stream that gRPC sends over a connection to it waits
//     until its context ends, or forever, unless the client was made with
//     gRPC keepalive (clientv3.Config DialKeepAliveTime, at least 10 s in
//     gRPC, and DialKeepAliveTimeout), which closes that connection and
//     lets the balancer use the other members. locks.Run bounds Release by
//     one TTL. When the context of a waiting Acquire ends, Mutex.Lock
//     deletes its queue key with the client's context, which has no
//     deadline: that delete can wait on a paused member as well.
//   - Errors from etcd are *locks.BackendError{Backend: "etcd"}; a lease
//     that is gone when renewed or released is an error matching
//     locks.ErrLockLost.
package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/locksim/locksim/locks"
)

// Backend is the backend name in errors and reports.
const Backend = "etcd"

// Prefix is put before every lock key: the mutex for key lives under
// Prefix+key.
const Prefix = "/locksim/locks/"

// Defaults are the options a Locker starts from: concurrency's default
// session TTL (60 s), renewal every TTL/3 as the session's keepalive does,
// and no wait timeout. If an option changes TTL but not RenewEvery,
// RenewEvery becomes TTL/3.
func Defaults() locks.Options {
	return locks.Options{TTL: 60 * time.Second, RenewEvery: 20 * time.Second}
}

// cleanupTimeout bounds the clean-up RPCs made on failure paths.
const cleanupTimeout = time.Second

// Locker grants leases on etcd. It is safe for concurrent use.
type Locker struct {
	client *clientv3.Client
	opts   locks.Options
	ttl    int // lease TTL in seconds
}

var _ locks.Locker = (*Locker)(nil)

// New returns a Locker that uses client, which stays the caller's to close.
func New(client *clientv3.Client, opts ...locks.Option) (*Locker, error) {
	o := Defaults()
	o.RenewEvery = 0
	for _, opt := range opts {
		opt(&o)
	}
	if o.RenewEvery == 0 {
		o.RenewEvery = o.TTL / 3
	}
	o, err := locks.Apply(o)
	if err != nil {
		return nil, err
	}
	return &Locker{client: client, opts: o, ttl: TTLSeconds(o.TTL)}, nil
}

// TTLSeconds is the lease TTL etcd is asked for: d rounded up to whole
// seconds, at least 1.
func TTLSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

// Options implements locks.Locker.
func (l *Locker) Options() locks.Options { return l.opts }

// Acquire implements locks.Locker: it waits in etcd's queue for key until it
// holds the lock, the wait timeout passes on the Clock (ErrNotAcquired), or
// ctx ends (ctx.Err()).
func (l *Locker) Acquire(ctx context.Context, key string) (locks.Lease, error) {
	return l.acquire(ctx, key, true)
}

// TryAcquire implements locks.Locker with Mutex.TryLock.
func (l *Locker) TryAcquire(ctx context.Context, key string) (locks.Lease, error) {
	return l.acquire(ctx, key, false)
}

func (l *Locker) acquire(ctx context.Context, key string, wait bool) (*Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Grant the lease here, not in NewSession, so that ctx bounds it.
	grant, err := l.client.Grant(ctx, int64(l.ttl))
	if err != nil {
		return nil, l.fail(ctx, "acquire", err)
	}
	s, err := concurrency.NewSession(l.client, concurrency.WithLease(grant.ID), concurrency.WithTTL(l.ttl))
	if err != nil {
		l.revoke(ctx, grant.ID)
		return nil, l.fail(ctx, "acquire", err)
	}
	m := concurrency.NewMutex(s, Prefix+key)
	if wait {
		err = l.lock(ctx, m)
	} else {
		err = m.TryLock(ctx)
		if errors.Is(err, concurrency.ErrLocked) {
			err = locks.ErrNotAcquired
		}
	}
	if err != nil {
		s.Orphan()
		l.revoke(ctx, grant.ID)
		if errors.Is(err, locks.ErrNotAcquired) {
			return nil, err
		}
		return nil, l.fail(ctx, "acquire", err)
	}
	own := m.IsOwner()
	lease := &Lease{
		key:       key,
		token:     locks.Token(own.GetCompare().GetCreateRevision()),
		client:    l.client,
		session:   s,
		mutex:     m,
		sig:       locks.NewLostSignal(key),
		releasing: make(chan struct{}),
	}
	go lease.watch()
	return lease, nil
}

// lock runs Mutex.Lock under the wait timeout, measured on the Clock.
func (l *Locker) lock(ctx context.Context, m *concurrency.Mutex) error {
	if l.opts.WaitTimeout <= 0 {
		return m.Lock(ctx)
	}
	wctx, cancel := locks.WithTimeout(ctx, l.opts.Clock, l.opts.WaitTimeout)
	defer cancel()
	err := m.Lock(wctx)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(wctx), context.DeadlineExceeded) {
		return locks.ErrNotAcquired
	}
	return err
}

// revoke gives a lease back on a failure path, bounded by cleanupTimeout on
// the Clock. Its error is dropped: the lease expires anyway.
func (l *Locker) revoke(ctx context.Context, id clientv3.LeaseID) {
	rctx, cancel := locks.WithTimeout(context.WithoutCancel(ctx), l.opts.Clock, cleanupTimeout)
	defer cancel()
	_, _ = l.client.Revoke(rctx, id)
}

// fail returns ctx.Err() if ctx ended, else err as a BackendError.
func (l *Locker) fail(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	return &locks.BackendError{Backend: Backend, Op: op, Err: err}
}

// Lease is one grant of an etcd lock: a session (lease) and the mutex key
// held under it.
type Lease struct {
	key     string
	token   locks.Token
	client  *clientv3.Client
	session *concurrency.Session
	mutex   *concurrency.Mutex
	sig     *locks.LostSignal

	mu        sync.Mutex // serialises Release
	released  bool
	releasing chan struct{} // closed when Release starts
}

var (
	_ locks.Lease   = (*Lease)(nil)
	_ locks.Guarded = (*Lease)(nil)
)

// watch closes Lost when the session ends without Release.
func (l *Lease) watch() {
	<-l.session.Done()
	select {
	case <-l.releasing:
	default:
		l.sig.Lose("etcd session ended: lease expired or revoked, keepalive unanswered within the TTL, or client closed")
	}
}

// Key implements locks.Lease.
func (l *Lease) Key() string { return l.key }

// Token implements locks.Lease: the create revision of the mutex's key.
func (l *Lease) Token() locks.Token { return l.token }

// Lost implements locks.Lease.
func (l *Lease) Lost() <-chan struct{} { return l.sig.Lost() }

// Err implements locks.Lease.
func (l *Lease) Err() error { return l.sig.Err() }

// LeaseID is the etcd lease the lock is held under.
func (l *Lease) LeaseID() clientv3.LeaseID { return l.session.Lease() }

// MutexKey is the etcd key the lock is held by (Prefix+key+"/"+lease ID).
func (l *Lease) MutexKey() string { return l.mutex.Key() }

// IsOwner is etcd's own fencing: a comparison that holds while this grant's
// key still exists with its create revision, to guard a transaction
// (clientv3.Txn(ctx).If(lease.IsOwner()).Then(...)).
func (l *Lease) IsOwner() clientv3.Cmp { return l.mutex.IsOwner() }

// GuardedPut implements locks.Guarded: one transaction that puts value
// under the etcd key key (the caller's key space, outside Prefix) if this
// grant's mutex key still exists with its create revision
// (If(IsOwner())). The key is not attached to the lease: it outlives the
// lock. Refused, the lease is lost and the error matches locks.ErrNotHeld.
func (l *Lease) GuardedPut(ctx context.Context, key string, value []byte) error {
	_, err := l.guarded(ctx, "guarded put", clientv3.OpPut(key, string(value)))
	return err
}

// GuardedGet implements locks.Guarded: one transaction that reads the etcd
// key key if this grant's mutex key still exists with its create revision.
func (l *Lease) GuardedGet(ctx context.Context, key string) ([]byte, error) {
	resp, err := l.guarded(ctx, "guarded get", clientv3.OpGet(key))
	if err != nil {
		return nil, err
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return nil, nil
	}
	return kvs[0].Value, nil
}

func (l *Lease) guarded(ctx context.Context, op string, then clientv3.Op) (*clientv3.TxnResponse, error) {
	l.mu.Lock()
	released := l.released
	l.mu.Unlock()
	if released {
		return nil, locks.NotHeld(&locks.LostError{Key: l.key, Reason: op + " after release"})
	}
	resp, err := l.client.Txn(ctx).If(l.IsOwner()).Then(then).Commit()
	if err != nil {
		return nil, &locks.BackendError{Backend: Backend, Op: op, Err: err}
	}
	if !resp.Succeeded {
		return nil, locks.NotHeld(l.sig.Lose(op + " refused: the mutex key is gone (lease expired or revoked)"))
	}
	return resp, nil
}

// Renew implements locks.Lease with one KeepAliveOnce on the lease. A lease
// that etcd no longer has gives an error matching locks.ErrLockLost.
func (l *Lease) Renew(ctx context.Context) error {
	if err := l.sig.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	released := l.released
	l.mu.Unlock()
	if released {
		return &locks.LostError{Key: l.key, Reason: "renew after release"}
	}
	_, err := l.client.KeepAliveOnce(ctx, l.session.Lease())
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return l.sig.Lose("renew: etcd lease not found (expired or revoked)")
	}
	if err != nil {
		return &locks.BackendError{Backend: Backend, Op: "renew", Err: err}
	}
	return nil
}

// Release implements locks.Lease: it deletes the mutex key, stops the
// keepalive and revokes the lease. If the lease was already gone, it
// returns an error matching locks.ErrLockLost (deleting our own key, which
// the lease's end already deleted, touches no other holder's key). A second
// Release also returns an error matching locks.ErrLockLost. After any
// error the lease is no longer kept alive, so the lock ends with its TTL.
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return &locks.LostError{Key: l.key, Reason: "already released"}
	}
	l.released = true
	close(l.releasing)
	if err := l.sig.Err(); err != nil {
		l.session.Orphan()
		return err
	}
	unlockErr := l.mutex.Unlock(ctx)
	l.session.Orphan()
	_, revokeErr := l.client.Revoke(ctx, l.session.Lease())
	switch {
	case errors.Is(revokeErr, rpctypes.ErrLeaseNotFound):
		return l.sig.Lose("release: etcd lease not found (expired or revoked)")
	case unlockErr != nil || revokeErr != nil:
		return &locks.BackendError{Backend: Backend, Op: "release", Err: errors.Join(unlockErr, revokeErr)}
	}
	return nil
}

// String describes the grant, for logs.
func (l *Lease) String() string {
	return fmt.Sprintf("etcd lock %q token %d lease %x", l.key, l.token, int64(l.session.Lease()))
}
