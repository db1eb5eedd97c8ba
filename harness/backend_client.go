package harness

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/locksim/locksim/locks"
	consullock "github.com/locksim/locksim/locks/consul"
	etcdlock "github.com/locksim/locksim/locks/etcd"
	"github.com/locksim/locksim/locks/megamutex"
	memcachelock "github.com/locksim/locksim/locks/memcache"
	mysqllock "github.com/locksim/locksim/locks/mysql"
	pglock "github.com/locksim/locksim/locks/postgres"
)

// BackendClient says how a client process reaches the lock service: the
// addresses of its own proxies to every server.
type BackendClient struct {
	Kind      string   `json:"kind"`      // a backend of the registry (backend.Names)
	Endpoints []string `json:"endpoints"` // host:port, one per server, through the client's proxies
	// Home is the index in Endpoints of the server a client talks to when
	// it talks to one (Consul's local agent, PostgreSQL's only server).
	Home    int    `json:"home"`
	DSN     string `json:"dsn,omitempty"`
	PGClock string `json:"pg_clock,omitempty"` // postgres: db or client
	// PGRenewErrors is the lease table's Config.RenewErrors (postgres):
	// retry or stop; "" is the backend's default, retry.
	PGRenewErrors string        `json:"pg_renew_errors,omitempty"`
	LockDelay     time.Duration `json:"lock_delay,omitempty"` // consul: 0 is Consul's default, < 0 none
	// NoFailover keeps a memcache key on its server (scenario lock.failover: off).
	NoFailover bool `json:"no_failover,omitempty"`
	// Pooled runs mysql's pool pitfall (scenario lock.connection: pooled).
	Pooled bool `json:"pooled,omitempty"`
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// NewLocker builds the locker a client uses, and what to close after, as
// the entry of parts for b.Kind says.
func NewLocker(ctx context.Context, b BackendClient, proc string, opts ...locks.Option) (locks.Locker, io.Closer, error) {
	p, ok := parts[b.Kind]
	if !ok {
		return nil, nil, fmt.Errorf("harness: unknown backend %q", b.Kind)
	}
	return p.locker(ctx, b, proc, opts...)
}

// nopCloser is what a locker that needs nothing closed after returns.
var nopCloser = closerFunc(func() error { return nil })

// newEtcdLocker is locks/etcd on a clientv3 client of every endpoint.
func newEtcdLocker(_ context.Context, b BackendClient, _ string, opts ...locks.Option) (locks.Locker, io.Closer, error) {
	urls := make([]string, len(b.Endpoints))
	for i, e := range b.Endpoints {
		urls[i] = "http://" + e
	}
	// gRPC keepalives let the client leave a paused or cut-off member
	// (gRPC refuses intervals under 10 s).
	cli, err := clientv3.New(clientv3.Config{Endpoints: urls, DialTimeout: 2 * time.Second,
		DialKeepAliveTime: 10 * time.Second, DialKeepAliveTimeout: 2 * time.Second, Logger: quietZap()})
	if err != nil {
		return nil, nil, err
	}
	l, err := etcdlock.New(cli, opts...)
	if err != nil {
		cli.Close()
		return nil, nil, err
	}
	return l, cli, nil
}

// newPostgresLocker is locks/postgres's lease table on a pgx pool.
func newPostgresLocker(ctx context.Context, b BackendClient, _ string, opts ...locks.Option) (locks.Locker, io.Closer, error) {
	pool, err := pgxpool.New(ctx, b.DSN)
	if err != nil {
		return nil, nil, err
	}
	clock := pglock.ClockDB
	if b.PGClock == "client" {
		clock = pglock.ClockClient
	}
	l, err := pglock.New(ctx, pool, pglock.Config{Clock: clock, RenewErrors: pglock.RenewErrors(b.PGRenewErrors)}, opts...)
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return l, closerFunc(func() error { pool.Close(); return nil }), nil
}

// newAdvisoryLocker is locks/postgres's advisory lock.
func newAdvisoryLocker(ctx context.Context, b BackendClient, _ string, opts ...locks.Option) (locks.Locker, io.Closer, error) {
	l, err := pglock.NewAdvisory(ctx, b.DSN, pglock.AdvisoryConfig{}, opts...)
	if err != nil {
		return nil, nil, err
	}
	return l, nopCloser, nil
}

// newMySQLLocker is locks/mysql's GET_LOCK.
func newMySQLLocker(ctx context.Context, b BackendClient, _ string, opts ...locks.Option) (locks.Locker, io.Closer, error) {
	l, err := mysqllock.New(ctx, b.DSN, mysqllock.RunConfig(b.Pooled), opts...)
	if err != nil {
		return nil, nil, err
	}
	return l, l, nil
}

// newMemcacheLocker is locks/memcache on every endpoint.
func newMemcacheLocker(_ context.Context, b BackendClient, _ string, opts ...locks.Option) (locks.Locker, io.Closer, error) {
	l, err := newMemcache(b, opts...)
	if err != nil {
		return nil, nil, err
	}
	return l, nopCloser, nil
}

// newMegamutexLocker is locks/megamutex on every endpoint.
func newMegamutexLocker(_ context.Context, b BackendClient, _ string, opts ...locks.Option) (locks.Locker, io.Closer, error) {
	l, err := megamutex.New(megamutex.RunConfig(b.Endpoints, b.NoFailover), opts...)
	if err != nil {
		return nil, nil, err
	}
	return l, nopCloser, nil
}

// consulLocker returns locks/consul on the client's home agent, in the
// seed's session (ttlSession false) or locksim's TTL session.
func consulLocker(ttlSession bool) lockerFunc {
	return func(_ context.Context, b BackendClient, proc string, opts ...locks.Option) (locks.Locker, io.Closer, error) {
		if len(b.Endpoints) == 0 {
			return nil, nil, fmt.Errorf("harness: consul: no endpoint")
		}
		l, err := consullock.New(consullock.Config{Address: "http://" + b.Endpoints[b.Home%len(b.Endpoints)], LockDelay: b.LockDelay, Value: []byte(proc),
			TTLSession: ttlSession}, opts...)
		if err != nil {
			return nil, nil, err
		}
		return l, nopCloser, nil
	}
}

// newMemcache is the memcached client of a run, configured as the
// simulator configures its clients (locks/memcache.RunConfig: the same
// dead-server window and failover switch).
func newMemcache(b BackendClient, opts ...locks.Option) (*memcachelock.Locker, error) {
	return memcachelock.New(memcachelock.RunConfig(b.Endpoints, b.NoFailover), opts...)
}
