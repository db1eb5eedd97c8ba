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
	Kind      string   `json:"kind"`      // etcd, postgres, postgres-advisory, memcache, consul, megamutex, mysql
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

// NewLocker builds the locker a client uses, and what to close after.
func NewLocker(ctx context.Context, b BackendClient, proc string, opts ...locks.Option) (locks.Locker, io.Closer, error) {
	nop := closerFunc(func() error { return nil })
	switch b.Kind {
	case "etcd":
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
	case "postgres":
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
	case "postgres-advisory":
		l, err := pglock.NewAdvisory(ctx, b.DSN, pglock.AdvisoryConfig{}, opts...)
		if err != nil {
			return nil, nil, err
		}
		return l, nop, nil
	case "mysql":
		l, err := mysqllock.New(ctx, b.DSN, mysqllock.RunConfig(b.Pooled), opts...)
		if err != nil {
			return nil, nil, err
		}
		return l, l, nil
	case "memcache":
		l, err := newMemcache(b, opts...)
		if err != nil {
			return nil, nil, err
		}
		return l, nop, nil
	case "megamutex":
		l, err := megamutex.New(megamutex.RunConfig(b.Endpoints, b.NoFailover), opts...)
		if err != nil {
			return nil, nil, err
		}
		return l, nop, nil
	case "consul", "consul-ttl":
		if len(b.Endpoints) == 0 {
			return nil, nil, fmt.Errorf("harness: consul: no endpoint")
		}
		l, err := consullock.New(consullock.Config{Address: "http://" + b.Endpoints[b.Home%len(b.Endpoints)], LockDelay: b.LockDelay, Value: []byte(proc),
			TTLSession: b.Kind == "consul-ttl"}, opts...)
		if err != nil {
			return nil, nil, err
		}
		return l, nop, nil
	}
	return nil, nil, fmt.Errorf("harness: unknown backend %q", b.Kind)
}

// newMemcache is the memcached client of a run, configured as the
// simulator configures its clients (locks/memcache.RunConfig: the same
// dead-server window and failover switch).
func newMemcache(b BackendClient, opts ...locks.Option) (*memcachelock.Locker, error) {
	return memcachelock.New(memcachelock.RunConfig(b.Endpoints, b.NoFailover), opts...)
}

// MegamutexTTLNote is what a megamutex verdict says of a scenario's
// lock.ttl: MegaMutex adds its key with no expiry, so the TTL only bounds
// locks.Run's release (real and simulated runs alike).
func MegamutexTTLNote(ttl time.Duration) string {
	return fmt.Sprintf("lock.ttl (%v) does not expire the lock on megamutex: MegaMutex adds its key with no expiry (freed only by unlock); the TTL only bounds locks.Run's release", ttl)
}
