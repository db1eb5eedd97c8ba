// Package mysql is a locks.Locker on MySQL's named locks, GET_LOCK and
// RELEASE_LOCK, as seed 004 recommends them (shared/seeds/004, lines 28-30:
// "run a bunch of MySQL servers and use GET_LOCK() and RELEASE_LOCK()
// which have the semantics you want already"), over database/sql and
// github.com/go-sql-driver/mysql, tested on MariaDB 10.11.
//
// What is the seed's: a lock is GET_LOCK(name, timeout) on a server, held
// by the connection that took it until that connection calls
// RELEASE_LOCK(name) or ends; one server holds each lock (the seed's "a
// bunch of servers" with a key placed on one of them; this package talks
// to one server).
//
// What is locksim's, as the seed says nothing of it:
//
//   - One connection pinned for each lease (db.Conn): the lock belongs to
//     the server's connection, so every statement of the lease runs on it.
//     A lock taken on the pool instead is the pitfall Config.Pooled runs
//     (see package locks/mysql/machine).
//   - The wait: TryAcquire is GET_LOCK(name, 0); Acquire waits on the
//     server, GET_LOCK(name, WaitTimeout), or a year at a time without a
//     wait timeout (MariaDB 10.11 answers a negative timeout with NULL and
//     warning 1411, where MySQL 5.7+ waits for ever). PollInterval is
//     unused.
//   - The fencing token: a row per name in Config.TokenTable, incremented
//     on the lock's connection right after the grant (INSERT ... ON
//     DUPLICATE KEY UPDATE n = LAST_INSERT_ID(n + 1)); InnoDB, so it
//     survives a server restart.
//   - Renew is a ping of the pinned connection that also asks the server
//     whose the lock is (SELECT IS_USED_LOCK(name)): our connection id,
//     held; anything else, or the connection dead (an error, a timeout:
//     go-sql-driver closes a connection whose statement was cut off), the
//     lease is lost. A named lock has no expiry: TTL has no effect, and
//     locks.Run pings every RenewEvery (default 5 s).
//   - A holder whose connection breaks learns it at its next Renew; the
//     server frees the lock when it sees the connection end, which may be
//     much later (behind a proxy that keeps the TCP connection up, at the
//     heal, or the server's wait_timeout: see sim/behaviour/mysql.go).
//
// The client algorithm is written once, without I/O, in package
// locks/mysql/machine; this package is its real driver, the simulator
// (package sim) the other.
package mysql
