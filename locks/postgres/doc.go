// Package postgres holds locksim's two PostgreSQL lock backends: Locker, the
// lease table of seed 002 (the Ruby gem Locker), and Advisory, on
// session-level advisory locks held by a dedicated connection.
//
// # Locker (seed 002)
//
// A row per key in a lock table (default "locks"; Locker's model):
//
//	key unique, locked_by, locked_at, locked_until, sequence
//
// Getting the lock is Locker's single UPDATE: take the row when it is free
// (locked_by IS NULL), already ours, or expired (locked_until earlier than
// now), and count the acquisition in sequence, which is the fencing token.
// Renewing pushes locked_until forward while locked_by is still ours; when
// another owner has taken the row, Renew returns an error matching
// locks.ErrLockLost (Locker::LockStolen) and closes Lost(). Release clears
// locked_by on our row only. Defaults are Locker's: lock_for 30 s,
// renew_every 10 s, a blocking Acquire polls every 0.5 s; TryAcquire is
// Locker's non-blocking run, which skips the block.
//
// Whose clock says "now" is the option Config.Clock. With ClockDB (the
// default, as in Locker) every timestamp is the database's
// clock_timestamp(), so a skewed client clock changes nothing and only the
// server's clock (libfaketime) matters. With ClockClient every timestamp is
// the client's injected locks.Clock, so a client whose clock runs ahead
// believes other holders' rows have expired and takes them while they are
// still held: two holders at once. The difference is the point of the
// option.
//
// Like Locker, a holder is not told when its lease runs out: nothing
// happens until its next Renew finds the row taken. A holder paused past
// locked_until keeps running after it wakes, unless it checks.
//
// Deviations from Locker, each deliberate:
//   - The holder's identity (locked_by) is Options.Owner (default
//     "host:pid") followed by " guid:" and 32 random hex digits, one per
//     lease, as Locker's "host:… pid:… guid:…" is one per Locker object.
//   - sequence is incremented by every successful get. Locker's README
//     promises the count; the gem's lease-table code does not keep one.
//   - The table has timestamptz columns and a bigint sequence, and is
//     created if absent (Locker ships a Rails migration instead). Locker
//     stores UTC in timestamp columns; the instants compared are the same.
//   - Locker's ensure_key_exists (find, else create, ignoring a duplicate
//     key error) is one INSERT … ON CONFLICT DO NOTHING, run once per
//     Acquire or TryAcquire, as Locker runs it once per Locker.new.
//   - A renewal that fails for another reason than a stolen row (server
//     down, timeout) returns a *locks.BackendError and the lease is not
//     lost; locks.Run retries it at the next tick. Locker's renewer thread
//     dies on such an exception and the block runs on unrenewed.
//   - Release of a row that is no longer ours returns an error matching
//     locks.ErrLockLost (Locker returns false).
//   - locks.Run cancels the function's context when the lock is lost;
//     Locker raises LockStolen in its renewer thread only.
//
// # Advisory
//
// pg_try_advisory_lock / pg_advisory_lock on a connection opened for the
// lease alone, so the lock lives exactly as long as that connection. The
// lock key is Locker::Advisory's pair (lockspace, CRC-32 of the key as a
// signed int4), so two keys with the same CRC share one lock. The token is
// nextval of a sequence, taken on the same connection once the lock is
// granted. Renew checks the connection with SELECT 1; when the connection
// is found dead (the backend terminated, the server restarted), the lock is
// already gone and Renew closes Lost(). Release is pg_advisory_unlock and
// closes the connection. Locker::Advisory differs: it takes a
// transaction-level lock (pg_try_advisory_xact_lock) and spins every 5 ms
// to block, where Acquire here waits in pg_advisory_lock on the server.
//
// Every error from the database is wrapped in a *locks.BackendError with
// Backend "postgres".
package postgres
