// Package machine is locks/consul's client algorithm without I/O: the one
// copy that the real driver (package locks/consul, over the Consul API
// client) and the simulator's driver (package sim, over its Consul model)
// both run. See package locks/machine for the shape every lock machine
// shares.
//
// A Machine is one client's configuration; it keeps no state of its own,
// so one Machine serves any number of Calls at once. A Call is one request
// in progress — an acquire, a try-acquire, a renewal, a release, or a
// lease's watch — and a Lease one grant. A driver starts a request with
// Machine.Request and then feeds the Call what happens to it: Reply when
// an operation it was asked to send is answered (or failed), Fire when
// the timer it was asked to set fires, Cancel when the caller gives up.
// Each appends the Call's outputs to out and returns it; a Call has at
// most one operation in flight or one timer pending at a time (a
// Background send does not count: its answer is not fed back), and ends
// with one OutDone.
//
// Every input carries now, the client clock's reading in nanoseconds from
// any fixed origin: the wait timeout is measured on it. The machine needs
// no randomness: Consul makes the session IDs.
//
// Two session modes, one algorithm each (see Mode):
//
// ModeSeed is seed 003's Consul::Mutex (lib/consul/mutex.rb) as written:
//
//   - acquire_lock: wait_for_free_lock — a ?consistent GET of the key,
//     blocking on the last X-Consul-Index seen once there is one (no
//     ?wait: Consul's default of 5 minutes), until the key is missing or
//     no session holds it; then the session (created on first use with an
//     empty body: no TTL, Consul's lock-delay of 15 s, behavior release,
//     the agent node's serfHealth check) and PUT ?acquire. false: start
//     again from wait_for_free_lock. true: a ?consistent GET; the key
//     missing or free: acquire again; another session's: start again;
//     ours: granted, the token the key's ModifyIndex.
//   - hold_lock (the watch): ?consistent blocking GETs on the last index
//     until the key is missing or not our session's: lost (LossReason),
//     and the session destroyed; a GET that fails ends the hold too (the
//     watcher thread's ConsulError).
//   - release_lock: PUT ?release (false: an error, the session kept), the
//     session destroyed, a ?consistent GET, and DELETE ?cas=<index> if no
//     session holds the key.
//   - Every request is bounded by Net::HTTP's read timeout, 60 s of true
//     time (SeedReadTimeout): a blocking GET on a key nobody changes fails
//     after a minute, which ends a hold (watch failed) or an acquire.
//   - Nothing to renew: a renewal succeeds without a request.
//   - An error leaves its session to its node (the seed does not destroy
//     it); one Consul::Mutex per Acquire, so the next starts afresh.
//
// locksim's additions in ModeSeed: TryAcquire (one attempt, no waiting),
// the wait timeout (the blocking GETs' ?wait bounded by what is left), and
// a session destroyed when the wait ends without a grant (timeout, the
// caller gone).
//
// ModeTTL is locksim's TTL variant (backend consul-ttl): the session is
// created with a TTL, the configured lock-delay and behavior release; an
// acquire tries PUT ?acquire, reads the key back (?consistent), and
// between tries waits with a blocking GET of at most PollInterval (which
// also waits out a lock-delay), renews its session (made anew if it
// expired meanwhile) and tries again; a failed GET is followed by a sleep
// of PollInterval on the client clock. Renew renews the session (not
// found: lost, "no active session"); the watch is a blocking GET of 5
// minutes again and again, reads of the default consistency; release is
// ?release (false: a GET of the key for the reason, and lost) then the
// session destroyed. A failed or timed-out acquire destroys its session;
// so does a loss. Requests have no client-side timeout, as the api client
// has none.
package machine

import (
	"time"

	lm "github.com/locksim/locksim/locks/machine"
)

// Mode is how sessions are made and the lock is waited for.
type Mode uint8

const (
	// ModeSeed is Consul::Mutex as written: an empty session (Consul's
	// defaults, no TTL), consistent reads (backend consul).
	ModeSeed Mode = iota
	// ModeTTL is locksim's TTL session, renewed (backend consul-ttl).
	ModeTTL
)

// String names the mode.
func (m Mode) String() string {
	if m == ModeTTL {
		return "ttl"
	}
	return "seed"
}

// SeedReadTimeout is Ruby's Net::HTTP read timeout, which bounds every
// request of the seed.
const SeedReadTimeout = 60 * time.Second

// WatchWait is the ?wait of ModeTTL's watch (and Consul's default wait,
// which the seed's GETs get).
const WatchWait = 5 * time.Minute

// Config is what a Machine needs.
type Config struct {
	Mode Mode
	// TTL is the session TTL (ModeTTL).
	TTL time.Duration
	// LockDelay is the session's lock-delay (ModeTTL): 0 Consul's
	// default, negative none.
	LockDelay time.Duration
	// PollInterval bounds ModeTTL's blocking wait between tries and is
	// its sleep after a failed wait, on the client clock.
	PollInterval time.Duration
	// WaitTimeout bounds an acquire on the client clock; 0: no bound.
	WaitTimeout time.Duration
	// Name is the session's name (ModeTTL).
	Name string
}

// Machine is one Consul lock client's configuration.
type Machine struct{ cfg Config }

// New returns the machine of one client.
func New(cfg Config) *Machine { return &Machine{cfg: cfg} }

// Config is the machine's configuration.
func (m *Machine) Config() Config { return m.cfg }

// ReqKind is what a request asks.
type ReqKind uint8

// Request kinds.
const (
	Acquire    ReqKind = iota // wait until held, failed or timed out
	TryAcquire                // one attempt
	Renew                     // renew the lease's session
	Release                   // give the lease's key up
	Watch                     // follow the key until the lease is lost (or the call cancelled)
)

var reqNames = [...]string{"acquire", "try-acquire", "renew", "release", "watch"}

// String names the request kind.
func (k ReqKind) String() string { return reqNames[k] }

// Request is a caller's request.
type Request struct {
	Kind ReqKind
	// Key is the lock's key (Acquire, TryAcquire).
	Key string
	// Lease is the grant to renew, release or watch, or, for an acquire,
	// where to keep its grant (nil: a new Lease).
	Lease *Lease
}

// OpKind is a Consul HTTP request.
type OpKind uint8

// Operations.
const (
	OpCreate  OpKind = iota // PUT /v1/session/create: Empty body (ModeSeed), else Name, TTL, LockDelay, behavior release
	OpAcquire               // PUT /v1/kv/Key?acquire=Session, the value as body
	OpGet                   // GET /v1/kv/Key [?consistent] [&index=Index[&wait=Wait]]
	OpRenew                 // PUT /v1/session/renew/Session
	OpDestroy               // PUT /v1/session/destroy/Session
	OpRelease               // PUT /v1/kv/Key?release=Session (Empty: an empty body)
	OpDelete                // DELETE /v1/kv/Key?cas=Index
)

var opNames = [...]string{"create", "acquire", "get", "renew", "destroy", "release", "delete"}

// String names the operation.
func (k OpKind) String() string { return opNames[k] }

// Op is one Consul request.
type Op struct {
	Kind    OpKind
	Key     string
	Session string
	// Index: OpGet blocks until the key's index passes it (0: does not
	// block); OpDelete's cas.
	Index uint64
	// Wait is a blocking OpGet's ?wait (0: Consul's default, 5 minutes).
	Wait time.Duration
	// Consistent: OpGet with ?consistent.
	Consistent bool
	// Empty: OpCreate without a body (Consul's defaults); OpRelease with
	// an empty value as the body (the seed's set_key('')).
	Empty bool
	// TTL, LockDelay, Name: OpCreate's body (not Empty).
	TTL       time.Duration
	LockDelay time.Duration
	Name      string
}

// Reply is the answer to an Op.
type Reply struct {
	// Err: the request failed (no answer, or an error status); the
	// driver keeps the error itself.
	Err bool
	// OK: OpAcquire, OpRelease, OpDelete answered true; OpRenew found the
	// session; OpDestroy done.
	OK bool
	// Session: OpCreate's new session ID.
	Session string
	// OpGet: whether the key exists, its Session ("" none), ModifyIndex
	// and LockIndex, and the X-Consul-Index of the answer.
	Exists      bool
	Holder      string
	ModifyIndex uint64
	LockIndex   uint64
	Index       uint64
}

// OutKind is the kind of an Output.
type OutKind uint8

// Output kinds.
const (
	// OutSend: send Op; D, if not 0, bounds its answer on Clock (true
	// time). Background: the call does not wait for its answer (a
	// session destroyed on the way out, best effort): the driver sends it
	// and feeds nothing back; it is sent even when the caller has given
	// up.
	OutSend OutKind = iota
	// OutTimer: call Fire after D on Clock (ModeTTL's sleep after a
	// failed wait, on the client clock).
	OutTimer
	// OutGrant: the lock is held: Lease.
	OutGrant
	// OutLost: the lease is lost: Reason, Text the other session
	// (LossTaken).
	OutLost
	// OutFail: the request fails while doing Text ("session create",
	// "acquire", "renew", "release", "session destroy", "watch"); Cause
	// says why. OutDone follows.
	OutFail
	// OutDone: the request is over with Result.
	OutDone
)

// Cause is why a request failed.
type Cause uint8

// Causes of OutFail.
const (
	CauseReply        Cause = iota // the reply just fed in (an error)
	CauseReleaseFalse              // ModeSeed: ?release answered false
	CauseCancelled                 // the caller gave up
)

var causeNames = [...]string{"reply", "release-false", "cancelled"}

// String names the cause.
func (c Cause) String() string { return causeNames[c] }

// LossReason is why a lease was lost.
type LossReason uint8

// Loss reasons.
const (
	LossDeleted   LossReason = iota // the key is gone
	LossNoSession                   // no session holds the key, or ours is gone
	LossTaken                       // another session holds the key (Text)
	LossWatch                       // the watch's GET failed
	LossReleased                    // ModeTTL release: ?release answered false, the key not found otherwise
)

// Output is one thing a Call asks its driver to do or tells it.
type Output struct {
	Kind       OutKind
	Result     lm.Result // OutDone
	Clock      lm.Clock  // OutSend, OutTimer
	D          time.Duration
	Background bool       // OutSend
	Reason     LossReason // OutLost
	Cause      Cause      // OutFail
	Lease      *Lease     // OutGrant, OutLost
	// Text is the stage of an OutFail, the other session of an OutLost
	// (LossTaken).
	Text string
	Op   Op // OutSend
}

// LossText is an OutLost's reason as locks.LostError carries it (the
// seed's messages); err is the failed watch's error text (LossWatch).
func (o *Output) LossText(err string) string {
	switch o.Reason {
	case LossDeleted:
		return "key deleted"
	case LossNoSession:
		return "no active session"
	case LossTaken:
		return "taken by session " + o.Text
	case LossReleased:
		return "released by someone else"
	}
	if err == "" {
		return "watch failed"
	}
	return "watch failed: " + err
}

// Loss is what a read of the key says of session's hold: ok while session
// holds it, else the reason (and the other session, for LossTaken).
func Loss(exists bool, holder, session string) (LossReason, string, bool) {
	switch {
	case !exists:
		return LossDeleted, "", false
	case holder == "":
		return LossNoSession, "", false
	case holder != session:
		return LossTaken, holder, false
	}
	return 0, "", true
}

// Lease is one grant.
type Lease struct {
	// Key is the lock's key.
	Key string
	// Session holds the key.
	Session string
	// Token is the key's ModifyIndex read right after the acquire.
	Token uint64
	// LockIndex is the key's LockIndex then.
	LockIndex uint64
	// Index is the X-Consul-Index of that read: the watch starts from it.
	Index uint64
	lost  bool
	ended bool // released (or being released): the watch stops
}

// Lost reports whether the machine found the lease lost.
func (l *Lease) Lost() bool { return l.lost }

// phase is where a Call is.
type phase uint8

const (
	phFree       phase = iota // ModeSeed: wait_for_free_lock's GET
	phCreate                  // session create
	phAcquire                 // PUT ?acquire
	phToken                   // the GET after a true acquire
	phWait                    // ModeTTL: the blocking GET between tries
	phSleep                   // ModeTTL: the sleep after a failed wait
	phRenewWait               // ModeTTL: the session renew between tries
	phRenew                   // Renew's session renew
	phRelease                 // ?release
	phReleaseGet              // ModeTTL: the GET after a false ?release
	phDestroy                 // release's session destroy
	phDelGet                  // ModeSeed release: the GET before the delete
	phDelete                  // ModeSeed release: DELETE ?cas
	phWatch                   // the watch's blocking GET
	phDone
)

// Call is one request in progress. Its zero value is ready for
// Machine.Request; a driver keeps it (and may reuse it once done).
type Call struct {
	kind     ReqKind
	phase    phase
	key      string
	session  string
	lease    *Lease
	index    uint64 // the last X-Consul-Index seen (hasIndex)
	hasIndex bool
	deadline int64
	timed    bool
	waitFor  time.Duration // ModeTTL: the wait of the GET in flight (and the sleep after it)
}

// Done reports whether the call has ended.
func (c *Call) Done() bool { return c.phase == phDone }

// Kind is the call's request kind.
func (c *Call) Kind() ReqKind { return c.kind }

// Session is the session an acquire in progress has made ("" none yet),
// or the lease's.
func (c *Call) Session() string { return c.session }

// Request starts r on c (which must not be in progress) at client time
// now.
func (m *Machine) Request(c *Call, r Request, now int64, out []Output) []Output {
	*c = Call{kind: r.Kind, lease: r.Lease}
	switch r.Kind {
	case Acquire, TryAcquire:
		c.key = r.Key
		if r.Kind == Acquire && m.cfg.WaitTimeout > 0 {
			c.deadline, c.timed = now+int64(m.cfg.WaitTimeout), true
		}
		if m.cfg.Mode == ModeSeed {
			return m.free(c, now, out)
		}
		return m.create(c, out)
	}
	l := r.Lease
	c.key, c.session = l.Key, l.Session
	if l.lost {
		return done(c, lm.Lost, out)
	}
	switch r.Kind {
	case Renew:
		if m.cfg.Mode == ModeSeed {
			return done(c, lm.OK, out) // nothing to renew
		}
		c.phase = phRenew
		return m.send(c, Op{Kind: OpRenew, Session: c.session}, out)
	case Release:
		l.ended = true
		c.phase = phRelease
		return m.send(c, Op{Kind: OpRelease, Key: c.key, Session: c.session, Empty: m.cfg.Mode == ModeSeed}, out)
	}
	c.index = l.Index
	return m.watch(c, out)
}

func done(c *Call, r lm.Result, out []Output) []Output {
	c.phase = phDone
	return append(out, Output{Kind: OutDone, Result: r})
}

func (m *Machine) send(c *Call, op Op, out []Output) []Output {
	o := Output{Kind: OutSend, Op: op, Clock: lm.TrueTime}
	if m.cfg.Mode == ModeSeed {
		o.D = SeedReadTimeout
	}
	return append(out, o)
}

// get is a GET of the key; the seed's are all ?consistent, ModeTTL's only
// the read after an acquire (phToken).
func (m *Machine) get(c *Call, p phase, index uint64, wait time.Duration, out []Output) []Output {
	c.phase = p
	consistent := m.cfg.Mode == ModeSeed || p == phToken
	return m.send(c, Op{Kind: OpGet, Key: c.key, Index: index, Wait: wait, Consistent: consistent}, out)
}

// destroy is the session's destroy on the way out, in the background.
func (m *Machine) destroy(session string, out []Output) []Output {
	if session == "" {
		return out
	}
	o := Output{Kind: OutSend, Op: Op{Kind: OpDestroy, Session: session}, Clock: lm.TrueTime, Background: true}
	if m.cfg.Mode == ModeSeed {
		o.D = SeedReadTimeout
	}
	return append(out, o)
}

// fail ends c with cause while doing stage.
func fail(c *Call, cause Cause, stage string, out []Output) []Output {
	out = append(out, Output{Kind: OutFail, Cause: cause, Text: stage})
	if cause == CauseCancelled {
		return done(c, lm.Cancelled, out)
	}
	return done(c, lm.Failed, out)
}

// acquireFail ends an acquire that failed: ModeTTL destroys its session;
// the seed leaves it to its node.
func (m *Machine) acquireFail(c *Call, stage string, out []Output) []Output {
	if m.cfg.Mode == ModeTTL {
		out = m.destroy(c.session, out)
	}
	return fail(c, CauseReply, stage, out)
}

// giveUp ends an acquire without a grant (res: not acquired or
// cancelled), its session destroyed.
func (m *Machine) giveUp(c *Call, res lm.Result, out []Output) []Output {
	out = m.destroy(c.session, out)
	if res == lm.Cancelled {
		return fail(c, CauseCancelled, "acquire", out)
	}
	return done(c, res, out)
}

// left is what is left of an acquire's wait timeout at now, and whether
// it has passed.
func (c *Call) left(now int64) (time.Duration, bool) {
	if !c.timed {
		return 0, false
	}
	l := time.Duration(c.deadline - now)
	return l, l <= 0
}

// free is wait_for_free_lock's GET (ModeSeed).
func (m *Machine) free(c *Call, now int64, out []Output) []Output {
	if !c.hasIndex {
		return m.get(c, phFree, 0, 0, out)
	}
	wait := time.Duration(0)
	if c.timed {
		left, over := c.left(now)
		if over {
			return m.giveUp(c, lm.NotAcquired, out)
		}
		wait = left
	}
	return m.get(c, phFree, c.index, wait, out)
}

func (m *Machine) create(c *Call, out []Output) []Output {
	c.phase = phCreate
	op := Op{Kind: OpCreate, Empty: true}
	if m.cfg.Mode == ModeTTL {
		op = Op{Kind: OpCreate, TTL: m.cfg.TTL, LockDelay: m.cfg.LockDelay, Name: m.cfg.Name}
	}
	return m.send(c, op, out)
}

func (m *Machine) acquire(c *Call, out []Output) []Output {
	if c.session == "" {
		return m.create(c, out)
	}
	c.phase = phAcquire
	return m.send(c, Op{Kind: OpAcquire, Key: c.key, Session: c.session}, out)
}

// wait is ModeTTL's blocking GET between tries, of at most PollInterval.
func (m *Machine) wait(c *Call, now int64, out []Output) []Output {
	if c.kind == TryAcquire {
		return m.giveUp(c, lm.NotAcquired, out)
	}
	c.waitFor = m.cfg.PollInterval
	if left, over := c.left(now); over {
		return m.giveUp(c, lm.NotAcquired, out)
	} else if c.timed {
		c.waitFor = min(c.waitFor, left)
	}
	return m.get(c, phWait, c.index, c.waitFor, out)
}

func (m *Machine) watch(c *Call, out []Output) []Output {
	wait := WatchWait
	if m.cfg.Mode == ModeSeed {
		wait = 0 // no ?wait: Consul's default
	}
	return m.get(c, phWatch, c.index, wait, out)
}

// seen keeps a GET's X-Consul-Index as the next one to block on.
func (c *Call) seen(r Reply) {
	if r.Index < c.index {
		c.index = 0 // Consul's advice: an index that went back starts over
	} else {
		c.index = r.Index
	}
	c.hasIndex = true
}

// lose marks the lease lost for reason, its session destroyed, and ends
// c (the call that found it).
func (m *Machine) lose(c *Call, reason LossReason, text string, out []Output) []Output {
	out = m.Lose(c.lease, reason, text, out)
	return done(c, lm.Lost, out)
}

// Lose marks l lost for reason (text: the other session, LossTaken) and
// destroys its session in the background, unless it was lost already:
// what a driver does when a guarded write's session check fails. It
// appends OutLost and the destroy.
func (m *Machine) Lose(l *Lease, reason LossReason, text string, out []Output) []Output {
	if l.lost {
		return out
	}
	l.lost = true
	out = append(out, Output{Kind: OutLost, Reason: reason, Text: text, Lease: l})
	return m.destroy(l.Session, out)
}

// Reply feeds c the answer to its op in flight, at client time now.
func (m *Machine) Reply(c *Call, r Reply, now int64, out []Output) []Output {
	switch c.phase {
	case phFree:
		if r.Err {
			return m.acquireFail(c, "acquire", out)
		}
		if r.Exists {
			c.seen(r) // a missing key gives the seed no index
		}
		if !r.Exists || r.Holder == "" {
			return m.acquire(c, out)
		}
		if c.kind == TryAcquire {
			return m.giveUp(c, lm.NotAcquired, out)
		}
		return m.free(c, now, out)
	case phCreate:
		if r.Err {
			return fail(c, CauseReply, "session create", out)
		}
		c.session = r.Session
		return m.acquire(c, out)
	case phAcquire:
		if r.Err {
			return m.acquireFail(c, "acquire", out)
		}
		if r.OK {
			return m.get(c, phToken, 0, 0, out)
		}
		if m.cfg.Mode == ModeSeed {
			if c.kind == TryAcquire {
				return m.giveUp(c, lm.NotAcquired, out)
			}
			return m.free(c, now, out) // acquire_lock again
		}
		return m.wait(c, now, out)
	case phToken:
		if r.Err {
			return m.acquireFail(c, "acquire", out)
		}
		if m.cfg.Mode == ModeSeed && r.Exists {
			c.seen(r)
		}
		if r.Exists && r.Holder == c.session {
			l := c.lease
			if l == nil {
				l = new(Lease)
			}
			*l = Lease{Key: c.key, Session: c.session, Token: r.ModifyIndex, LockIndex: r.LockIndex, Index: r.Index}
			c.lease = l
			c.phase = phDone
			out = append(out, Output{Kind: OutGrant, Lease: l})
			return append(out, Output{Kind: OutDone, Result: lm.OK})
		}
		// Lost between the acquire and the read.
		if m.cfg.Mode == ModeTTL {
			return m.wait(c, now, out)
		}
		if c.kind == TryAcquire {
			return m.giveUp(c, lm.NotAcquired, out)
		}
		if !r.Exists || r.Holder == "" {
			return m.acquire(c, out) // set_key again
		}
		return m.free(c, now, out) // another's: acquire_lock again
	case phWait:
		if r.Err {
			c.phase = phSleep
			return append(out, Output{Kind: OutTimer, D: c.waitFor, Clock: lm.ClientClock})
		}
		c.seen(r)
		return m.renewWait(c, out)
	case phRenewWait:
		if r.Err {
			return m.acquireFail(c, "renew", out)
		}
		if !r.OK { // expired while we waited: start over
			c.session = ""
			return m.create(c, out)
		}
		return m.acquire(c, out)
	case phRenew:
		if r.Err {
			return fail(c, CauseReply, "renew", out)
		}
		if !r.OK {
			return m.lose(c, LossNoSession, "", out)
		}
		return done(c, lm.OK, out)
	case phRelease:
		if r.Err {
			return fail(c, CauseReply, "release", out)
		}
		if !r.OK {
			if m.cfg.Mode == ModeSeed {
				return fail(c, CauseReleaseFalse, "release", out)
			}
			return m.get(c, phReleaseGet, 0, 0, out)
		}
		c.phase = phDestroy
		return m.send(c, Op{Kind: OpDestroy, Session: c.session}, out)
	case phReleaseGet:
		reason, text := LossReleased, ""
		if !r.Err {
			if rs, t, ok := Loss(r.Exists, r.Holder, c.session); !ok {
				reason, text = rs, t
			}
		}
		return m.lose(c, reason, text, out)
	case phDestroy:
		if r.Err {
			return fail(c, CauseReply, "session destroy", out)
		}
		if m.cfg.Mode == ModeTTL {
			return done(c, lm.OK, out)
		}
		return m.get(c, phDelGet, 0, 0, out)
	case phDelGet:
		if r.Err {
			return fail(c, CauseReply, "release", out)
		}
		if r.Exists && r.Holder == "" {
			c.phase = phDelete
			return m.send(c, Op{Kind: OpDelete, Key: c.key, Index: r.Index}, out)
		}
		return done(c, lm.OK, out)
	case phDelete:
		if r.Err {
			return fail(c, CauseReply, "release", out)
		}
		return done(c, lm.OK, out) // false: changed meanwhile, left alone
	case phWatch:
		l := c.lease
		if l.lost || l.ended {
			return done(c, lm.Cancelled, out)
		}
		if r.Err {
			return m.lose(c, LossWatch, "", out)
		}
		if reason, text, ok := Loss(r.Exists, r.Holder, c.session); !ok {
			return m.lose(c, reason, text, out)
		}
		c.seen(r)
		return m.watch(c, out)
	}
	return out
}

// Fire feeds c its timer firing (ModeTTL's sleep after a failed wait).
func (m *Machine) Fire(c *Call, now int64, out []Output) []Output {
	if c.phase != phSleep {
		return out
	}
	return m.renewWait(c, out)
}

func (m *Machine) renewWait(c *Call, out []Output) []Output {
	c.phase = phRenewWait
	return m.send(c, Op{Kind: OpRenew, Session: c.session}, out)
}

// Cancel tells c that the caller gave up: the op it asked to send was not
// sent or its answer will not come, or its timer will not be waited for.
// An acquire's session is destroyed; a watch just ends.
func (m *Machine) Cancel(c *Call, now int64, out []Output) []Output {
	switch {
	case c.phase == phDone:
		return out
	case c.kind == Watch:
		return done(c, lm.Cancelled, out)
	case c.kind == Acquire || c.kind == TryAcquire:
		return m.giveUp(c, lm.Cancelled, out)
	}
	stage := "renew"
	if c.kind == Release {
		stage = "release"
	}
	return fail(c, CauseCancelled, stage, out)
}
