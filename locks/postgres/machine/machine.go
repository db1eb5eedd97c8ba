// Package machine is locks/postgres's two client algorithms without I/O:
// the lease table (Table, the locker gem's Locker) and the session
// advisory lock (Advisory). Each is the one copy that the real driver
// (package locks/postgres, over pgx) and the simulator's driver (package
// sim, over its PostgreSQL model) both run. See package locks/machine for
// the shape every lock machine shares.
//
// The two machines live in one package because they speak one
// vocabulary: the same requests, the same statement replies (a row or
// none, an error, the connection closed), the same outputs and the same
// Lease; only their statements and their states differ.
//
// A driver starts a request with Request and then feeds the Call what
// happens to it: Reply when a statement it was asked to send is answered
// or failed, Fire when the timer it was asked to set fires, Cancel when
// the caller gives up while waiting for that timer. Each appends the
// Call's outputs to out and returns it; a Call has at most one statement
// in flight or one timer pending, and ends with one OutDone. A statement
// is sent without a deadline of its own: the caller's bound (locks.Run's
// renew_every for a renewal, the TTL for a release) is the driver's
// context, and a statement it cuts short is a failed reply (Reply with
// Cancelled set when the caller cancelled rather than ran out of time).
//
// Every input carries now, the client clock's reading in nanoseconds
// since the Unix epoch (the clock: client table writes it), and
// randomness comes in as the request's Guid (the lease table's
// locked_by), so a simulated client is deterministic.
package machine

import (
	"time"

	lm "github.com/locksim/locksim/locks/machine"
)

// ReqKind is what a request asks.
type ReqKind uint8

// Request kinds.
const (
	Acquire    ReqKind = iota // poll (table) or wait on the server (advisory) until held
	TryAcquire                // one attempt
	Renew                     // table: push locked_until on; advisory: check the connection
	Release                   // give the lock up if still ours
	Prune                     // table: Locker.prune, delete rows expired before Before
)

var reqNames = [...]string{"acquire", "try-acquire", "renew", "release", "prune"}

// String names the request kind.
func (k ReqKind) String() string { return reqNames[k] }

// Request is a caller's request.
type Request struct {
	Kind ReqKind
	// Key is the lock's key (Acquire, TryAcquire).
	Key string
	// Guid is fresh randomness for the lease table's locked_by
	// (Acquire, TryAcquire): "<owner> guid:<Guid>".
	Guid string
	// Lease is the grant to renew or release, or, for an acquire, where
	// to keep its grant (nil: a new Lease).
	Lease *Lease
	// Before is Prune's instant (Unix nanoseconds, as the caller gives
	// it: on the client's clock whatever the clock source).
	Before int64
}

// OpKind is a statement (or a connection's opening).
type OpKind uint8

// Statements.
const (
	OpEnsure         OpKind = iota // table: INSERT the key's row if absent (Exec)
	OpGet                          // table: Locker's get UPDATE ... RETURNING sequence, locked_until
	OpRenew                        // table: renew UPDATE ... RETURNING locked_until
	OpRelease                      // table: clear locked_by if ours (Exec, rows affected)
	OpPrune                        // table: DELETE rows expired before At (Exec, rows affected)
	OpConnect                      // advisory: open the lease's own connection
	OpSetLockTimeout               // advisory: SET lock_timeout (Exec)
	OpLock                         // advisory: pg_advisory_lock, waits on the server
	OpTryLock                      // advisory: pg_try_advisory_lock, then nextval if granted (N, or no row for NULL)
	OpNextval                      // advisory: nextval of the token sequence (N)
	OpPing                         // advisory: SELECT 1 on the lease's connection
	OpUnlock                       // advisory: pg_advisory_unlock (a row for true, none for false)
)

var opNames = [...]string{"ensure", "get", "renew", "release", "prune", "connect", "set-lock-timeout", "lock", "try-lock", "nextval", "ping", "unlock"}

// String names the statement.
func (k OpKind) String() string { return opNames[k] }

// Op is one statement as the backend issues it: SQL with its parameters.
type Op struct {
	Kind OpKind
	// SQL is the statement's text ("" for OpConnect).
	SQL string
	// Key is the lease table's key ($1), LockedBy its locked_by ($2).
	Key, LockedBy string
	// TTLMicros is $3 of get and renew under clock db: the TTL in
	// microseconds.
	TTLMicros int64
	// At and Until are client-clock instants (Unix nanoseconds): under
	// clock client, get's $3 (now) and $4 (now + TTL), renew's $3
	// (Until); prune's $1 (At).
	At, Until int64
	// ClientClock says get and renew take At/Until, not TTLMicros.
	ClientClock bool
	// Space and Hash are the advisory lock's key pair ($1, $2).
	Space, Hash int32
}

// Args are the statement's parameters, in order, for a driver that sends
// them as Go values (pgx): client-clock instants as time.Time.
func (o *Op) Args() []any {
	switch o.Kind {
	case OpEnsure:
		return []any{o.Key}
	case OpGet:
		if o.ClientClock {
			return []any{o.Key, o.LockedBy, time.Unix(0, o.At), time.Unix(0, o.Until)}
		}
		return []any{o.Key, o.LockedBy, o.TTLMicros}
	case OpRenew:
		if o.ClientClock {
			return []any{o.Key, o.LockedBy, time.Unix(0, o.Until)}
		}
		return []any{o.Key, o.LockedBy, o.TTLMicros}
	case OpRelease:
		return []any{o.Key, o.LockedBy}
	case OpPrune:
		return []any{time.Unix(0, o.At)}
	case OpLock, OpTryLock, OpUnlock:
		return []any{o.Space, o.Hash}
	}
	return nil
}

// Outcome is what a statement's reply says.
type Outcome uint8

// Outcomes.
const (
	// Row: the statement returned its row (N: sequence, token or rows
	// affected), a connection opened, pg_advisory_unlock true.
	Row Outcome = iota
	// NoRow: no row returned (pgx.ErrNoRows), no row affected, a NULL
	// token, pg_advisory_unlock false.
	NoRow
	// LockTimeout: pg_advisory_lock gave up at lock_timeout (55P03).
	LockTimeout
	// Failed: an error: the server down or unreachable, the connection
	// broken, a timeout, an error answer.
	Failed
)

var outcomeNames = [...]string{"row", "no-row", "lock-timeout", "failed"}

// String names the outcome.
func (o Outcome) String() string { return outcomeNames[o] }

// Reply is the answer to an Op.
type Reply struct {
	Outcome Outcome
	// N is the row's number: get's sequence, the token of try-lock and
	// nextval, the rows an Exec affected.
	N int64
	// Closed (Failed, advisory): the connection is closed after the
	// error (pgx's IsClosed): the server's side and its locks are gone,
	// or pgx gave the connection up.
	Closed bool
	// Cancelled (Failed): the caller cancelled the statement (its
	// context's cause is context.Canceled), as opposed to its deadline
	// passing or the server failing.
	Cancelled bool
}

// OutKind is the kind of an Output.
type OutKind uint8

// Output kinds.
const (
	// OutSend: send Op (on the lease's connection, for the advisory
	// lock), with no deadline of its own.
	OutSend OutKind = iota
	// OutTimer: call Fire after D on Clock (the poll interval, on the
	// client clock).
	OutTimer
	// OutClose: close the advisory lease's connection (nothing to
	// answer; the driver does it even when the caller has given up).
	OutClose
	// OutGrant: the lock is held: Lease, with its token.
	OutGrant
	// OutLost: the lease is lost; Text is the reason (for a loss from a
	// failed reply, the driver adds the error).
	OutLost
	// OutDied: the renewer died at this renewal's error (renew_errors
	// stop): every later Renew fails at once.
	OutDied
	// OutFail: the request fails because of Cause while doing Text
	// ("connect", "acquire", "renew", "release", "prune"); with
	// CauseReply the reply just fed in is the error. OutDone follows.
	OutFail
	// OutDone: the request is over with Result (N: the rows a prune
	// deleted).
	OutDone
)

var outKindNames = [...]string{"send", "timer", "close", "grant", "lost", "died", "fail", "done"}

// String names the output kind.
func (k OutKind) String() string { return outKindNames[k] }

// Cause is why a request failed.
type Cause uint8

// Causes of OutFail.
const (
	CauseReply       Cause = iota // the reply just fed in (an error)
	CauseRenewerDied              // renew_errors stop: the renewer died earlier; nothing sent
	CauseCancelled                // the caller gave up during a timer
)

var causeNames = [...]string{"reply", "renewer-died", "cancelled"}

// String names the cause.
func (c Cause) String() string { return causeNames[c] }

// Output is one thing a Call asks its driver to do or tells it. Which
// fields mean something depends on Kind (see the OutKind constants).
type Output struct {
	Kind   OutKind
	Result lm.Result // OutDone
	Clock  lm.Clock  // OutTimer
	Cause  Cause     // OutFail
	// Gone (OutLost) says the loss is the connection found closed: the
	// driver adds its error to Text.
	Gone  bool
	D     time.Duration // OutTimer
	N     int64         // OutDone of a prune
	Lease *Lease        // OutGrant
	Text  string        // OutFail's stage, OutLost's reason
	Op    Op            // OutSend
}

// Lease is one grant.
type Lease struct {
	// Key is the lock's key.
	Key string
	// LockedBy is the lease table's locked_by: the owner and a guid.
	LockedBy string
	// Space and Hash are the advisory lock's key pair.
	Space, Hash int32
	// Token is the fencing token: the row's sequence after the grant,
	// or the advisory sequence's nextval.
	Token int64
	lost  bool
	died  bool // table: the renewer died (renew_errors stop)
	// gone (advisory): the connection is released or found closed.
	gone bool
}

// Lost reports whether the machine found the lease lost.
func (l *Lease) Lost() bool { return l.lost }

// RenewerDied reports whether the lease's renewer died (renew_errors
// stop).
func (l *Lease) RenewerDied() bool { return l.died }

// phase is where a Call is.
type phase uint8

const (
	phEnsure phase = iota
	phGet
	phPoll
	phRenew
	phRelease
	phPrune
	phConnect
	phSetTimeout
	phLock
	phTryLock
	phNextval
	phPing
	phUnlock
	phDone
)

// Call is one request in progress. Its zero value is ready for Request; a
// driver keeps it (and may reuse it once done).
type Call struct {
	kind     ReqKind
	phase    phase
	lease    *Lease
	deadline int64
	timed    bool
}

// Done reports whether the call has ended.
func (c *Call) Done() bool { return c.phase == phDone }

// Kind is the call's request kind.
func (c *Call) Kind() ReqKind { return c.kind }

// Lease is the call's lease: the one renewed or released, or an
// acquire's, once its grant is being made.
func (c *Call) Lease() *Lease { return c.lease }

func done(c *Call, r lm.Result, out []Output) []Output {
	c.phase = phDone
	return append(out, Output{Kind: OutDone, Result: r})
}

func fail(c *Call, cause Cause, stage string, out []Output) []Output {
	out = append(out, Output{Kind: OutFail, Cause: cause, Text: stage})
	if cause == CauseCancelled {
		return done(c, lm.Cancelled, out)
	}
	return done(c, lm.Failed, out)
}

func lost(c *Call, reason string, gone bool, out []Output) []Output {
	c.lease.lost = true
	out = append(out, Output{Kind: OutLost, Text: reason, Gone: gone})
	return done(c, lm.Lost, out)
}

func newLease(c *Call, r *Request) {
	l := r.Lease
	if l == nil {
		l = new(Lease)
	}
	*l = Lease{Key: r.Key}
	c.lease = l
}

// Gone reports whether the advisory lease's connection is released or
// found closed.
func (l *Lease) Gone() bool { return l.gone }

// ConnectionGone tells the machine that the advisory lease's connection
// was found closed outside its requests (a guarded statement's error): the
// lease is lost.
func (l *Lease) ConnectionGone() { l.gone, l.lost = true, true }
