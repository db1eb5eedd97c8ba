package backend

import (
	"fmt"
	"time"

	"github.com/locksim/locksim/locks"

	lockConsul "github.com/locksim/locksim/locks/consul"
	lockEtcd "github.com/locksim/locksim/locks/etcd"
	lockMega "github.com/locksim/locksim/locks/megamutex"
	lockMemcache "github.com/locksim/locksim/locks/memcache"
	lockMySQL "github.com/locksim/locksim/locks/mysql"
	lockPostgres "github.com/locksim/locksim/locks/postgres"
)

// all is the registry: one entry per backend, in the order reports list
// them. Adding a backend is its package in locks/ and one entry here (and
// its parts in harness/ and sim/, which register themselves by its name).
var all = []*Backend{
	{
		Name: "etcd", Seed: "etcd's concurrency.Mutex on a lease", Package: "locks/etcd", Service: Etcd,
		Defaults: lockEtcd.Defaults, Guarded: true,
		NoFaults: noFaults(serverClockGo("etcd"), notMemcached("etcd"), notConsul("etcd")),
	},
	{
		Name: "postgres", Seed: "seed 002, Locker: a lease table row", Package: "locks/postgres", Service: Postgres,
		Defaults: func() locks.Options { return lockPostgres.DefaultOptions }, Guarded: true,
		Reads:    []string{LockClock, LockRenewErrors},
		NoFaults: noFaults("", notMemcached("PostgreSQL"), notConsul("postgres")),
	},
	{
		Name: "postgres-advisory", Seed: "PostgreSQL's session advisory lock", Package: "locks/postgres", Service: Postgres,
		Defaults: func() locks.Options { return lockPostgres.DefaultAdvisoryOptions }, Guarded: true,
		NoFaults: noFaults("", notMemcached("PostgreSQL"), notConsul("postgres-advisory")),
	},
	{
		Name: "memcache", Seed: "seed 004, Brad Fitzpatrick's memcached add mutex", Package: "locks/memcache", Service: Memcached,
		Defaults: func() locks.Options { return lockMemcache.Defaults }, List: true,
		Reads:    []string{LockFailover},
		NoFaults: noFaults("", "", notConsul("memcache")),
	},
	{
		Name: "consul", Seed: "seed 003, Consul::Mutex: the agent node's session", Package: "locks/consul", Service: Consul,
		Defaults: func() locks.Options { return lockConsul.Defaults }, Guarded: true,
		SeedSession: lockConsul.SeedSessionNote,
		NoFaults:    noFaults(serverClockGo("Consul"), notMemcached("Consul"), ""),
	},
	{
		Name: "consul-ttl", Seed: "Consul's lock recipe on a TTL session (locksim's)", Package: "locks/consul", Service: Consul,
		Defaults: func() locks.Options { return lockConsul.Defaults }, Guarded: true,
		Reads:    []string{LockDelay},
		NoFaults: noFaults(serverClockGo("Consul"), notMemcached("Consul"), ""),
	},
	{
		Name: "megamutex", Seed: "seeds 000/001, MegaMutex: memcache-client add", Package: "locks/megamutex", Service: Memcached,
		Defaults: func() locks.Options { return lockMega.Defaults }, Tokenless: true,
		Reads: []string{LockFailover}, IgnoresTTL: MegamutexTTLNote,
		NoFaults: noFaults("", "", notConsul("megamutex")),
	},
	{
		Name: "mysql", Seed: "seed 004's recommendation, MySQL GET_LOCK", Package: "locks/mysql", Service: MariaDB,
		Defaults: func() locks.Options { return lockMySQL.Defaults },
		Reads:    []string{LockConnection},
		IgnoresTTL: func(time.Duration) string {
			return "lock.ttl has no effect on mysql: a named lock (GET_LOCK) has no expiry and lives as long as its connection"
		},
		NoFaults: noFaults(mysqlServerClock, notMemcached("MariaDB"), notConsul("mysql")),
	},
}

// MegamutexTTLNote is what a megamutex verdict says of a scenario's
// lock.ttl: MegaMutex adds its key with no expiry, so the TTL only bounds
// locks.Run's release (real and simulated runs alike).
func MegamutexTTLNote(ttl time.Duration) string {
	return fmt.Sprintf("lock.ttl (%v) does not expire the lock on megamutex: MegaMutex adds its key with no expiry (freed only by unlock); the TTL only bounds locks.Run's release", ttl)
}

// noFaults is a NoFaults table of the three kinds some backends lack:
// server-clock, evict and session-destroy, each with why ("": the backend
// has it).
func noFaults(serverClock, evict, sessionDestroy string) map[string]string {
	m := map[string]string{}
	for k, why := range map[string]string{"server-clock": serverClock, "evict": evict, "session-destroy": sessionDestroy} {
		if why != "" {
			m[k] = why
		}
	}
	return m
}

// serverClockGo is why server-clock does nothing on a service written in
// Go: real runs skew a server's clock through libfaketime, which cannot
// reach a Go program's clock, and the simulator does as real runs do.
func serverClockGo(service string) string {
	return "server clock skew not applied: " + service + " reads time inside Go's runtime, which libfaketime cannot reach"
}

const mysqlServerClock = "server clock skew not applied: a named lock (GET_LOCK) has no expiry, and MariaDB's clock decides nothing of it"

// notMemcached is why evict does nothing on another service.
func notMemcached(service string) string {
	return "evict not applied: it pushes memcached's LRU, and " + service + " evicts nothing"
}

// notConsul is why session-destroy does nothing on a backend other than
// Consul's: real runs destroy the Consul sessions holding the run's keys,
// and nothing yet stands for it on the others (an etcd lease revoke, a
// pg_terminate_backend), so the simulator leaves them alone too.
func notConsul(name string) string {
	return "session-destroy not applied: it destroys Consul sessions, and real runs have no counterpart on " + name + " yet"
}
