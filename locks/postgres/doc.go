// Package postgres holds locksim's two PostgreSQL lock backends: Locker, the
// lease table of seed 002 (the Ruby gem Locker), and Advisory, on
// session-level advisory locks held by a dedicated connection.
//
// # Locker (seed 002)
//
// Read against the locker gem's lib/locker/locker.rb as it stood with
// sequence and Locker.prune (zencoder/locker, commit 1eec250f, 113 lines;
// "line N" below is that file's) and its migration template
// (lib/generators/locker/templates/migration.rb). What is the gem's:
//
//   - A row per key in a lock table (default "locks"; the gem's model,
//     lines 9-11 and 18): key unique, locked_by, locked_at, locked_until,
//     and sequence (bigint, default 0, in the gem's migration).
//   - get is one UPDATE (lines 67-71): take the row when it is free
//     (locked_by IS NULL), already ours, or expired (locked_until earlier
//     than clock_timestamp()), set locked_at and locked_until = now +
//     lock_for, and sequence = sequence + 1 (line 70). The gem yields
//     sequence to the block (line 55; the README: "the number of times the
//     lock has been acquired"); here it is the lease's Token, the fencing
//     token.
//   - renew (lines 79-85) pushes locked_until forward while locked_by is
//     still ours, even past expiry if nobody took the row; when it updates
//     nothing it raises LockStolen in the block's thread (line 83), and
//     here Renew returns an error matching locks.ErrLockLost
//     (Locker::LockStolen) and closes Lost().
//   - release (lines 73-77) clears locked_by on our row only; run releases
//     in an ensure when the block ends or raises, unless a renew found the
//     row stolen (line 58: "release if @locked").
//   - Defaults (lines 16-17, 39-42): lock_for 30 s, renew_every 10 s, and
//     a blocking run polls get every 0.5 s; TryAcquire is the non-blocking
//     run, which skips the block. renew_every must be below lock_for
//     (lines 22-24; locks.Apply refuses it too). The renewer sleeps
//     renew_every, then renews (lines 49-52), as locks.Run's does. A get
//     that fails with a database error ends the wait with it (line 40
//     raises), as Acquire returns the *locks.BackendError.
//   - "now" is the database's clock_timestamp() (lines 69-70, 82), as with
//     ClockDB (the default): a skewed client clock changes nothing and
//     only the server's clock (libfaketime) matters.
//   - A holder is not told when its lease runs out: nothing happens until
//     its next renew finds the row taken. A holder paused past
//     locked_until keeps running after it wakes, unless it checks.
//   - Prune is Locker.prune (lines 29-32): delete the rows whose
//     locked_until is earlier than a time the caller gives. A deleted row
//     is made again by the next Acquire with sequence 0 (ensure_key_exists,
//     lines 102-106, and the migration's default), so tokens start again
//     at 1: after a prune a new holder's token is not above an earlier
//     holder's, and fencing on it fails (see Prune).
//
// # Renewal errors
//
// The gem's renewer thread (lines 48-53) rescues nothing: a renew that
// fails with a database error (the server down, the connection gone)
// ends the thread. Nothing reaches the block (at most a line on stderr:
// Thread.report_on_exception, on by default since Ruby 2.5); the block
// runs on unrenewed, another process takes the row once locked_until
// passes, and the first holder learns nothing, not even at release: its
// release updates nothing and returns false, and run returns true
// (lines 58, 61).
// Config.RenewErrors chooses:
//
//   - RenewRetry (locksim's default, a deviation from lines 48-53): the
//     renewal returns a *locks.BackendError and the lease is not lost;
//     locks.Run tries again at the next tick, and a lease whose row nobody
//     took in the meantime lives on.
//   - RenewerDies (the gem's): after the first such error the lease renews
//     no more (every later Renew returns an error matching ErrRenewerDied
//     and sends nothing), Lost is not closed and fn's context is not
//     cancelled. The holder runs on until its row is taken, and learns
//     only at Release, which returns ErrLockLost (the gem's release
//     returns false: see below).
//
// A renewal that locks.Run's deadline (RenewEvery) cuts short is such an
// error too; the gem sets no deadline, and a renew stuck in a dead
// connection blocks its thread until the socket gives up, renewing no
// more meanwhile.
//
// # LockStolen and locks.Run
//
// The gem raises LockStolen asynchronously in the block's thread
// (Thread#raise, line 83), wherever the block is. Go cannot interrupt a
// goroutine: locks.Run closes Lost(), cancels fn's context at once and,
// once fn returns, returns an error matching locks.ErrLockLost (a
// *locks.LostError), not fn's error, and does not release (as line 58).
// fn must watch its context; a statement already under way is not
// stopped (fencing is for that).
//
// # Deviations that remain
//
//   - Identity (line 14): locked_by is Options.Owner (default "host:pid")
//     followed by " guid:" and 32 random hex digits, one per lease; the
//     gem's "host:… pid:… guid:…" is one per Locker object, so the same
//     object's get while it holds succeeds again, where here two leases of
//     one Locker are two holders.
//   - The token comes back from get's own UPDATE (RETURNING sequence); the
//     gem reads sequence in a second statement by key and locked_by
//     (lines 87-94), nil if the row was taken in between, and memoizes it
//     on the object (@sequence, never reset), so a Locker object run twice
//     yields its first sequence again.
//   - Timestamps are timestamptz and clock_timestamp(); the gem writes
//     clock_timestamp() at time zone 'UTC' into timestamp columns (lines
//     69-70, 82). The instants compared are the same. lock_for is sent as
//     microseconds; the gem formats the float into the SQL (lines 98-100).
//   - The table is created if absent (the gem ships a migration).
//   - ensure_key_exists (find, else create, ignoring a duplicate key
//     error; lines 102-106) is one INSERT … ON CONFLICT DO NOTHING, run
//     once per Acquire or TryAcquire, where the gem runs it once per
//     Locker.new (line 26). Either way a blocking wait that began before a
//     prune deleted its row polls a row that is not there until it gives
//     up (the gem's never does).
//   - Renewal errors are retried by default (RenewRetry, above): lines
//     48-53 let the renewer die (RenewerDies).
//   - Release of a row that is no longer ours returns an error matching
//     locks.ErrLockLost; the gem's release returns false (lines 73-77) and
//     run returns true (line 61), so its holder never learns.
//   - LockStolen is a cancelled context and an error, not an exception in
//     the block (line 83; above).
//   - WaitTimeout (a blocking Acquire that gives up) is locksim's; the
//     gem's blocking run loops until get succeeds (lines 40-42).
//   - Config.Clock = ClockClient is locksim's addition: every timestamp
//     is the client's injected locks.Clock, so a client whose clock runs
//     ahead believes other holders' rows have expired and takes them while
//     they are still held: two holders at once. (The gem always uses
//     clock_timestamp(), lines 69-70, 82; only prune's argument is the
//     client's, line 31.)
//   - Guarded writes (Lease.GuardedPut, GuardedGet) are locksim's: one
//     statement conditional on locked_by and sequence.
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
// # One client, two drivers
//
// Both algorithms are written once, without I/O, in package
// locks/postgres/machine (machine.Table, machine.Advisory): the
// statements above, in order, with the decisions between them. Locker and
// Advisory drive those machines over pgx; the simulator (package sim)
// drives the same machines over its PostgreSQL model, with the
// configuration TableConfig and AdvisoryMachineConfig make, so a
// simulated client sends what a real one sends. What stays here is pgx:
// connecting, scanning, a connection's IsClosed, and the guarded writes.
//
// Every error from the database is wrapped in a *locks.BackendError with
// Backend "postgres".
package postgres
