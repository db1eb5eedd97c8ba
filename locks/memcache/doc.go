// Package memcache is the memcached mailing list's recipe (seed 004) as a
// locks.Locker: a lock is a memcached `add` of the key with an expiry,
// which is atomic, so two callers never both get STORED from one server.
// MegaMutex as its source is written (no expiry, get/add/get, 0.1 s
// polling, memcache-client's continuum) is package locks/megamutex,
// backend megamutex.
//
// Seed 004's, reproduced with its flaws:
//
//   - mutex_lock(key, duration): Acquire polls, retrying the add every
//     PollInterval ("re-trying the lock once a second", the default);
//     mutex_lock_nonblock is TryAcquire, one attempt; mutex_unlock is
//     Release; the item's expiry is the duration, Options.TTL.
//   - The lock lives only in memcached's memory: it is lost when the item
//     is evicted (there is no way to pin an item) or the server restarts,
//     and the next caller's add then succeeds while the first holder still
//     believes it holds the lock. A holder that dies keeps the lock until
//     the duration ends.
//
// locksim's, not the seed's:
//
//   - Renewal: Renew (locks.Run calls it) rewrites the item with a fresh
//     expiry by `gets` + `cas`, and reports the lock lost if the item is
//     gone or holds another owner's value. The seed's duration is fixed.
//   - The fencing token: after a successful add the client increments a
//     counter (TokenKey) on the same server with `incr`; the new value is
//     the token. The counter is an ordinary memcached item, so it is
//     evicted or emptied by a restart with the lock, and tokens then start
//     again at 1: a grant can carry a token no greater than an earlier
//     one, a flaw left visible for the checker to find.
//   - Several servers (seed 000's memcache_servers): the key is placed by
//     crc32(key) mod N, and when that server is down the client fails over
//     to another live server, rehashing "<try><key>" for up to 20 tries
//     and skipping servers it marked dead for Config.RetryDead (30 s by
//     default, 1 s in locksim's runs; on the client's clock). A client
//     that cannot reach the key's server therefore takes the lock on
//     another server while the holder still holds it on the first: two
//     holders. This is the default; Config.NoFailover turns it off.
//   - Release deletes the key only if its value is still this holder's:
//     it reads the item with `gets` and deletes it by a `cas` with a
//     negative expiry, which memcached treats as "expire now".
//   - Renew and Release talk to the server the add succeeded on, not to
//     the one the key hashes to now.
//   - memcached expiries are whole seconds, so TTL is rounded up to one.
//   - Keys memcached refuses (spaces, control characters, longer than 250
//     bytes) are percent-encoded or hashed, so that a key such as
//     "WidgetMaker Mutex ID" works.
//
// No guarded writes: a Lease does not implement locks.Guarded. memcached
// has no operation that checks one item and writes another in one step
// (no transactions, no scripts; cas compares the item it writes only), so
// a write cannot be made conditional on still holding the lock. Protect
// data behind a memcache lock with fencing tokens at the resource, and
// know that the token counter itself is lost when the server restarts or
// evicts it.
//
// The distinct list of seed 004's second mode is List, with CheckList to
// judge what it held.
//
// The client's algorithm (placement, failover, the attempts, the token,
// polling, renewal and release) is written once, without I/O, in package
// locks/memcache/machine; this package is its driver over gomemcache, and
// locksim's simulator drives the same machine over its memcached model.
// RunConfig and MachineConfig are what both build their clients with.
package memcache
