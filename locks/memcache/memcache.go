package memcache

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/locksim/locksim/locks"
	lm "github.com/locksim/locksim/locks/machine"
	"github.com/locksim/locksim/locks/memcache/machine"
)

// Defaults is what New starts from: seed 004's one-second poll, and a
// duration (TTL) of 30 s renewed every 10 s by locks.Run.
var Defaults = locks.Options{
	TTL:          30 * time.Second,
	RenewEvery:   10 * time.Second,
	PollInterval: time.Second,
}

// Config says where the memcached servers are and how the client treats
// them.
type Config struct {
	// Servers are host:port addresses (as MegaMutex's memcache_servers).
	// Default: one server on the local machine, 127.0.0.1:11211.
	Servers []string
	// NoFailover keeps every key on the server it hashes to, even when
	// that server is down. By default the client fails over to another
	// live server, which is how two holders happen.
	NoFailover bool
	// RetryDead is how long a server that could not be reached is skipped
	// by the failover, on the client's clock (memcache-client's retry
	// delay, default 30 s).
	RetryDead time.Duration
	// Timeout bounds each network operation (default 500 ms).
	Timeout time.Duration
}

// maxTTL is memcached's longest relative expiry: longer values are read
// as absolute Unix times.
const maxTTL = 30 * 24 * time.Hour

// RunRetryDead is the RetryDead of locksim's runs, real and simulated:
// memcache-client's 30 s is longer than most runs, so a server that comes
// back is tried again after a second, and a run sees the recovery.
const RunRetryDead = time.Second

// RunConfig is the Config of a locksim run, real (package harness, with
// the servers' addresses through the client's proxies) and simulated
// (package sim, with the servers' names): both build it here, so that
// both get the same failover, dead-server window and timeout.
func RunConfig(servers []string, noFailover bool) Config {
	return Config{Servers: servers, NoFailover: noFailover, RetryDead: RunRetryDead}
}

// MachineConfig is the client machine's configuration for cfg and the
// options o (after locks.Apply), with the defaults New applies: one
// server on the local machine, RetryDead 30 s, Timeout 500 ms. The real
// driver (New) and the simulator both build their machines with it.
func MachineConfig(cfg Config, o locks.Options) machine.Config {
	n := len(cfg.Servers)
	if n == 0 {
		n = 1
	}
	if cfg.RetryDead <= 0 {
		cfg.RetryDead = 30 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = memcache.DefaultTimeout
	}
	return machine.Config{
		Servers:      n,
		NoFailover:   cfg.NoFailover,
		RetryDead:    cfg.RetryDead,
		Timeout:      cfg.Timeout,
		TTL:          o.TTL,
		PollInterval: o.PollInterval,
		WaitTimeout:  o.WaitTimeout,
		Owner:        o.Owner,
	}
}

// Locker is a client of seed 004's memcached mutex. It is safe for
// concurrent use.
//
// It is the real driver of the client machine (package
// locks/memcache/machine): each request runs the machine on the caller's
// goroutine, sending the operations it asks for over gomemcache and
// waiting on the client's clock for the timers it sets.
type Locker struct {
	srv  *servers
	opts locks.Options
}

var _ locks.Locker = (*Locker)(nil)

// New returns a Locker for the servers of cfg, with Defaults and opts.
func New(cfg Config, opts ...locks.Option) (*Locker, error) {
	o, err := locks.Apply(Defaults, opts...)
	if err != nil {
		return nil, err
	}
	if o.TTL > maxTTL {
		return nil, fmt.Errorf("memcache: TTL %v is longer than memcached's 30 days", o.TTL)
	}
	if len(cfg.Servers) == 0 {
		cfg.Servers = []string{"127.0.0.1:11211"}
	}
	mc := MachineConfig(cfg, o)
	return &Locker{srv: newServers(cfg.Servers, mc, o.Clock), opts: o}, nil
}

// Options implements locks.Locker.
func (l *Locker) Options() locks.Options { return l.opts }

// TokenKey is the memcached key of the fencing counter beside the lock on
// key.
func TokenKey(key string) string { return machine.TokenKey(key) }

// storageKey is the memcached key for a lock or list key
// (machine.StorageKey).
func storageKey(key string) string { return machine.StorageKey(key) }

// Acquire implements locks.Locker: it retries TryAcquire every
// PollInterval (seed 004's mutex_lock) until the lock is held, the wait
// timeout passes on the client's clock (locks.ErrNotAcquired), an attempt
// fails, or ctx ends.
func (l *Locker) Acquire(ctx context.Context, key string) (locks.Lease, error) {
	return l.acquire(ctx, machine.Acquire, key)
}

// TryAcquire implements locks.Locker: one `add` of key with the TTL as its
// expiry on the key's server (or, failing over, another live one), then
// `incr` of the token counter there (seed 004's mutex_lock_nonblock).
func (l *Locker) TryAcquire(ctx context.Context, key string) (locks.Lease, error) {
	return l.acquire(ctx, machine.TryAcquire, key)
}

func (l *Locker) acquire(ctx context.Context, kind machine.ReqKind, key string) (locks.Lease, error) {
	var r run
	var buf [4]machine.Output
	res := r.drive(ctx, l.srv, machine.Request{Kind: kind, Key: key}, nil, buf[:0])
	switch res {
	case lm.OK:
		return &Lease{lost: locks.NewLostSignal(key), srv: l.srv, m: r.granted}, nil
	case lm.NotAcquired:
		return nil, locks.ErrNotAcquired
	}
	return nil, r.err
}

func nonce() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

// run is one request driven through the machine.
type run struct {
	c       machine.Call
	granted *machine.Lease
	err     error // the request's error, once the machine failed it
	// The last reply: its error, whether it meant unreachable, and from
	// which server.
	lastErr    error
	lastUnreac bool
	lastServer int
	// item is the last gets' item: gomemcache keeps the CAS id in it.
	item *memcache.Item
}

// drive runs request req (lease: the one it renews or releases) to its
// end and returns its result; r.err is the error of a failed or cancelled
// request, r.granted the lease of a grant.
func (r *run) drive(ctx context.Context, s *servers, req machine.Request, lease *Lease, out []machine.Output) lm.Result {
	buf := out
	n := nonce()
	s.mu.Lock()
	out = s.m.Request(&r.c, req, s.now(), n, buf)
	s.mu.Unlock()
	for {
		var next machine.Output
		for i := range out {
			o := &out[i]
			switch o.Kind {
			case machine.OutSend, machine.OutTimer:
				next = *o
			case machine.OutGrant:
				r.granted = o.Lease
			case machine.OutLost:
				if lease != nil {
					lease.lost.Lose(o.LossText(s.addrs[o.Server]))
				}
			case machine.OutFail:
				r.err = r.failure(ctx, s, o)
			case machine.OutDone:
				if o.Result == lm.Lost && lease != nil {
					r.err = lease.lost.Err()
				}
				return o.Result
			}
		}
		if next.Kind == machine.OutTimer {
			t := s.clock.NewTimer(next.D)
			select {
			case <-ctx.Done():
				t.Stop()
				s.mu.Lock()
				out = s.m.Cancel(&r.c, s.now(), buf)
				s.mu.Unlock()
			case <-t.C():
				n := nonce()
				s.mu.Lock()
				out = s.m.Fire(&r.c, s.now(), n, buf)
				s.mu.Unlock()
			}
			continue
		}
		if !next.Detached && ctx.Err() != nil {
			s.mu.Lock()
			out = s.m.Cancel(&r.c, s.now(), buf)
			s.mu.Unlock()
			continue
		}
		rep := r.exec(s, int(next.Server), &next.Op)
		s.mu.Lock()
		out = s.m.Reply(&r.c, rep, s.now(), buf)
		s.mu.Unlock()
	}
}

// failure is the error of a request the machine failed.
func (r *run) failure(ctx context.Context, s *servers, o *machine.Output) error {
	switch o.Cause {
	case machine.CauseNoServers:
		return backendErr(o.Text, errors.New("no servers available"))
	case machine.CauseNoToken:
		return backendErr(o.Text, errors.New("token counter keeps disappearing"))
	case machine.CauseChurn:
		return backendErr(o.Text, errors.New("item keeps changing under compare-and-swap"))
	case machine.CauseCancelled:
		return ctx.Err()
	}
	err := r.lastErr
	if err == nil {
		err = errors.New("unexpected answer")
	}
	if r.lastUnreac {
		return backendErr(o.Text, fmt.Errorf("%s: %w", s.addrs[r.lastServer], err))
	}
	return wrap(o.Text, err)
}

// exec sends op to server i over gomemcache and reads the answer as the
// machine's Reply. A server that cannot be reached has its idle
// connections dropped (after a restart they are all broken), so that the
// machine's second try goes out on a fresh one.
func (r *run) exec(s *servers, i int, op *machine.Op) machine.Reply {
	c := s.clients[i]
	var err error
	var rep machine.Reply
	switch op.Kind {
	case machine.OpAdd:
		err = c.Add(&memcache.Item{Key: op.Key, Value: []byte(op.Data()), Expiration: op.Exp})
		rep.Outcome = machine.Stored
	case machine.OpIncr:
		rep.N, err = c.Increment(op.Key, 1)
		rep.Outcome = machine.Number
	case machine.OpGets:
		r.item, err = c.Get(op.Key)
		if err == nil {
			rep = machine.Reply{Outcome: machine.Hit, Value: string(r.item.Value)}
		}
	case machine.OpCas:
		it := r.item
		it.Value, it.Expiration = []byte(op.Value), op.Exp
		err = c.CompareAndSwap(it)
		rep.Outcome = machine.Stored
	}
	r.lastErr, r.lastUnreac, r.lastServer = err, false, i
	switch {
	case err == nil:
		return rep
	case errors.Is(err, memcache.ErrNotStored):
		rep.Outcome = machine.NotStored
	case errors.Is(err, memcache.ErrCacheMiss):
		rep.Outcome = machine.Miss
	case errors.Is(err, memcache.ErrCASConflict):
		rep.Outcome = machine.Exists
	case unreachable(err):
		_ = c.Close()
		r.lastUnreac = true
		rep.Outcome = machine.Unreachable
	default:
		rep.Outcome = machine.ServerError
	}
	return rep
}

// wrap makes err a *locks.BackendError unless it is one or a context
// error already.
func wrap(op string, err error) error {
	var be *locks.BackendError
	if errors.As(err, &be) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return backendErr(op, err)
}

// Lease is one grant of a memcached lock. It is safe for concurrent use.
type Lease struct {
	lost *locks.LostSignal
	srv  *servers
	m    *machine.Lease
}

var _ locks.Lease = (*Lease)(nil)

// Key implements locks.Lease.
func (le *Lease) Key() string { return le.m.Key }

// Token implements locks.Lease: the value of the `incr` counter beside the
// key at acquire. It restarts at 1 when the counter is evicted or its
// server restarts.
func (le *Lease) Token() locks.Token { return locks.Token(le.m.Token) }

// Server is the address of the memcached server that holds the lock.
func (le *Lease) Server() string { return le.srv.addrs[le.m.Server] }

// Lost implements locks.Lease.
func (le *Lease) Lost() <-chan struct{} { return le.lost.Lost() }

// Err implements locks.Lease.
func (le *Lease) Err() error { return le.lost.Err() }

// Renew implements locks.Lease: `gets` the item and, if it is still ours,
// rewrites it by `cas` with a fresh expiry.
func (le *Lease) Renew(ctx context.Context) error {
	return le.rewrite(ctx, machine.Renew)
}

// Release implements locks.Lease: `gets` the item and, if it is still
// ours, deletes it by a `cas` with a negative expiry (memcached expires
// such an item at once), so that a lock taken over by someone else is
// never deleted.
func (le *Lease) Release(ctx context.Context) error {
	return le.rewrite(ctx, machine.Release)
}

// rewrite runs a renewal or a release. A lock found gone or taken marks
// the lease lost.
func (le *Lease) rewrite(ctx context.Context, kind machine.ReqKind) error {
	if err := le.lost.Err(); err != nil {
		return err
	}
	var r run
	var buf [4]machine.Output
	if r.drive(ctx, le.srv, machine.Request{Kind: kind, Lease: le.m}, le, buf[:0]) == lm.OK {
		return nil
	}
	return r.err
}
