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
	"errors"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/consul/machine"
	lm "github.com/locksim/locksim/locks/machine"
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
//
// It is the real driver of the client machine (package
// locks/consul/machine): each request runs the machine on the caller's
// goroutine (a lease's watch on a goroutine of its own), sending the
// requests it asks for over the Consul API client and waiting on the
// client's clock for the timers it sets.
type Locker struct {
	c     *api.Client
	opts  locks.Options
	value []byte
	m     *machine.Machine
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
	return &Locker{c: c, opts: o, value: value, m: machine.New(MachineConfig(cfg, o))}, nil
}

// MachineConfig is the client machine's configuration for cfg and the
// options o (after locks.Apply). The real driver (New) and the simulator
// both build their machines with it.
func MachineConfig(cfg Config, o locks.Options) machine.Config {
	delay := cfg.LockDelay
	if delay < 0 {
		delay = time.Nanosecond // sent as "0ms": no lock-delay
	}
	return machine.Config{
		Mode:         machine.ModeTTL,
		TTL:          o.TTL,
		LockDelay:    delay,
		PollInterval: o.PollInterval,
		WaitTimeout:  o.WaitTimeout,
		Name:         "locksim " + o.Owner,
	}
}

// Options implements locks.Locker.
func (l *Locker) Options() locks.Options { return l.opts }

// Acquire implements locks.Locker: it creates a session and tries the KV
// acquire until it succeeds, waiting between attempts with a blocking
// query on the key (at most PollInterval).
func (l *Locker) Acquire(ctx context.Context, key string) (locks.Lease, error) {
	return l.acquire(ctx, machine.Acquire, key)
}

// TryAcquire implements locks.Locker: one KV acquire with a new session.
func (l *Locker) TryAcquire(ctx context.Context, key string) (locks.Lease, error) {
	return l.acquire(ctx, machine.TryAcquire, key)
}

func (l *Locker) acquire(ctx context.Context, kind machine.ReqKind, key string) (locks.Lease, error) {
	var r run
	var buf [4]machine.Output
	switch r.drive(ctx, l, machine.Request{Kind: kind, Key: key}, nil, buf[:0], nil) {
	case lm.OK:
		return l.newLease(r.granted), nil
	case lm.NotAcquired:
		return nil, locks.ErrNotAcquired
	}
	return nil, r.err
}

// run is one request driven through the machine.
type run struct {
	c       machine.Call
	granted *machine.Lease
	err     error // the request's error, once the machine failed it
	lastErr error // the last reply's error
}

// drive runs request req (lease: the one it renews, releases or watches)
// to its end and returns its result; r.err is the error of a failed or
// cancelled request, r.granted the lease of a grant. mu, if not nil, is
// held while the machine runs (a lease's requests share its marks).
func (r *run) drive(ctx context.Context, l *Locker, req machine.Request, lease *Lease, out []machine.Output, mu *sync.Mutex) lm.Result {
	buf := out
	clock := l.opts.Clock
	lock := func() {
		if mu != nil {
			mu.Lock()
		}
	}
	unlock := func() {
		if mu != nil {
			mu.Unlock()
		}
	}
	lock()
	out = l.m.Request(&r.c, req, clock.Now().UnixNano(), buf)
	unlock()
	for {
		var next machine.Output
		for i := range out {
			o := &out[i]
			switch o.Kind {
			case machine.OutSend:
				if o.Background {
					l.background(o.Op)
					continue
				}
				next = *o
			case machine.OutTimer:
				next = *o
			case machine.OutGrant:
				r.granted = o.Lease
			case machine.OutLost:
				if lease != nil {
					lease.lose(o, r.lastErr)
				}
			case machine.OutFail:
				r.err = r.failure(ctx, o)
			case machine.OutDone:
				if o.Result == lm.Lost && lease != nil {
					r.err = lease.Err()
				}
				return o.Result
			}
		}
		if next.Kind == machine.OutTimer {
			t := clock.NewTimer(next.D)
			select {
			case <-ctx.Done():
				t.Stop()
				lock()
				out = l.m.Cancel(&r.c, clock.Now().UnixNano(), buf)
				unlock()
			case <-t.C():
				lock()
				out = l.m.Fire(&r.c, clock.Now().UnixNano(), buf)
				unlock()
			}
			continue
		}
		var rep machine.Reply
		var err error
		if ctx.Err() == nil {
			rep, err = l.exec(ctx, &next.Op, next.D)
		}
		lock()
		if ctx.Err() != nil {
			out = l.m.Cancel(&r.c, clock.Now().UnixNano(), buf)
		} else {
			r.lastErr = err
			out = l.m.Reply(&r.c, rep, clock.Now().UnixNano(), buf)
		}
		unlock()
	}
}

// failure is the error of a request the machine failed.
func (r *run) failure(ctx context.Context, o *machine.Output) error {
	switch o.Cause {
	case machine.CauseCancelled:
		if err := ctx.Err(); err != nil {
			return err
		}
		return context.Canceled
	case machine.CauseReleaseFalse:
		return backendErr(o.Text, errors.New("attempt to release lock returned false"))
	}
	err := r.lastErr
	if err == nil {
		err = errors.New("unexpected answer")
	}
	return backendErr(o.Text, err)
}

// background sends op (a session's destroy on the way out), best effort:
// the session ends with its node or its TTL anyway.
func (l *Locker) background(op machine.Op) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = l.exec(ctx, &op, 0)
}

// exec sends op over the API client (bounded by d of true time if d > 0)
// and reads the answer as the machine's Reply.
func (l *Locker) exec(ctx context.Context, op *machine.Op, d time.Duration) (machine.Reply, error) {
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	wo := writeOpts(ctx)
	var rep machine.Reply
	var err error
	switch op.Kind {
	case machine.OpCreate:
		var se *api.SessionEntry // nil: an empty body, Consul's defaults
		if !op.Empty {
			se = &api.SessionEntry{Name: op.Name, TTL: op.TTL.String(), LockDelay: op.LockDelay, Behavior: api.SessionBehaviorRelease}
		}
		rep.Session, _, err = l.c.Session().Create(se, wo)
	case machine.OpAcquire:
		rep.OK, _, err = l.c.KV().Acquire(&api.KVPair{Key: op.Key, Value: l.value, Session: op.Session}, wo)
	case machine.OpGet:
		q := (&api.QueryOptions{RequireConsistent: op.Consistent, WaitIndex: op.Index, WaitTime: op.Wait}).WithContext(ctx)
		var pair *api.KVPair
		var meta *api.QueryMeta
		pair, meta, err = l.c.KV().Get(op.Key, q)
		if err == nil {
			rep.Index = meta.LastIndex
			if pair != nil {
				rep.Exists, rep.Holder, rep.ModifyIndex, rep.LockIndex = true, pair.Session, pair.ModifyIndex, pair.LockIndex
			}
		}
	case machine.OpRenew:
		var entry *api.SessionEntry
		entry, _, err = l.c.Session().Renew(op.Session, wo)
		rep.OK = entry != nil
	case machine.OpDestroy:
		_, err = l.c.Session().Destroy(op.Session, wo)
		rep.OK = err == nil
	case machine.OpRelease:
		p := &api.KVPair{Key: op.Key, Session: op.Session}
		if op.Empty {
			p.Value = []byte{}
		}
		rep.OK, _, err = l.c.KV().Release(p, wo)
	case machine.OpDelete:
		rep.OK, _, err = l.c.KV().DeleteCAS(&api.KVPair{Key: op.Key, ModifyIndex: op.Index}, wo)
	}
	rep.Err = err != nil
	return rep, err
}

func writeOpts(ctx context.Context) *api.WriteOptions {
	return (&api.WriteOptions{}).WithContext(ctx)
}

func backendErr(op string, err error) error {
	return &locks.BackendError{Backend: "consul", Op: op, Err: err}
}

// LossReason is the seed's message for what a watch found on the key, or
// "" if session still holds it: pair is nil when the key is gone.
func LossReason(pair *api.KVPair, session string) string {
	var reason machine.LossReason
	var other string
	var ok bool
	if pair == nil {
		reason, other, ok = machine.Loss(false, "", session)
	} else {
		reason, other, ok = machine.Loss(true, pair.Session, session)
	}
	if ok {
		return ""
	}
	o := machine.Output{Kind: machine.OutLost, Reason: reason, Text: other}
	return o.LossText("")
}
