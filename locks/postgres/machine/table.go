package machine

import (
	"time"

	lm "github.com/locksim/locksim/locks/machine"
)

// TableConfig is what a Table needs: locks.Options and package
// locks/postgres's Config, resolved (locks/postgres.TableConfig fills it
// in).
type TableConfig struct {
	// Table is the lock table's name as an SQL identifier, quoted.
	Table string
	// ClientClock: clock client (the client's clock writes and compares
	// locked_until); else clock db (clock_timestamp()).
	ClientClock bool
	// RenewerDies: renew_errors stop (the gem's renewer thread dies at
	// its first database error); else retry.
	RenewerDies bool
	// TTL is lock_for.
	TTL time.Duration
	// PollInterval is the time between a blocking acquire's gets, on the
	// client clock.
	PollInterval time.Duration
	// WaitTimeout bounds a blocking acquire on the client clock; 0: none.
	WaitTimeout time.Duration
	// Owner is locked_by's first part.
	Owner string
}

// Table is the lease table's client: the locker gem's Locker (see package
// locks/postgres for its record, with the gem's line numbers).
//
//   - Acquire and TryAcquire: ensure the key's row exists (the gem's
//     ensure_key_exists, lines 102-106: an INSERT ... ON CONFLICT DO
//     NOTHING, once per request), then get (lines 67-71): one UPDATE that
//     takes the row when it is free, ours, or expired, sets locked_until
//     = now + TTL and bumps sequence, the token. No row back: held
//     elsewhere. A blocking acquire gets again every PollInterval (line
//     40's loop; locks.Poll's wait timeout, measured on the client clock
//     from the first get); an error ends it (line 40 raises).
//   - Renew (lines 79-85): locked_until = now + TTL while locked_by is
//     ours; no row: the lease is lost (LockStolen). An error is returned;
//     under renew_errors stop (lines 48-53: the renewer rescues nothing)
//     it also ends the renewer: every later Renew fails at once, sending
//     nothing. A renewal the caller cancelled (not its deadline) does not.
//   - Release (lines 73-77): clear locked_by where it is ours; no row
//     affected: the lease is lost.
//   - Prune (lines 29-32): delete the rows expired before the caller's
//     instant.
//
// A Table holds nothing that changes after NewTable: a driver may run
// Calls on it from several goroutines at once, each Call (and each Lease)
// fed by one goroutine at a time.
type Table struct {
	cfg                                               TableConfig
	ensureSQL, getSQL, renewSQL, releaseSQL, pruneSQL string
}

// NewTable returns the lease table's client machine.
func NewTable(cfg TableConfig) *Table {
	m := &Table{cfg: cfg}
	t := cfg.Table
	m.ensureSQL = `INSERT INTO ` + t + ` (key) VALUES ($1) ON CONFLICT (key) DO NOTHING`
	m.releaseSQL = `UPDATE ` + t + ` SET locked_by = NULL WHERE key = $1 AND locked_by = $2`
	m.pruneSQL = `DELETE FROM ` + t + ` WHERE locked_until < $1`
	if !cfg.ClientClock {
		m.getSQL = `UPDATE ` + t + ` SET locked_by = $2, locked_at = clock_timestamp(),` +
			` locked_until = clock_timestamp() + $3::bigint * interval '1 microsecond', sequence = sequence + 1` +
			` WHERE key = $1 AND (locked_by IS NULL OR locked_by = $2 OR locked_until < clock_timestamp())` +
			` RETURNING sequence, locked_until`
		m.renewSQL = `UPDATE ` + t + ` SET locked_until = clock_timestamp() + $3::bigint * interval '1 microsecond'` +
			` WHERE key = $1 AND locked_by = $2 RETURNING locked_until`
	} else {
		m.getSQL = `UPDATE ` + t + ` SET locked_by = $2, locked_at = $3, locked_until = $4, sequence = sequence + 1` +
			` WHERE key = $1 AND (locked_by IS NULL OR locked_by = $2 OR locked_until < $3)` +
			` RETURNING sequence, locked_until`
		m.renewSQL = `UPDATE ` + t + ` SET locked_until = $3 WHERE key = $1 AND locked_by = $2 RETURNING locked_until`
	}
	return m
}

// Config is the machine's configuration.
func (m *Table) Config() TableConfig { return m.cfg }

// Request starts r on c (which must not be in progress) at client time
// now.
func (m *Table) Request(c *Call, r Request, now int64, out []Output) []Output {
	*c = Call{kind: r.Kind}
	switch r.Kind {
	case Acquire, TryAcquire:
		newLease(c, &r)
		c.lease.LockedBy = m.cfg.Owner + " guid:" + r.Guid
		c.phase = phEnsure
		return append(out, Output{Kind: OutSend, Op: Op{Kind: OpEnsure, SQL: m.ensureSQL, Key: r.Key}})
	case Renew:
		c.lease = r.Lease
		switch {
		case c.lease.lost:
			return done(c, lm.Lost, out)
		case c.lease.died:
			return fail(c, CauseRenewerDied, "renew", out)
		}
		c.phase = phRenew
		return append(out, Output{Kind: OutSend, Op: m.stmt(c, OpRenew, now)})
	case Release:
		c.lease = r.Lease
		c.phase = phRelease
		return append(out, Output{Kind: OutSend, Op: Op{Kind: OpRelease, SQL: m.releaseSQL, Key: c.lease.Key, LockedBy: c.lease.LockedBy}})
	case Prune:
		c.phase = phPrune
		return append(out, Output{Kind: OutSend, Op: Op{Kind: OpPrune, SQL: m.pruneSQL, At: r.Before}})
	}
	return done(c, lm.Failed, out)
}

// stmt is a get or renew of c's lease at client time now.
func (m *Table) stmt(c *Call, kind OpKind, now int64) Op {
	op := Op{Kind: kind, SQL: m.getSQL, Key: c.lease.Key, LockedBy: c.lease.LockedBy, ClientClock: m.cfg.ClientClock}
	if kind == OpRenew {
		op.SQL = m.renewSQL
	}
	if m.cfg.ClientClock {
		op.At, op.Until = now, now+int64(m.cfg.TTL)
	} else {
		op.TTLMicros = m.cfg.TTL.Microseconds()
	}
	return op
}

func (m *Table) get(c *Call, now int64, out []Output) []Output {
	c.phase = phGet
	return append(out, Output{Kind: OutSend, Op: m.stmt(c, OpGet, now)})
}

// Reply feeds c the answer to its statement in flight, at client time
// now.
func (m *Table) Reply(c *Call, r Reply, now int64, out []Output) []Output {
	switch c.phase {
	case phEnsure:
		if r.Outcome == Failed {
			return fail(c, CauseReply, "acquire", out)
		}
		if c.kind == Acquire && m.cfg.WaitTimeout > 0 {
			c.deadline, c.timed = now+int64(m.cfg.WaitTimeout), true
		}
		return m.get(c, now, out)
	case phGet:
		switch r.Outcome {
		case Row:
			c.lease.Token = r.N
			c.phase = phDone
			out = append(out, Output{Kind: OutGrant, Lease: c.lease})
			return append(out, Output{Kind: OutDone, Result: lm.OK})
		case NoRow:
			if c.kind == TryAcquire {
				return done(c, lm.NotAcquired, out)
			}
			wait := m.cfg.PollInterval
			if c.timed {
				left := time.Duration(c.deadline - now)
				if left <= 0 {
					return done(c, lm.NotAcquired, out)
				}
				wait = min(wait, left)
			}
			c.phase = phPoll
			return append(out, Output{Kind: OutTimer, D: wait, Clock: lm.ClientClock})
		}
		return fail(c, CauseReply, "acquire", out)
	case phRenew:
		switch r.Outcome {
		case Row:
			return done(c, lm.OK, out)
		case NoRow:
			return lost(c, "renew: the row was taken by another owner (LockStolen)", false, out)
		}
		if m.cfg.RenewerDies && !r.Cancelled && !c.lease.died {
			c.lease.died = true
			out = append(out, Output{Kind: OutDied})
		}
		return fail(c, CauseReply, "renew", out)
	case phRelease:
		switch r.Outcome {
		case Row:
			return done(c, lm.OK, out)
		case NoRow:
			return lost(c, "release: the row is no longer ours", false, out)
		}
		return fail(c, CauseReply, "release", out)
	case phPrune:
		if r.Outcome == Failed {
			return fail(c, CauseReply, "prune", out)
		}
		c.phase = phDone
		return append(out, Output{Kind: OutDone, Result: lm.OK, N: r.N})
	}
	return out
}

// Fire feeds c its poll timer firing, at client time now: the next get.
func (m *Table) Fire(c *Call, now int64, out []Output) []Output {
	if c.phase != phPoll {
		return out
	}
	return m.get(c, now, out)
}

// Cancel tells c that the caller gave up while it waited for its timer.
func (m *Table) Cancel(c *Call, now int64, out []Output) []Output {
	if c.phase == phDone {
		return out
	}
	return fail(c, CauseCancelled, "acquire", out)
}
