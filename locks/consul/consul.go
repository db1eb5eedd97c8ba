// Package consul is seed 003's Consul::Mutex as a locks.Locker: a Consul
// session (TTL, lock-delay, behavior "release") and a KV acquire
// (PUT /v1/kv/<key>?acquire=<session>) on the key, with the holder's host
// name as the value and Consul at http://localhost:8500 by default.
//
// locks.Run reproduces the seed's synchronize: fn runs (the worker) while
// the lease's watcher goroutine watches the key with blocking queries and
// Run's renewer renews the session every RenewEvery. When the key's session
// changes or the session is invalidated, fn's context is cancelled and Run
// returns an error matching locks.ErrLockLost whose reason is the seed's:
// "key deleted", "no active session" or "taken by session <id>". As in the
// seed, the lost session is then destroyed, and a watch that fails talking
// to Consul also ends the hold (the seed's watcher thread raised
// ConsulError): the lease is lost and its Err matches both
// locks.ErrLockLost and a *locks.BackendError. Every other Consul failure
// is a *locks.BackendError{Backend: "consul"} (the seed's ConsulError).
//
// The seed's flaws are kept: fn is told to stop only after the watcher
// notices (a cancelled context is a request, not a kill), and a holder cut
// off from the servers keeps believing until its session's TTL has run out
// on the servers, which Consul stretches to up to twice the TTL.
//
// Fencing token: the key's ModifyIndex read right after the acquire, not
// its LockIndex. LockIndex counts acquisitions of one key, and starts again
// at 1 when the key is deleted and re-created (the seed's "key deleted"
// loss), so two grants could carry the same LockIndex. ModifyIndex is the
// Raft index of the key's last write: every grant writes the key, so a
// later grant always has a greater ModifyIndex, across deletions too.
//
// Guarded writes (locks.Guarded): Lease.GuardedPut and GuardedGet are KV
// transactions that check the lock key's session (verb check-session) in
// the same transaction as the write or read, on a key of the caller's.
//
// Deviations: Acquire waits with blocking queries on the key, bounded by
// PollInterval so that a lock-delay is also waited out; a session is made
// per lease and destroyed on Release, as the seed does.
package consul

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/locksim/locksim/locks"
)

// DefaultAddress is the seed's consul_url.
const DefaultAddress = "http://localhost:8500"

// Defaults is what New starts from: a 15 s session TTL renewed every 5 s,
// and a blocking wait of at most 1 s between acquire attempts.
var Defaults = locks.Options{
	TTL:          15 * time.Second,
	RenewEvery:   5 * time.Second,
	PollInterval: time.Second,
}

// Config says where Consul is and how sessions are made.
type Config struct {
	// Address is Consul's HTTP API (default DefaultAddress).
	Address string
	// Value is written to the key on acquire (default: the host name).
	Value []byte
	// LockDelay is the session's lock-delay: after the session is
	// invalidated, nobody can acquire its locks for this long. 0 is
	// Consul's default (15 s); a negative value means no delay.
	LockDelay time.Duration
	// Client, if set, is used instead of a client made from Address.
	Client *api.Client
}

// Locker is a Consul::Mutex client. It is safe for concurrent use.
type Locker struct {
	c     *api.Client
	opts  locks.Options
	value []byte
	delay time.Duration
}

var _ locks.Locker = (*Locker)(nil)

// New returns a Locker for cfg, with Defaults and opts. Consul accepts a
// session TTL between its session_ttl_min (10 s unless configured) and
// 24 h.
func New(cfg Config, opts ...locks.Option) (*Locker, error) {
	o, err := locks.Apply(Defaults, opts...)
	if err != nil {
		return nil, err
	}
	c := cfg.Client
	if c == nil {
		addr := cfg.Address
		if addr == "" {
			addr = DefaultAddress
		}
		if c, err = api.NewClient(&api.Config{Address: addr}); err != nil {
			return nil, backendErr("connect", err)
		}
	}
	value := cfg.Value
	if value == nil {
		host, err := os.Hostname()
		if err != nil {
			host = "unknown"
		}
		value = []byte(host)
	}
	delay := cfg.LockDelay
	if delay < 0 {
		delay = time.Nanosecond // sent as "0ms": no lock-delay
	}
	return &Locker{c: c, opts: o, value: value, delay: delay}, nil
}

// Options implements locks.Locker.
func (l *Locker) Options() locks.Options { return l.opts }

// Acquire implements locks.Locker: it creates a session and tries the KV
// acquire until it succeeds, waiting between attempts with a blocking
// query on the key (at most PollInterval).
func (l *Locker) Acquire(ctx context.Context, key string) (locks.Lease, error) {
	return l.acquire(ctx, key, true)
}

// TryAcquire implements locks.Locker: one KV acquire with a new session.
func (l *Locker) TryAcquire(ctx context.Context, key string) (locks.Lease, error) {
	return l.acquire(ctx, key, false)
}

func (l *Locker) acquire(ctx context.Context, key string, wait bool) (_ locks.Lease, err error) {
	var deadline time.Time
	if wait && l.opts.WaitTimeout > 0 {
		deadline = l.opts.Clock.Now().Add(l.opts.WaitTimeout)
	}
	session, err := l.createSession(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			l.destroySession(session)
		}
	}()
	var index uint64
	for {
		ok, _, err := l.c.KV().Acquire(&api.KVPair{Key: key, Value: l.value, Session: session}, writeOpts(ctx))
		if err != nil {
			return nil, ctxOr(ctx, backendErr("acquire", err))
		}
		if ok {
			pair, _, err := l.c.KV().Get(key, (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
			if err != nil {
				return nil, ctxOr(ctx, backendErr("acquire", err))
			}
			if pair != nil && pair.Session == session {
				return l.newLease(key, session, pair), nil
			}
			// Lost between the acquire and the read; try again.
		}
		if !wait {
			return nil, locks.ErrNotAcquired
		}
		waitFor := l.opts.PollInterval
		if !deadline.IsZero() {
			left := deadline.Sub(l.opts.Clock.Now())
			if left <= 0 {
				return nil, locks.ErrNotAcquired
			}
			waitFor = min(waitFor, left)
		}
		// Wait for the key to change (or waitFor to pass, which also waits
		// out a lock-delay), then keep the waiting session alive.
		_, meta, err := l.c.KV().Get(key, (&api.QueryOptions{WaitIndex: index, WaitTime: waitFor}).WithContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if err := locks.Sleep(ctx, l.opts.Clock, waitFor); err != nil {
				return nil, err
			}
		} else if meta.LastIndex < index {
			index = 0
		} else {
			index = meta.LastIndex
		}
		entry, _, err := l.c.Session().Renew(session, writeOpts(ctx))
		if err != nil {
			return nil, ctxOr(ctx, backendErr("renew", err))
		}
		if entry == nil { // expired while we waited: start over
			if session, err = l.createSession(ctx); err != nil {
				return nil, err
			}
		}
	}
}

func (l *Locker) createSession(ctx context.Context) (string, error) {
	id, _, err := l.c.Session().Create(&api.SessionEntry{
		Name:      "locksim " + l.opts.Owner,
		TTL:       l.opts.TTL.String(),
		LockDelay: l.delay,
		Behavior:  api.SessionBehaviorRelease,
	}, writeOpts(ctx))
	if err != nil {
		return "", ctxOr(ctx, backendErr("session create", err))
	}
	return id, nil
}

// destroySession is best effort: the session expires by itself anyway.
func (l *Locker) destroySession(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = l.c.Session().Destroy(id, writeOpts(ctx))
}

func writeOpts(ctx context.Context) *api.WriteOptions {
	return (&api.WriteOptions{}).WithContext(ctx)
}

func backendErr(op string, err error) error {
	return &locks.BackendError{Backend: "consul", Op: op, Err: err}
}

// ctxOr returns ctx's error if ctx has ended (the Consul error is then only
// its consequence), else err.
func ctxOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// LossReason is the seed's message for what a watch found on the key, or
// "" if session still holds it: pair is nil when the key is gone.
func LossReason(pair *api.KVPair, session string) string {
	switch {
	case pair == nil:
		return "key deleted"
	case pair.Session == "":
		return "no active session"
	case pair.Session != session:
		return fmt.Sprintf("taken by session %s", pair.Session)
	}
	return ""
}
