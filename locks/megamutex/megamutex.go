package megamutex

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/locksim/locksim/locks"
	lm "github.com/locksim/locksim/locks/machine"
	"github.com/locksim/locksim/locks/megamutex/machine"
)

// Defaults is what New starts from: mega_mutex's `sleep 0.1` between
// attempts. TTL and RenewEvery are only what locks.Run needs (its bound on
// Release, and the schedule of Renew, which does nothing): the lock item
// itself has no expiry unless Config.TTL is set.
var Defaults = locks.Options{
	TTL:          30 * time.Second,
	RenewEvery:   10 * time.Second,
	PollInterval: machine.Poll,
}

// Config says where the memcached servers are and how memcache-client
// treats them.
type Config struct {
	// Servers are "host:port" addresses (MegaMutex's memcache_servers);
	// the continuum hashes these strings. Default: 127.0.0.1:11211.
	Servers []string
	// Names are the servers as the continuum hashes them, one per
	// server; nil: Servers. Clients that reach the same servers at
	// different addresses (through proxies) must share Names to place
	// keys alike, as memcache-client's users share one server list.
	Names []string
	// Weights are the servers' weights (memcache-client's
	// "host:port:weight"); nil: 1 each.
	Weights []int
	// NoFailover is memcache-client's :failover => false: a key stays on
	// its server when that server is dead.
	NoFailover bool
	// RetryDead is how long a server that failed is skipped, on the
	// client's clock (memcache-client's RETRY_DELAY, default 30 s).
	RetryDead time.Duration
	// Timeout bounds each operation and connect (memcache-client's
	// :timeout, default 0.5 s).
	Timeout time.Duration
	// TTL, if set, is the add's expiry (whole seconds, rounded up): a
	// locksim option, as later mega_mutex releases took a ttl argument.
	// Default 0: no expiry, as mega_mutex adds the key with
	// memcache-client.
	TTL time.Duration
	// Namespace prefixes the keys (default "mega_mutex").
	Namespace string
}

// RunConfig is the Config of a locksim run, real (package harness, with
// the servers' addresses through the client's proxies) and simulated
// (package sim, with its servers' names): memcache-client's defaults, as
// written (a dead server is skipped for 30 s), and the continuum over the
// names "memcachedN:11211" (as cluster/ names the servers), so that every
// client of a run, and a real and a simulated run, place a key alike.
func RunConfig(servers []string, noFailover bool) Config {
	names := make([]string, len(servers))
	for i := range servers {
		names[i] = "memcached" + strconv.Itoa(i+1) + ":11211"
	}
	return Config{Servers: servers, Names: names, NoFailover: noFailover}
}

// MachineConfig is the client machine's configuration for cfg and the
// options o (after locks.Apply), with pid the lock id's first part. The
// real driver (New) and the simulator both build their machines with it.
func MachineConfig(cfg Config, o locks.Options, pid int) machine.Config {
	servers := cfg.Names
	if len(servers) != len(cfg.Servers) {
		servers = cfg.Servers
	}
	if len(servers) == 0 {
		servers = []string{"127.0.0.1:11211"}
	}
	return machine.Config{
		Servers:      servers,
		Weights:      cfg.Weights,
		NoFailover:   cfg.NoFailover,
		RetryDead:    cfg.RetryDead,
		Timeout:      cfg.Timeout,
		PollInterval: o.PollInterval,
		WaitTimeout:  o.WaitTimeout,
		TTL:          cfg.TTL,
		Namespace:    cfg.Namespace,
		PID:          pid,
	}
}

// Locker is a MegaMutex client: one memcache-client instance. It is safe
// for concurrent use.
//
// It is the real driver of the client machine (package
// locks/megamutex/machine): each request runs the machine on the caller's
// goroutine, sending the operations it asks for over gomemcache (one
// client per server: the machine places every key) and waiting on the
// client's clock for its poll timer.
type Locker struct {
	addrs   []string
	clients []*memcache.Client
	opts    locks.Options
	epoch   time.Time

	mu sync.Mutex
	m  *machine.Machine
}

var _ locks.Locker = (*Locker)(nil)

// New returns a Locker for the servers of cfg, with Defaults and opts.
func New(cfg Config, opts ...locks.Option) (*Locker, error) {
	o, err := locks.Apply(Defaults, opts...)
	if err != nil {
		return nil, err
	}
	if cfg.TTL < 0 || cfg.TTL > 30*24*time.Hour {
		return nil, fmt.Errorf("megamutex: TTL %v is not between 0 and memcached's 30 days", cfg.TTL)
	}
	if len(cfg.Servers) == 0 {
		cfg.Servers = []string{"127.0.0.1:11211"}
	}
	if cfg.Names != nil && len(cfg.Names) != len(cfg.Servers) {
		return nil, fmt.Errorf("megamutex: %d names for %d servers", len(cfg.Names), len(cfg.Servers))
	}
	mc := MachineConfig(cfg, o, os.Getpid())
	m := machine.New(mc)
	mc = m.Config()
	l := &Locker{addrs: cfg.Servers, opts: o, epoch: o.Clock.Now(), m: m}
	for _, a := range cfg.Servers {
		c := memcache.New(a)
		c.Timeout = mc.Timeout
		c.MaxIdleConns = 8
		l.clients = append(l.clients, c)
	}
	return l, nil
}

// Options implements locks.Locker.
func (l *Locker) Options() locks.Options { return l.opts }

// now is the client clock's reading as the machine takes it.
func (l *Locker) now() int64 { return int64(l.opts.Clock.Now().Sub(l.epoch)) }

// Acquire implements locks.Locker: lock!, polling every PollInterval until
// the read after the add finds this request's lock id, or WaitTimeout has
// passed (locks.ErrNotAcquired), or an operation raises.
func (l *Locker) Acquire(ctx context.Context, key string) (locks.Lease, error) {
	return l.acquire(ctx, machine.Acquire, key)
}

// TryAcquire implements locks.Locker: one attempt of lock!.
func (l *Locker) TryAcquire(ctx context.Context, key string) (locks.Lease, error) {
	return l.acquire(ctx, machine.TryAcquire, key)
}

func (l *Locker) acquire(ctx context.Context, kind machine.ReqKind, key string) (locks.Lease, error) {
	var r run
	res := r.drive(ctx, l, machine.Request{Kind: kind, Key: key, Unix: l.opts.Clock.Now().Unix(), ObjectID: objectIDs.Add(8)})
	switch res {
	case lm.OK:
		return &Lease{l: l, m: *r.granted, lost: locks.NewLostSignal(key)}, nil
	case lm.NotAcquired:
		if r.err != nil {
			return nil, r.err
		}
		return nil, locks.ErrNotAcquired
	}
	return nil, r.err
}

// objectIDs are the process's DistributedMutex object ids: every request
// is a new object, as with_distributed_mutex makes one.
var objectIDs atomic.Uint64

// run is one request driven through the machine.
type run struct {
	c       machine.Call
	granted *machine.Lease
	notOurs *string
	err     error
	lastErr error
	lastSrv int
}

func (r *run) drive(ctx context.Context, l *Locker, req machine.Request) lm.Result {
	var buf [4]machine.Output
	l.mu.Lock()
	out := l.m.Request(&r.c, req, l.now(), buf[:0])
	l.mu.Unlock()
	for {
		var next machine.Output
		for i := range out {
			o := &out[i]
			switch o.Kind {
			case machine.OutSend, machine.OutTimer:
				next = *o
			case machine.OutGrant:
				r.granted = o.Lease
			case machine.OutNotOurs:
				v := o.Text
				r.notOurs = &v
			case machine.OutFail:
				if r.err == nil {
					r.err = r.failure(ctx, l, o)
				}
			case machine.OutDone:
				return o.Result
			}
		}
		if next.Kind == machine.OutTimer {
			t := l.opts.Clock.NewTimer(next.D)
			select {
			case <-ctx.Done():
				t.Stop()
				l.mu.Lock()
				out = l.m.Cancel(&r.c, l.now(), buf[:0])
				l.mu.Unlock()
			case <-t.C():
				l.mu.Lock()
				out = l.m.Fire(&r.c, l.now(), buf[:0])
				l.mu.Unlock()
			}
			continue
		}
		if !next.Detached && ctx.Err() != nil {
			l.mu.Lock()
			out = l.m.Cancel(&r.c, l.now(), buf[:0])
			l.mu.Unlock()
			continue
		}
		rep := r.exec(l, int(next.Server), &next.Op)
		l.mu.Lock()
		out = l.m.Reply(&r.c, rep, l.now(), buf[:0])
		l.mu.Unlock()
	}
}

// failure is the error of an OutFail: the exception memcache-client or
// mega_mutex would raise.
func (r *run) failure(ctx context.Context, l *Locker, o *machine.Output) error {
	switch o.Cause {
	case machine.CauseCancelled:
		return ctx.Err()
	case machine.CauseNoServers:
		return backendErr(o.Text, errors.New("no servers available (memcache-client: \"No servers available\")"))
	case machine.CauseNoConn:
		return backendErr(o.Text, fmt.Errorf("no connection to server %s", l.addrs[0]))
	case machine.CauseBadKey:
		return backendErr(o.Text, errors.New("illegal character in key, or key too long"))
	}
	err := r.lastErr
	if err == nil {
		err = errors.New("unexpected answer")
	}
	return backendErr(o.Text, fmt.Errorf("%s: %w", l.addrs[r.lastSrv], err))
}

// exec sends op to server i over gomemcache and reads the answer as the
// machine's Reply.
func (r *run) exec(l *Locker, i int, op *machine.Op) machine.Reply {
	c := l.clients[i]
	var err error
	rep := machine.Reply{Outcome: machine.OK}
	switch op.Kind {
	case machine.OpConnect:
		err = c.Ping()
	case machine.OpGet:
		var it *memcache.Item
		it, err = c.Get(op.Key)
		if err == nil {
			rep = machine.Reply{Outcome: machine.Hit, Value: string(it.Value)}
		}
	case machine.OpAdd:
		err = c.Add(&memcache.Item{Key: op.Key, Value: []byte(op.Value), Expiration: op.Exp})
	case machine.OpDelete:
		err = c.Delete(op.Key)
	}
	r.lastErr, r.lastSrv = err, i
	switch {
	case err == nil:
		return rep
	case errors.Is(err, memcache.ErrCacheMiss):
		rep.Outcome = machine.Miss
	case errors.Is(err, memcache.ErrNotStored):
		rep.Outcome = machine.NotStored
	case timedOut(err):
		_ = c.Close()
		rep.Outcome = machine.TimedOut
	case broken(err):
		_ = c.Close()
		rep.Outcome = machine.Broken
	default:
		rep.Outcome = machine.ServerError
	}
	return rep
}

// timedOut is memcache-client's Timeout::Error: no answer, or no
// connection, within the timeout.
func timedOut(err error) bool {
	var netErr net.Error
	var ct *memcache.ConnectTimeoutError
	return errors.As(err, &ct) || errors.As(err, &netErr) && netErr.Timeout()
}

// broken is a refused, reset or closed connection (SystemCallError,
// IOError, "lost connection").
func broken(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func backendErr(op string, err error) error {
	return &locks.BackendError{Backend: "megamutex", Op: op, Err: err}
}

// Lease is one grant of a MegaMutex lock. It is safe for concurrent use.
type Lease struct {
	l    *Locker
	m    machine.Lease
	lost *locks.LostSignal
}

var _ locks.Lease = (*Lease)(nil)

// Key implements locks.Lease.
func (le *Lease) Key() string { return le.m.Key }

// ID is the lock id the item holds: "pid.object_id.time".
func (le *Lease) ID() string { return le.m.ID }

// Token implements locks.Lease. MegaMutex has no fencing token: it is
// always 0, and HasToken says so.
func (le *Lease) Token() locks.Token { return 0 }

// HasToken reports false: a MegaMutex grant carries no fencing token, so
// a protected resource sees its writes without one.
func (le *Lease) HasToken() bool { return false }

// Lost implements locks.Lease. MegaMutex never checks that it still holds
// the lock: Lost is closed only by a Release that finds the item gone or
// another id in it.
func (le *Lease) Lost() <-chan struct{} { return le.lost.Lost() }

// Err implements locks.Lease.
func (le *Lease) Err() error { return le.lost.Err() }

// Renew implements locks.Lease: it does nothing, as MegaMutex has no
// renewal (the item has no expiry unless Config.TTL is set, and then
// nothing extends it).
func (le *Lease) Renew(ctx context.Context) error { return le.lost.Err() }

// Release implements locks.Lease: unlock!, a get and, if the item holds
// this lease's id, a delete — two steps, so an item that expired (with
// Config.TTL) and was taken by another client between them is deleted.
// An item gone or holding another id is left alone and the lease is lost.
func (le *Lease) Release(ctx context.Context) error {
	if err := le.lost.Err(); err != nil {
		return err
	}
	var r run
	switch r.drive(ctx, le.l, machine.Request{Kind: machine.Release, Lease: &le.m}) {
	case lm.OK:
		return nil
	case lm.Lost:
		reason := "key gone from memcached: evicted, or the server restarted, or the key moved to another server"
		if r.notOurs != nil && *r.notOurs != "" {
			reason = "held by " + *r.notOurs
		}
		return le.lost.Lose(reason)
	}
	return r.err
}
