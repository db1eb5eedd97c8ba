package memcache

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/locksim/locksim/locks"
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
	// Servers are host:port addresses (MegaMutex's memcache_servers).
	// Default: one server on the local machine, 127.0.0.1:11211.
	Servers []string
	// NoFailover keeps every key on the server it hashes to, even when
	// that server is down. By default the client fails over to another
	// live server, which is how two holders happen.
	NoFailover bool
	// RetryDead is how long a server that could not be reached is skipped
	// by the failover (memcache-client's retry delay, default 30 s).
	RetryDead time.Duration
	// Timeout bounds each network operation (default 500 ms).
	Timeout time.Duration
}

// maxTTL is memcached's longest relative expiry: longer values are read
// as absolute Unix times.
const maxTTL = 30 * 24 * time.Hour

// Locker is a MegaMutex client. It is safe for concurrent use.
type Locker struct {
	srv  *servers
	opts locks.Options
	exp  int32 // TTL in whole seconds, rounded up
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
	if cfg.RetryDead <= 0 {
		cfg.RetryDead = 30 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = memcache.DefaultTimeout
	}
	return &Locker{
		srv:  newServers(cfg, o.Clock),
		opts: o,
		exp:  int32((o.TTL + time.Second - 1) / time.Second),
	}, nil
}

// Options implements locks.Locker.
func (l *Locker) Options() locks.Options { return l.opts }

// TokenKey is the memcached key of the fencing counter beside the lock on
// key.
func TokenKey(key string) string { return storageKey(key + "_token") }

// storageKey is the memcached key for a lock or list key: the key itself
// when memcached accepts it, else the key with bytes memcached refuses
// (space, control characters, '%') percent-encoded, and a key still longer
// than 250 bytes replaced by a hash.
func storageKey(key string) string {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c <= ' ' || c == 0x7f || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	k := b.String()
	if len(k) > 250 {
		sum := sha256.Sum256([]byte(key))
		k = "locksim-sha256-" + hex.EncodeToString(sum[:])
	}
	return k
}

// Acquire implements locks.Locker: it retries TryAcquire every
// PollInterval (seed 004's mutex_lock).
func (l *Locker) Acquire(ctx context.Context, key string) (locks.Lease, error) {
	return locks.Poll(ctx, l.opts, func(ctx context.Context) (locks.Lease, error) {
		return l.TryAcquire(ctx, key)
	})
}

// TryAcquire implements locks.Locker: one `add` of key with the TTL as its
// expiry on the key's server (or, failing over, another live one), then
// `incr` of the token counter there (seed 004's mutex_lock_nonblock).
func (l *Locker) TryAcquire(ctx context.Context, key string) (locks.Lease, error) {
	value := l.opts.Owner + " " + nonce()
	item := &memcache.Item{Key: storageKey(key), Value: []byte(value), Expiration: l.exp}
	server, err := l.srv.do(ctx, "acquire", storageKey(key), func(c *memcache.Client) error { return c.Add(item) })
	switch {
	case errors.Is(err, memcache.ErrNotStored):
		return nil, locks.ErrNotAcquired
	case err != nil:
		return nil, wrap("acquire", err)
	}
	lease := &Lease{lost: locks.NewLostSignal(key), l: l, key: key, value: value, server: server}
	tok, err := l.nextToken(ctx, server, key)
	if err != nil {
		// Held but unfenced: give it back rather than hand out no token.
		_ = lease.Release(context.WithoutCancel(ctx))
		return nil, err
	}
	lease.token = tok
	return lease, nil
}

// nextToken increments the counter beside key on server, creating it
// (without expiry) if it is missing.
func (l *Locker) nextToken(ctx context.Context, server int, key string) (locks.Token, error) {
	tk := TokenKey(key)
	for range 3 {
		var n uint64
		err := l.srv.on(ctx, "token", server, func(c *memcache.Client) error {
			var err error
			if n, err = c.Increment(tk, 1); !errors.Is(err, memcache.ErrCacheMiss) {
				return err
			}
			// No counter (first grant, or evicted, or a restart): start one.
			err = c.Add(&memcache.Item{Key: tk, Value: []byte("0")})
			if err != nil && !errors.Is(err, memcache.ErrNotStored) {
				return err
			}
			n, err = c.Increment(tk, 1)
			return err
		})
		switch {
		case err == nil:
			return locks.Token(n), nil
		case errors.Is(err, memcache.ErrCacheMiss):
			continue // evicted between add and incr
		default:
			return 0, wrap("token", err)
		}
	}
	return 0, backendErr("token", errors.New("token counter keeps disappearing"))
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

func nonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Lease is one grant of a memcached lock. It is safe for concurrent use.
type Lease struct {
	lost   *locks.LostSignal
	l      *Locker
	key    string
	value  string // owner and nonce: what the item must still hold
	server int
	token  locks.Token
}

var _ locks.Lease = (*Lease)(nil)

// Key implements locks.Lease.
func (le *Lease) Key() string { return le.key }

// Token implements locks.Lease: the value of the `incr` counter beside the
// key at acquire. It restarts at 1 when the counter is evicted or its
// server restarts.
func (le *Lease) Token() locks.Token { return le.token }

// Server is the address of the memcached server that holds the lock.
func (le *Lease) Server() string { return le.l.srv.addrs[le.server] }

// Lost implements locks.Lease.
func (le *Lease) Lost() <-chan struct{} { return le.lost.Lost() }

// Err implements locks.Lease.
func (le *Lease) Err() error { return le.lost.Err() }

// Renew implements locks.Lease: `gets` the item and, if it is still ours,
// rewrites it by `cas` with a fresh expiry.
func (le *Lease) Renew(ctx context.Context) error {
	return le.rewrite(ctx, "renew", le.l.exp)
}

// Release implements locks.Lease: `gets` the item and, if it is still
// ours, deletes it by a `cas` with a negative expiry (memcached expires
// such an item at once), so that a lock taken over by someone else is
// never deleted.
func (le *Lease) Release(ctx context.Context) error {
	return le.rewrite(ctx, "release", -1)
}

// rewrite replaces the item by a compare-and-swap with expiry exp, if the
// item still holds our value. A lock found gone or taken marks the lease
// lost.
func (le *Lease) rewrite(ctx context.Context, op string, exp int32) error {
	if err := le.lost.Err(); err != nil {
		return err
	}
	for range 5 {
		var item *memcache.Item
		err := le.l.srv.on(ctx, op, le.server, func(c *memcache.Client) error {
			var err error
			item, err = c.Get(storageKey(le.key))
			return err
		})
		switch {
		case errors.Is(err, memcache.ErrCacheMiss):
			return le.lost.Lose("key gone from " + le.Server() + ": expired, evicted or the server restarted")
		case err != nil:
			return wrap(op, err)
		case string(item.Value) != le.value:
			return le.lost.Lose("taken by " + owner(item.Value))
		}
		item.Expiration = exp
		err = le.l.srv.on(ctx, op, le.server, func(c *memcache.Client) error { return c.CompareAndSwap(item) })
		switch {
		case err == nil:
			return nil
		case errors.Is(err, memcache.ErrCASConflict), errors.Is(err, memcache.ErrNotStored):
			continue // changed or gone since the gets: look again
		default:
			return wrap(op, err)
		}
	}
	return backendErr(op, errors.New("item keeps changing under compare-and-swap"))
}

// owner is the owner part of a lock value.
func owner(v []byte) string {
	s := string(v)
	if i := strings.LastIndexByte(s, ' '); i >= 0 {
		return s[:i]
	}
	return s
}
