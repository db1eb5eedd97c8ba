// Package machine is locks/mysql's client algorithm without I/O: the one
// copy that the real driver (package locks/mysql, over database/sql and
// go-sql-driver/mysql) and the simulator's driver (package sim, over its
// MariaDB model) both run. See package locks/machine for the shape every
// lock machine shares.
//
// A Machine is one client (a Locker; a simulated client process). A Call
// is one request in progress on it — an acquire, a try-acquire, a renewal
// or a release — and a Lease one grant. A driver starts a request with
// Machine.Request and feeds the Call what happens: Reply when an operation
// it was asked to send is answered (or could not be), Cancel when the
// caller gives up. Each appends the Call's outputs to out and returns it;
// a Call has at most one operation in flight at a time and ends with one
// OutDone. No timer: the waiting is the server's (GET_LOCK's timeout).
//
// The algorithm:
//
//   - Acquire opens a connection of its own for the lease (OpConnect; the
//     real driver's db.Conn, pinned), then GET_LOCK(name, wait) on it
//     (OpGetLock): 1 granted; 0 the wait passed with the lock held
//     elsewhere; NULL an error. A try waits 0 s; an acquire waits
//     WaitTimeout, or, without one, MaxWait at a time, again and again.
//   - Granted, the token: the counter row of the name incremented on the
//     same connection (OpToken: INSERT ... ON DUPLICATE KEY UPDATE n =
//     LAST_INSERT_ID(n + 1)); its new value is the token.
//   - Renew checks the connection (OpCheck: SELECT IS_USED_LOCK(name),
//     the lock's holder's connection id, on the pinned connection): ours,
//     the lock is held; another id or NULL, or the connection dead (any
//     network error or timeout: the driver gives the connection up), the
//     lease is lost.
//   - Release: RELEASE_LOCK(name) on the pinned connection (OpRelease): 1
//     released; 0 (another's) or NULL (nobody's) lost; then the
//     connection goes back (OutClose, not a hang-up: the lock is gone).
//   - Whenever the lock may be held but the request fails or is given up
//     (a wait cancelled, the token not had), the machine hangs the
//     connection up (OutClose with Drop): the server frees the lock when
//     it sees the connection end.
//
// Pooled (the database/sql pitfall): every statement goes to the pool
// (db.QueryRowContext), not to a pinned connection. The GET_LOCK's
// connection goes back to the pool when the row is read, and a pool that
// keeps no idle connection (SetMaxIdleConns(0)) closes it: the server
// frees the lock at once, and nobody is told. Renew is then a ping of the
// pool (db.PingContext), which succeeds; Release's RELEASE_LOCK runs on
// another connection and answers NULL or 0: the loss is noticed only
// then.
package machine

import (
	"time"

	lm "github.com/locksim/locksim/locks/machine"
)

// MaxWait is the GET_LOCK timeout of an acquire without a wait timeout, in
// seconds (a year): MariaDB 10.11 answers NULL to a negative timeout
// (warning 1411, "Incorrect timeout value"), where MySQL 5.7 and later
// wait for ever.
const MaxWait = 365 * 24 * 3600

// Config is what a Machine needs (package locks/mysql's MachineConfig fills
// it in).
type Config struct {
	// Timeout bounds each operation beyond GET_LOCK's own wait, on true
	// time (the driver's context deadline).
	Timeout time.Duration
	// WaitTimeout is an acquire's GET_LOCK timeout; 0: MaxWait, repeated.
	WaitTimeout time.Duration
	// Pooled runs every statement on the pool (the pitfall; see the
	// package doc).
	Pooled bool
}

// Machine is one MySQL lock client. It keeps no state but its
// configuration (a lease's state is in its Lease, a request's in its
// Call), so Calls may run on it concurrently.
type Machine struct{ cfg Config }

// New returns the machine of one client.
func New(cfg Config) *Machine { return &Machine{cfg: cfg} }

// Config is the machine's configuration.
func (m *Machine) Config() Config { return m.cfg }

// ReqKind is what a request asks.
type ReqKind uint8

// Request kinds.
const (
	Acquire    ReqKind = iota // wait on the server until held, failed or timed out
	TryAcquire                // GET_LOCK with a 0 s wait
	Renew                     // check the pinned connection
	Release                   // RELEASE_LOCK and give the connection back
)

var reqNames = [...]string{"acquire", "try-acquire", "renew", "release"}

// String names the request kind.
func (k ReqKind) String() string { return reqNames[k] }

// Request is a caller's request.
type Request struct {
	Kind ReqKind
	Key  string // Acquire, TryAcquire
	// Lease is the grant to renew or release; for an acquire, where to
	// keep its grant (nil: a new Lease).
	Lease *Lease
}

// OpKind is an operation on the server.
type OpKind uint8

// Operations.
const (
	OpConnect OpKind = iota // open the lease's connection
	OpGetLock               // SELECT GET_LOCK(Name, Wait), CONNECTION_ID()
	OpToken                 // the counter row of Name, incremented; LAST_INSERT_ID
	OpCheck                 // SELECT IS_USED_LOCK(Name)
	OpRelease               // SELECT RELEASE_LOCK(Name)
	OpPing                  // ping the pool (Pooled renew)
)

var opNames = [...]string{"connect", "get-lock", "token", "check", "release", "ping"}

// String names the operation.
func (k OpKind) String() string { return opNames[k] }

// Op is one operation.
type Op struct {
	Kind OpKind
	Name string // the lock's name
	// Wait is GET_LOCK's timeout in seconds (fractions allowed).
	Wait float64
	// Pooled: run on the pool, not the pinned connection.
	Pooled bool
}

// Outcome is what a reply says.
type Outcome uint8

// Outcomes.
const (
	OK    Outcome = iota // connect, ping: done
	Int                  // a number: N (and ConnID for get-lock)
	Null                 // SQL NULL
	Dead                 // the connection is gone: refused, reset, timed out
	Error                // an error answer; the connection lives
)

var outcomeNames = [...]string{"ok", "int", "null", "dead", "error"}

// String names the outcome.
func (o Outcome) String() string { return outcomeNames[o] }

// Reply is the answer to an Op.
type Reply struct {
	Outcome Outcome
	N       int64
	// ConnID is CONNECTION_ID() (get-lock).
	ConnID int64
}

// OutKind is the kind of an Output.
type OutKind uint8

// Output kinds.
const (
	// OutSend: send Op, its answer due within D on Clock (true time).
	// Detached: sent even though the caller has given up.
	OutSend OutKind = iota
	// OutClose: the lease's connection is done with. Drop: hang it up
	// (the server frees what it holds); else give it back (database/sql
	// returns a db.Conn to its pool). No reply.
	OutClose
	// OutGrant: the lock is held: Lease.
	OutGrant
	// OutLost: the lease is lost: Reason.
	OutLost
	// OutFail: the request fails, because of Cause, while doing Text
	// ("connect", "acquire", "token", "renew", "release"). OutDone follows.
	OutFail
	// OutDone: the request is over with Result.
	OutDone
)

// Cause is why a request failed.
type Cause uint8

// Causes of OutFail.
const (
	CauseReply     Cause = iota // the reply just fed in
	CauseCancelled              // the caller gave up
)

var causeNames = [...]string{"reply", "cancelled"}

// String names the cause.
func (c Cause) String() string { return causeNames[c] }

// LossReason is why a lease was lost.
type LossReason uint8

// Loss reasons.
const (
	LossConnection LossReason = iota // the connection holding the lock is gone
	LossNotHeld                      // the server says another connection, or none, holds it
)

// Output is one thing a Call asks its driver to do or tells it.
type Output struct {
	Kind     OutKind
	Result   lm.Result  // OutDone
	Clock    lm.Clock   // OutSend
	Detached bool       // OutSend
	Drop     bool       // OutClose
	Reason   LossReason // OutLost
	Cause    Cause      // OutFail
	D        time.Duration
	Lease    *Lease // OutGrant
	Text     string // OutFail: the stage
	Op       Op     // OutSend
}

// LossText is an OutLost's reason as locks.LostError carries it.
func (o *Output) LossText() string {
	if o.Reason == LossNotHeld {
		return "the server says this connection does not hold the lock"
	}
	return "connection holding the lock is gone"
}

// Lease is one grant.
type Lease struct {
	Key   string
	Token int64
	// ConnID is the server's id of the connection that holds the lock.
	ConnID int64
	lost   bool
}

// Lost reports whether the machine found the lease lost.
func (l *Lease) Lost() bool { return l.lost }

type phase uint8

const (
	phConnect phase = iota
	phGetLock
	phToken
	phCheck
	phRelease
	phPing
	phDone
)

// Call is one request in progress. Its zero value is ready for
// Machine.Request.
type Call struct {
	kind  ReqKind
	phase phase
	key   string
	lease *Lease
	conn  int64
}

// Done reports whether the call has ended.
func (c *Call) Done() bool { return c.phase == phDone }

// Kind is the call's request kind.
func (c *Call) Kind() ReqKind { return c.kind }

// Request starts r on c at client time now.
func (m *Machine) Request(c *Call, r Request, now int64, out []Output) []Output {
	*c = Call{kind: r.Kind, key: r.Key, lease: r.Lease}
	switch r.Kind {
	case Acquire, TryAcquire:
		if m.cfg.Pooled {
			return m.getLock(c, out)
		}
		c.phase = phConnect
		return m.send(c, Op{Kind: OpConnect}, m.cfg.Timeout, out)
	}
	if c.lease.lost {
		return done(c, lm.Lost, out)
	}
	if r.Kind == Renew {
		if m.cfg.Pooled {
			c.phase = phPing
			return m.send(c, Op{Kind: OpPing, Pooled: true}, m.cfg.Timeout, out)
		}
		c.phase = phCheck
		return m.send(c, Op{Kind: OpCheck, Name: c.lease.Key}, m.cfg.Timeout, out)
	}
	c.phase = phRelease
	return m.send(c, Op{Kind: OpRelease, Name: c.lease.Key, Pooled: m.cfg.Pooled}, m.cfg.Timeout, out)
}

func (m *Machine) send(c *Call, op Op, d time.Duration, out []Output) []Output {
	return append(out, Output{Kind: OutSend, Op: op, D: d, Clock: lm.TrueTime})
}

func done(c *Call, r lm.Result, out []Output) []Output {
	c.phase = phDone
	return append(out, Output{Kind: OutDone, Result: r})
}

// wait is GET_LOCK's timeout for c, in seconds.
func (m *Machine) wait(c *Call) float64 {
	switch {
	case c.kind == TryAcquire:
		return 0
	case m.cfg.WaitTimeout > 0:
		return m.cfg.WaitTimeout.Seconds()
	}
	return MaxWait
}

func (m *Machine) getLock(c *Call, out []Output) []Output {
	c.phase = phGetLock
	w := m.wait(c)
	return m.send(c, Op{Kind: OpGetLock, Name: c.key, Wait: w, Pooled: m.cfg.Pooled},
		time.Duration(w*float64(time.Second))+m.cfg.Timeout, out)
}

// hangUp ends an acquire that may hold the lock on its connection.
func (m *Machine) hangUp(c *Call, out []Output) []Output {
	if m.cfg.Pooled {
		return out // the pool has the connection
	}
	return append(out, Output{Kind: OutClose, Drop: true})
}

func (m *Machine) fail(c *Call, cause Cause, stage string, out []Output) []Output {
	out = append(out, Output{Kind: OutFail, Cause: cause, Text: stage})
	if cause == CauseCancelled {
		return done(c, lm.Cancelled, out)
	}
	return done(c, lm.Failed, out)
}

// Reply feeds c the answer to its op in flight, at client time now.
func (m *Machine) Reply(c *Call, r Reply, now int64, out []Output) []Output {
	switch c.phase {
	case phConnect:
		if r.Outcome != OK {
			return m.fail(c, CauseReply, "connect", out)
		}
		return m.getLock(c, out)
	case phGetLock:
		switch {
		case r.Outcome == Int && r.N == 1:
			c.conn = r.ConnID
			c.phase = phToken
			return m.send(c, Op{Kind: OpToken, Name: c.key, Pooled: m.cfg.Pooled}, m.cfg.Timeout, out)
		case r.Outcome == Int && r.N == 0:
			if c.kind == Acquire && m.cfg.WaitTimeout <= 0 {
				return m.getLock(c, out) // MaxWait passed: wait again
			}
			out = m.hangUp(c, out)
			return done(c, lm.NotAcquired, out)
		}
		out = m.hangUp(c, out)
		return m.fail(c, CauseReply, "acquire", out)
	case phToken:
		if r.Outcome != Int {
			out = m.hangUp(c, out)
			return m.fail(c, CauseReply, "token", out)
		}
		l := c.lease
		if l == nil {
			l = new(Lease)
		}
		*l = Lease{Key: c.key, Token: r.N, ConnID: c.conn}
		c.lease = l
		c.phase = phDone
		out = append(out, Output{Kind: OutGrant, Lease: l})
		return append(out, Output{Kind: OutDone, Result: lm.OK})
	case phCheck:
		switch {
		case r.Outcome == Int && r.N == c.lease.ConnID:
			return done(c, lm.OK, out)
		case r.Outcome == Int || r.Outcome == Null:
			return m.lost(c, LossNotHeld, true, out)
		case r.Outcome == Dead:
			return m.lost(c, LossConnection, true, out)
		}
		return m.fail(c, CauseReply, "renew", out)
	case phPing:
		if r.Outcome == OK {
			return done(c, lm.OK, out)
		}
		return m.fail(c, CauseReply, "renew", out)
	case phRelease:
		switch {
		case r.Outcome == Int && r.N == 1:
			if !m.cfg.Pooled {
				out = append(out, Output{Kind: OutClose})
			}
			return done(c, lm.OK, out)
		case r.Outcome == Int || r.Outcome == Null:
			return m.lost(c, LossNotHeld, !m.cfg.Pooled, out)
		case r.Outcome == Dead:
			return m.lost(c, LossConnection, !m.cfg.Pooled, out)
		}
		// An error answer: the lock may be held; hanging up frees it.
		out = m.hangUp(c, out)
		return m.fail(c, CauseReply, "release", out)
	}
	return out
}

func (m *Machine) lost(c *Call, why LossReason, hangUp bool, out []Output) []Output {
	c.lease.lost = true
	if hangUp {
		out = append(out, Output{Kind: OutClose, Drop: true})
	}
	out = append(out, Output{Kind: OutLost, Reason: why})
	return done(c, lm.Lost, out)
}

// Cancel tells c that the caller gave up: the op it asked to send was not
// sent, or (an acquire) its answer will not be waited for — the real
// driver's context ended during the statement, which go-sql-driver answers
// by closing the connection. An acquire hangs its connection up: a
// GET_LOCK waiting or granted dies with it. A renewal or release cut off
// during its statement is a Dead reply, not a Cancel: the connection went
// with it, and the lock too.
func (m *Machine) Cancel(c *Call, now int64, out []Output) []Output {
	switch c.phase {
	case phDone:
		return out
	case phGetLock, phToken:
		out = m.hangUp(c, out)
		stage := "acquire"
		if c.phase == phToken {
			stage = "token"
		}
		return m.fail(c, CauseCancelled, stage, out)
	case phConnect:
		return m.fail(c, CauseCancelled, "connect", out)
	}
	return m.fail(c, CauseCancelled, c.kind.String(), out)
}
