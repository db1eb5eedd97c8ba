// Package megamutex is MegaMutex (seeds 000/001) as its source is written:
// mega_mutex's DistributedMutex over Ruby's memcache-client, as a
// locks.Locker. The sources, and the line numbers below:
//
//   - [dm] songkick/mega_mutex lib/mega_mutex/distributed_mutex.rb, the
//     stored version (commit 0f2fa831, 89 lines). It builds its cache
//     with Dalli (line 10); the 2010 releases, which this package follows
//     for the client, build it with memcache-client's MemCache.new with
//     the same servers and namespace, and their set_current_lock has no
//     @ttl argument (line 78 here).
//   - [mc] memcache-client lib/memcache.rb, the 1.8 line of 2010
//     (mperham/memcache-client, commit 05fe33c1, 1208 lines), which
//     mega_mutex's gemspec requires (>= 1.7.4).
//
// What it reproduces:
//
//   - Keys: "mega_mutex:" and the mutex id (namespace, [mc] make_cache_key
//     674-684, separator ':' [mc] 55). A key with whitespace, or longer
//     than 250 bytes with the namespace, raises ArgumentError ([mc]
//     705-708): MegaMutex's own README key "WidgetMaker Mutex ID" fails.
//   - The lock id is "pid.object_id.time" ([dm] 81-83): the process id,
//     an id unique to each request in the process (Ruby's object_id of
//     the DistributedMutex) and the client clock's Unix seconds at the
//     request. Two hosts whose processes have the same pid and ask in the
//     same second with the same object id would share an id.
//   - lock! ([dm] 54-60): attempt_to_lock ([dm] 62-67) is a get, an add
//     of the id if the get found nothing (its answer not looked at), and
//     a second get, whose value decides; else `sleep 0.1` on the client's
//     clock (PollInterval, default 100 ms), and `until timeout?` ([dm]
//     43-46: checked before each attempt, so after the sleep) with the
//     optional :timeout (locks.WithWaitTimeout) ends in TimeoutError:
//     locks.ErrNotAcquired.
//   - The add has no expiry ([dm] 77-79 with @ttl nil; memcache-client's
//     add, expiry 0, [mc] 443-458): the lock is freed only by unlock!. A
//     holder that dies, or whose unlock! fails, holds the lock for ever;
//     the checker's liveness figures (held share, longest idle wait) show
//     it. Config.TTL gives the add an expiry (a locksim option, as later
//     mega_mutex releases took a ttl); a scenario's lock.ttl does not.
//   - unlock! ([dm] 69-75) is a get, then a delete if the value was this
//     request's id: two steps, so with Config.TTL an item that expired
//     and was added by another client between them is deleted.
//   - run ([dm] 24-35) calls unlock! in its ensure: a lock! that raised or
//     timed out is followed by unlock!, which deletes an add of ours that
//     was stored before an operation failed.
//   - Placement ([mc] get_server_for_key 704-723): one server: that
//     server, alive or not. Several: the continuum ([mc]
//     create_continuum_for 934-947, entry_count_for 949-951:
//     floor(n*160*weight/total) points per server,
//     Continuum::POINTS_PER_SERVER 1170, each the first 8 hex digits of
//     SHA1("host:port:idx")), the key's crc32 ([mc] hash_for 697-699)
//     looked up as Continuum.binary_search does ([mc] 1173-1191: the last
//     point at or below the hash, or the last point of all below the
//     first). A server that is not alive? ([mc] 1040-1042, 1048-1068)
//     is skipped and the key rehashed as crc32("<try><key>"), 20 tries
//     ([mc] 714-720);
//     with :failover false (Config.NoFailover) the first try alone.
//     Every operation is placed again, so a get, the add and an unlock!
//     may go to different servers.
//   - Dead servers: a connect that fails, or an operation that times out
//     (no answer within Config.Timeout, default 0.5 s, [mc] 50, of true
//     time), marks the server dead for 30 s of the client's clock
//     (RETRY_DELAY [mc] 975, mark_dead 1114-1121, Server#socket
//     1048-1068); an operation that timed out raises ([mc] 871-874). A
//     broken connection (refused, reset, closed) or an ERROR answer is
//     retried once on a new connection ([mc] 876-880); a connection that
//     cannot be had then is "No connection to server", and with_server
//     ([mc] 886-900) places the operation once more if there is more than
//     one server.
//   - No fencing token: Lease.Token is 0 and Lease.HasToken false; a
//     protected resource sees writes without a token. No renewal: Renew
//     does nothing. No loss detection: the holder never learns the lock
//     went (Lost closes only when a Release finds another id or none).
//
// Deviations:
//
//   - Values are the id's bytes; memcache-client stores Marshal.dump of
//     the string ([mc] 445) and Marshal.load's it ([mc] 256). Ids compare
//     the same.
//   - A connect is memcached's `version` on gomemcache's pool (Ping):
//     memcache-client's connect_to ([mc] 1070-1098) is a TCP connect
//     only. A server process that is stopped (SIGSTOP) but whose kernel
//     still accepts: memcache-client connects and then times out on the
//     operation, which raises; here the connect times out, the server is
//     marked dead and the operation fails over to the next try.
//   - memcache-client holds one socket per server and serialises every
//     operation of a MemCache instance with a mutex ([mc] 858); a Locker
//     serialises its machine steps only: concurrent requests' operations
//     run at once, on gomemcache's pool.
//   - Ties in the continuum (two points of one value) are ordered by
//     server; Ruby's sort ([mc] 946) is not stable. The optional native
//     binary search ([mc] 1208, continuum_native) is taken to agree.
//   - locksim's interface: TryAcquire (not in MegaMutex) is one pass of
//     lock!'s loop ([dm] 56) followed by run's ensure unlock!; Release of
//     a lock that is not ours returns an error matching locks.ErrLockLost
//     where unlock! ([dm] 70) returns quietly; a cancelled context ends
//     lock! as an exception would, with the ensure unlock!.
//   - Options.TTL and RenewEvery are only locks.Run's (its bound on
//     Release, and the no-op renewals).
//
// The algorithm is written once, without I/O, in package
// locks/megamutex/machine; this package is its driver over gomemcache
// (one client per server: the machine picks the server of every
// operation), and locksim's simulator drives the same machine over its
// memcached model. RunConfig and MachineConfig are what both build their
// clients with.
package megamutex
