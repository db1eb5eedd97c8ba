package machine

import (
	"hash/crc32"
	"strconv"
	"strings"
	"time"

	lm "github.com/locksim/locksim/locks/machine"
)

// AdvisoryConfig is what an Advisory needs (locks/postgres.AdvisoryMachineConfig
// fills it in).
type AdvisoryConfig struct {
	// Lockspace is the advisory key pair's first int4.
	Lockspace int32
	// Sequence is the token sequence's name as an SQL identifier,
	// quoted.
	Sequence string
	// WaitTimeout bounds a blocking acquire through the server's
	// lock_timeout; 0: none.
	WaitTimeout time.Duration
}

// Advisory is the session advisory lock's client (locks/postgres.Advisory):
// each lease holds its lock on a connection opened for it alone, and the
// lock lives as long as that connection.
//
//   - TryAcquire: connect, then one statement: pg_try_advisory_lock and,
//     only once granted, nextval of the token sequence (NULL: held
//     elsewhere; the connection is closed again).
//   - Acquire: connect, SET lock_timeout if a wait timeout is set,
//     pg_advisory_lock (the server queues the connection until the lock
//     is free, or gives up at lock_timeout: not acquired), then nextval.
//     Whatever fails, the connection is closed: the lock dies with it.
//   - Renew is the keepalive: SELECT 1 on the lock's connection. An error
//     with the connection closed (the server's side gone, or pgx gave the
//     connection up at the caller's deadline) loses the lease; another
//     error is returned and the lease lives on.
//   - Release: pg_advisory_unlock, then close the connection. The
//     connection found closed, or the unlock false: the lease is lost.
//     A lease released before releases again as a no-op.
//
// An Advisory holds nothing that changes after NewAdvisory: a driver may
// run Calls on it from several goroutines at once, each Call (and each
// Lease) fed by one goroutine at a time.
type Advisory struct {
	cfg                              AdvisoryConfig
	trySQL, lockSQL, nextSQL, setSQL string
}

// The advisory lock's fixed statements.
const (
	PingSQL   = "SELECT 1"
	UnlockSQL = "SELECT pg_advisory_unlock($1::int4, $2::int4)"
)

// NewAdvisory returns the advisory lock's client machine.
func NewAdvisory(cfg AdvisoryConfig) *Advisory {
	m := &Advisory{cfg: cfg}
	seq := "'" + strings.ReplaceAll(cfg.Sequence, "'", "''") + "'"
	// The CASE takes a token only once the lock is granted.
	m.trySQL = `SELECT CASE WHEN pg_try_advisory_lock($1::int4, $2::int4) THEN nextval(` + seq + `) END`
	m.lockSQL = `SELECT pg_advisory_lock($1::int4, $2::int4)`
	m.nextSQL = `SELECT nextval(` + seq + `)`
	if cfg.WaitTimeout > 0 {
		m.setSQL = "SET lock_timeout = " + strconv.FormatInt(max(cfg.WaitTimeout.Milliseconds(), 1), 10)
	}
	return m
}

// Config is the machine's configuration.
func (m *Advisory) Config() AdvisoryConfig { return m.cfg }

// LockKey is the advisory lock key pair for key: (Lockspace, CRC-32 of
// key as a signed int4), as Locker::Advisory computes it.
func (m *Advisory) LockKey(key string) (int32, int32) {
	return m.cfg.Lockspace, int32(crc32.ChecksumIEEE([]byte(key)))
}

func (m *Advisory) send(c *Call, p phase, kind OpKind, sql string, out []Output) []Output {
	c.phase = p
	return append(out, Output{Kind: OutSend, Op: Op{Kind: kind, SQL: sql, Space: c.lease.Space, Hash: c.lease.Hash}})
}

// Request starts r on c (which must not be in progress) at client time
// now.
func (m *Advisory) Request(c *Call, r Request, now int64, out []Output) []Output {
	*c = Call{kind: r.Kind}
	switch r.Kind {
	case Acquire, TryAcquire:
		newLease(c, &r)
		c.lease.Space, c.lease.Hash = m.LockKey(r.Key)
		return m.send(c, phConnect, OpConnect, "", out)
	case Renew:
		c.lease = r.Lease
		switch {
		case c.lease.lost:
			return done(c, lm.Lost, out)
		case c.lease.gone:
			return lost(c, "renew after release", false, out)
		}
		return m.send(c, phPing, OpPing, PingSQL, out)
	case Release:
		c.lease = r.Lease
		if c.lease.gone {
			if c.lease.lost {
				return done(c, lm.Lost, out)
			}
			return done(c, lm.OK, out) // released before
		}
		c.lease.gone = true
		return m.send(c, phUnlock, OpUnlock, UnlockSQL, out)
	}
	return done(c, lm.Failed, out)
}

// closeThen appends the closing of c's connection.
func closeThen(out []Output) []Output {
	return append(out, Output{Kind: OutClose})
}

// Reply feeds c the answer to its statement in flight, at client time
// now.
func (m *Advisory) Reply(c *Call, r Reply, now int64, out []Output) []Output {
	switch c.phase {
	case phConnect:
		if r.Outcome != Row {
			return fail(c, CauseReply, "connect", out)
		}
		switch {
		case c.kind == TryAcquire:
			return m.send(c, phTryLock, OpTryLock, m.trySQL, out)
		case m.setSQL != "":
			return m.send(c, phSetTimeout, OpSetLockTimeout, m.setSQL, out)
		}
		return m.send(c, phLock, OpLock, m.lockSQL, out)
	case phSetTimeout:
		if r.Outcome == Failed {
			return fail(c, CauseReply, "acquire", closeThen(out))
		}
		return m.send(c, phLock, OpLock, m.lockSQL, out)
	case phLock:
		switch r.Outcome {
		case Row:
			return m.send(c, phNextval, OpNextval, m.nextSQL, out)
		case LockTimeout:
			return done(c, lm.NotAcquired, closeThen(out))
		}
		if r.Cancelled {
			return fail(c, CauseCancelled, "acquire", closeThen(out))
		}
		return fail(c, CauseReply, "acquire", closeThen(out))
	case phTryLock, phNextval:
		switch r.Outcome {
		case Row:
			c.lease.Token = r.N
			c.phase = phDone
			out = append(out, Output{Kind: OutGrant, Lease: c.lease})
			return append(out, Output{Kind: OutDone, Result: lm.OK})
		case NoRow:
			if c.phase == phTryLock {
				return done(c, lm.NotAcquired, closeThen(out))
			}
		}
		return fail(c, CauseReply, "acquire", closeThen(out))
	case phPing:
		switch {
		case r.Outcome != Failed:
			return done(c, lm.OK, out)
		case r.Closed:
			c.lease.gone = true
			return lost(c, "connection holding the advisory lock is gone", true, out)
		}
		return fail(c, CauseReply, "renew", out)
	case phUnlock:
		out = closeThen(out)
		switch {
		case r.Outcome == Failed && r.Closed:
			return lost(c, "release: connection holding the advisory lock is gone", true, out)
		case r.Outcome == Failed:
			return fail(c, CauseReply, "release", out) // closing the connection frees the lock anyway
		case r.Outcome == NoRow:
			return lost(c, "release: this session did not hold the advisory lock", false, out)
		}
		return done(c, lm.OK, out)
	}
	return out
}

// Fire does nothing: the advisory lock sets no timers (a blocking acquire
// waits on the server).
func (m *Advisory) Fire(c *Call, now int64, out []Output) []Output { return out }

// Cancel tells c that the caller gave up; the advisory lock has no timer
// to give up on, so only a call not yet done ends (cancelled, its
// connection closed if it had one).
func (m *Advisory) Cancel(c *Call, now int64, out []Output) []Output {
	switch c.phase {
	case phDone:
		return out
	case phConnect:
		return fail(c, CauseCancelled, "connect", out)
	case phSetTimeout, phLock, phTryLock, phNextval:
		return fail(c, CauseCancelled, "acquire", closeThen(out))
	}
	return fail(c, CauseCancelled, c.kind.String(), out)
}
