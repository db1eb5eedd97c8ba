// Package consul is seed 003's Consul::Mutex (the consul-mutex gem's
// lib/consul/mutex.rb) as a locks.Locker, with Consul at
// http://localhost:8500 by default: the local agent, whose node the
// sessions belong to. Its client logic is the machine of package
// locks/consul/machine (which the simulator runs too); this package drives
// it over the Consul API client.
//
// As written (backend consul, the default): the session is created with
// an empty body (session_id: PUT /v1/session/create with no body), so it
// has Consul's defaults -- no TTL and nothing to renew, lock-delay 15 s,
// behavior release, the serfHealth check of the agent's node: it lives as
// long as that agent is healthy, through any pause of the client, and
// dies when the servers find the agent failed. acquire_lock waits with
// ?consistent blocking GETs until the key is missing or free, then PUT
// ?acquire with the value (the host name by default), then a ?consistent
// GET: missing or free, acquire again; another session's, start again.
// hold_lock (the lease's watcher) follows the key with ?consistent
// blocking GETs and the lease is lost ("key deleted", "no active
// session", "taken by session <id>", LossReason) when it is no longer the
// session's; the session is then destroyed; a watch that fails talking to
// Consul ends the hold too (the watcher thread's ConsulError): the lease's
// Err matches both locks.ErrLockLost and a *locks.BackendError.
// release_lock: PUT ?release with an empty body (false is an error, the
// session kept), the session destroyed, a ?consistent GET, and DELETE
// ?cas=<its index> if no session holds the key. Every request is bounded
// by Net::HTTP's read timeout (60 s): a blocking GET on a key that does
// not change for a minute fails, which ends a hold (a lease held longer
// than a minute on a quiet key is lost) or an acquire. Every Consul
// failure is a *locks.BackendError{Backend: "consul"} (the seed's
// ConsulError).
//
// The seed's flaws are kept: fn is told to stop only after the watcher
// notices (a cancelled context is a request, not a kill); a holder cut
// off from the servers keeps believing until its watch fails while the
// servers invalidate its session once its agent's serfHealth fails, and
// after the lock-delay another client can take the key; a client process
// killed while holding leaves its session, and the key, to its agent,
// which lives on: the lock is held until someone destroys the session.
//
// Deviations from the seed: one Consul::Mutex per Acquire (its session
// and last index start afresh each time); TryAcquire (one attempt) and
// the wait timeout (the blocking GETs' ?wait bounded by what is left) are
// locksim's, and a session made by an acquire that times out or is
// cancelled is destroyed; the seed leaves the session of a failed acquire
// to its node, as here.
//
// Config.TTLSession is locksim's own variant, not the seed's (backend
// consul-ttl): a session with the options' TTL, renewed every RenewEvery
// by locks.Run's renewer, with Config.LockDelay and behavior release;
// Acquire tries PUT ?acquire and between attempts waits with a blocking
// query of at most PollInterval (which also waits out a lock-delay) and
// renews its waiting session; reads of the default consistency but the
// one after an acquire; release is ?release then session destroy. A
// holder cut off from the servers keeps believing until its session's
// TTL has run out on the servers, which Consul stretches to up to twice
// the TTL.
//
// Fencing token: the key's ModifyIndex read right after the acquire, not
// its LockIndex. LockIndex counts acquisitions of one key, and starts again
// at 1 when the key is deleted and re-created (which the seed's release
// does), so two grants could carry the same LockIndex. ModifyIndex is the
// Raft index of the key's last write: every grant writes the key, so a
// later grant always has a greater ModifyIndex, across deletions too.
//
// Guarded writes (locks.Guarded): Lease.GuardedPut and GuardedGet are KV
// transactions that check the lock key's session (verb check-session) in
// the same transaction as the write or read, on a key of the caller's.
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

// SeedSessionNote is what a run of backend consul (the seed's session)
// says of a scenario's lock.ttl, lock.renew_every and lock.lock_delay.
const SeedSessionNote = "lock.ttl, lock.renew_every and lock.lock_delay have no effect on consul: Consul::Mutex creates its session with an empty body " +
	"(no TTL and nothing to renew; Consul's lock-delay of 15 s, behavior release, the serfHealth check of the client agent's node); " +
	"locksim's TTL session is backend consul-ttl"

// Defaults is what New starts from: for TTLSession a 15 s session TTL
// renewed every 5 s, and a blocking wait of at most 1 s between acquire
// attempts (the seed's sessions have no TTL: TTL and RenewEvery then only
// satisfy locks.Apply and bound locks.Run's release).
var Defaults = locks.Options{
	TTL:          15 * time.Second,
	RenewEvery:   5 * time.Second,
	PollInterval: time.Second,
}

// Config says where Consul is and how sessions are made. LockDelay applies
// to TTLSession only.
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
	// TTLSession makes the sessions locksim's way (backend consul-ttl):
	// with the TTL of the options, renewed by Renew, and LockDelay. By
	// default they are the seed's: created with an empty body, so with
	// Consul's defaults (no TTL, lock-delay 15 s, behavior release, the
	// serfHealth check of the node of the agent at Address), nothing to
	// renew; the options' TTL and RenewEvery and LockDelay have no effect
	// on them.
	TTLSession bool
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
	mode := machine.ModeSeed
	if cfg.TTLSession {
		mode = machine.ModeTTL
	}
	return machine.Config{
		Mode:         mode,
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
