// Package sim is locksim's deterministic simulator: the scenarios of
// package scenario run against models of etcd, Consul, memcached and
// PostgreSQL in virtual time, and produce the same JSONL history (package
// history) that real runs produce, judged by the same checker.
//
// One run is one event loop on one goroutine. Time is virtual (nanoseconds
// from the start of the run); every random choice — network delays, timer
// lateness, hold times, think times, which client a fault hits when it is
// left open — comes from one PCG generator seeded by Config.Seed, and the
// clients' start offsets and the faults' start times from the seed's
// scenario.Timing, which real runs draw alike. The same scenario, backend
// and seed therefore give the same history, byte for byte, and a violating
// seed is replayed exactly by running it again.
//
// Timing is what a seed explores as much as choices: message delays and
// client timer lateness are drawn from distributions measured on real runs
// (timing.go), and ShiftSweep checks that a verdict does not flip when the
// fault schedule moves by a few milliseconds.
//
// The simulated world has nodes (servers, clients, the fenced resource),
// each with its own clock (offset, drift, steps) and each able to be paused
// (its timers and incoming messages wait until it resumes: a SIGSTOP or a
// stop-the-world pause; a client wakes as a Go process woken by SIGCONT
// does, its overdue timers together, node.resume, held to real processes
// by behaviour.ProcessCases) or crashed (its in-memory state is lost as the
// service would lose it, and messages to it are refused). Links between
// nodes carry messages with a per-link delay, jitter and loss, and keep TCP's
// order; a partitioned link (both ways or one way) holds its messages and
// delivers them when it heals, as TCP retransmission would, unless the
// receiver crashed in between — except a client's link to a server
// that resets (node.resets: memcached, Consul, etcd; PostgreSQL and MariaDB
// model their connections themselves), which behaves as the real runs'
// proxy does: what was sent into the cut, either way, is lost, and at the
// heal the link is reset, so each call still pending across it fails on
// the client with errReset (a Consul GET, which Go's HTTP transport
// replays, is sent again; etcd's client tries a read again and fails a
// write, and its keepalive stream, a call that is never answered, breaks).
//
// Each backend model is in its own file and names, in its doc comment, the
// real behaviour it reproduces and where it simplifies: etcd (etcd.go),
// Consul (consul.go), memcached with seed 004's mutex client (memcache.go)
// and with MegaMutex's (megamutex.go, on memcache.go's servers),
// PostgreSQL's Locker lease table and session advisory locks (postgres.go),
// MariaDB's GET_LOCK (mysql.go), and the fenced resource (resource.go).
// models.go has one line per backend of the registry (package backend),
// the model a run of it builds. The lock clients follow the
// algorithms and defaults of the backends in package locks. Every model is
// held to its real server by the behaviour cases of package sim/behaviour
// (one table per service, run against the server from package cluster and
// against the model), and its doc comment names those cases and the
// defects they found.
//
// What the clients share with package locks rather than copy: each
// backend's default options (its package's, through the registry's
// Defaults), etcd's TTL rounding (locks/etcd.TTLSeconds), the
// memcached token key (locks/memcache.TokenKey). The memcache, MegaMutex,
// PostgreSQL, MySQL and Consul clients are not mirrored at all: each is
// the machine of its backend (locks/memcache/machine,
// locks/megamutex/machine, locks/postgres/machine — the lease table and
// the advisory lock —, locks/mysql/machine, locks/consul/machine), which
// the locks/ backend drives over its real client library (gomemcache,
// pgx, go-sql-driver/mysql, the Consul API) and memcache.go's mcClient,
// megamutex.go, postgres.go's pgClient, mysql.go's myClient and
// consul.go's consulClient drive here, with the configuration real runs
// use (locks/memcache.RunConfig, locks/postgres.TableConfig and
// AdvisoryMachineConfig, locks/mysql.RunConfig,
// locks/consul.MachineConfig); the drivers add only what locks.Run and the
// client library do beside the machine. Nor are locks.Run's hold loop and
// the workloads: client.go drives the machines of locks/machine/hold
// (which locks.Run drives) and package workload (which harness/ drives in
// real runs) over the models. etcd's client is the one exception: its
// logic is go.etcd.io's clientv3 and concurrency, which locksim does not
// rewrite; etcd.go follows it (its doc comment says which functions) and
// the behaviour cases hold it to the real client.
//
// Run runs one seed; its events stream into the checker, and with
// Config.NoHistory they are not kept, which is how locksim sim sweeps
// thousands of seeds and then replays the violating ones to write their
// histories. Shrink reduces a violating scenario to a smaller one that
// still violates.
package sim
