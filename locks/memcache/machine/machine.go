// Package machine is locks/memcache's client algorithm without I/O: the
// one copy that the real driver (package locks/memcache, over gomemcache)
// and the simulator's driver (package sim, over its memcached model) both
// run. See package locks/machine for the shape every lock machine shares.
//
// A Machine is one client (a Locker; a simulated client process): its
// configuration, the servers it marked dead, and a cache of each key's
// placement. A Call is one request in progress on it — an acquire, a
// try-acquire, a renewal or a release — and a Lease one grant. A driver
// starts a request with Machine.Request and then feeds the Call what
// happens to it: Reply when an operation it was asked to send is answered
// (or could not be sent), Fire when the timer it was asked to set fires,
// Cancel when the caller gives up instead of sending the next operation or
// waiting for the timer. Each of these appends the Call's outputs to out
// and returns it; a Call has at most one operation in flight or one timer
// pending at a time, and ends with one OutDone.
//
// Every input carries now, the client clock's reading in nanoseconds from
// any fixed origin: the wait timeout and the dead-server window are
// measured on it. Randomness comes in as the nonce of the inputs that start
// an attempt (an acquire request, the poll timer firing), so that a
// simulated client is deterministic.
//
// The algorithm: seed 004's mutex (an add with the duration as expiry,
// polling), with locksim's placement over several servers (after older
// memcache-client's crc32 mod N and its rehash), token and renewal:
//
//   - Placement: the key's server is crc32(key) mod N; with failover (the
//     default) the candidates then are the servers "<try><key>" hashes to
//     for try = 0..18 (memcache-client's rehash, 20 tries in all), each
//     server once, skipping servers marked dead; a server that cannot be
//     reached is marked dead for RetryDead on the client clock. Without
//     failover, or with one server, the key's server alone, dead or not.
//   - An attempt: `add` of the key with the owner and nonce as its value
//     and TTL (whole seconds, rounded up) as its expiry, to each candidate
//     in turn until one answers. NOT_STORED: held elsewhere. STORED: the
//     token is `incr` of the counter beside the key on that server; on a
//     miss, `add` "0" (no expiry) and `incr` again, three times at most.
//     A token that cannot be had gives the lock back (as a release, sent
//     even when the caller has given up) and fails the attempt.
//   - Acquire polls: an attempt every PollInterval until one is granted
//     or fails, or WaitTimeout (if set) has passed on the client clock.
//   - Renew and release: `gets` of the key on the lease's server; gone, or
//     another owner's value: the lease is lost. Else `cas` of our value
//     with a fresh expiry (renew) or expiry -1, which memcached reads as
//     "expire now" (release). A cas that finds the item changed or not
//     stored looks again, five rounds at most.
//   - An operation whose server cannot be reached (refused, reset, or no
//     answer within Timeout of true time) is sent once more — the real
//     driver reconnects first, as a server restart breaks every pooled
//     connection — before it counts as unreachable.
package machine

import (
	"crypto/sha256"
	"encoding/hex"
	"hash/crc32"
	"math/bits"
	"strconv"
	"strings"
	"time"

	lm "github.com/locksim/locksim/locks/machine"
)

// MaxTries is memcache-client's number of tries (the key, then 19
// rehashes) before it gives up placing a key.
const MaxTries = 20

// Config is what a Machine needs: the locks.Options it honours and
// package locks/memcache's Config, resolved (package locks/memcache's
// MachineConfig fills it in).
type Config struct {
	// Servers is the number of memcached servers.
	Servers int
	// NoFailover keeps every key on the server it hashes to.
	NoFailover bool
	// RetryDead is how long a server that could not be reached is
	// skipped, on the client clock.
	RetryDead time.Duration
	// Timeout bounds each operation, on true time.
	Timeout time.Duration
	// TTL is the lock's expiry (rounded up to whole seconds).
	TTL time.Duration
	// PollInterval is the time between an acquire's attempts, on the
	// client clock.
	PollInterval time.Duration
	// WaitTimeout bounds an acquire on the client clock; 0: no bound.
	WaitTimeout time.Duration
	// Owner is the first part of the lock's value.
	Owner string
}

// Machine is one memcache lock client's state: its configuration, the
// servers it marked dead and its keys' placement. It is not safe for
// concurrent use: a driver that runs several Calls at once serialises
// them.
type Machine struct {
	cfg       Config
	exp       int32
	deadUntil []int64             // client clock; a server is skipped while now < deadUntil
	keys      map[string]*keyInfo // once a second key is asked for
	lastKey   *keyInfo            // the key asked for last (a client mostly asks for one)
}

// keyInfo is what a key always maps to: its memcached keys and the server
// of each try.
type keyInfo struct {
	name, skey, tkey string
	order            [MaxTries]int32
	// uniq is order without repeats: the candidates when no server is
	// dead, of which the live ones are the candidates (a server is dead
	// or not for all its places in order alike).
	uniq  [MaxTries]int32
	nuniq int
}

// New returns the machine of one client.
func New(cfg Config) *Machine {
	return &Machine{
		cfg:       cfg,
		exp:       ExpirySeconds(cfg.TTL),
		deadUntil: make([]int64, cfg.Servers),
	}
}

// Config is the machine's configuration.
func (m *Machine) Config() Config { return m.cfg }

// ExpirySeconds is ttl as a memcached expiry: whole seconds, rounded up,
// at least one.
func ExpirySeconds(ttl time.Duration) int32 {
	return int32(max((ttl+time.Second-1)/time.Second, 1))
}

// StorageKey is the memcached key for a lock or list key: the key itself
// when memcached accepts it, else the key with bytes memcached refuses
// (space, control characters, '%') percent-encoded, and a key still longer
// than 250 bytes replaced by a hash.
func StorageKey(key string) string {
	const hexDigits = "0123456789ABCDEF"
	k := key
	for i := 0; i < len(key); i++ {
		if c := key[i]; c <= ' ' || c == 0x7f || c == '%' {
			var b strings.Builder
			b.WriteString(key[:i])
			for _, c := range []byte(key[i:]) {
				if c <= ' ' || c == 0x7f || c == '%' {
					b.WriteByte('%')
					b.WriteByte(hexDigits[c>>4])
					b.WriteByte(hexDigits[c&15])
				} else {
					b.WriteByte(c)
				}
			}
			k = b.String()
			break
		}
	}
	if len(k) > 250 {
		sum := sha256.Sum256([]byte(key))
		k = "locksim-sha256-" + hex.EncodeToString(sum[:])
	}
	return k
}

// TokenKey is the memcached key of the fencing counter beside the lock on
// key.
func TokenKey(key string) string { return StorageKey(key + "_token") }

func (m *Machine) key(key string) *keyInfo {
	if m.lastKey != nil && m.lastKey.name == key {
		return m.lastKey
	}
	if ki := m.keys[key]; ki != nil {
		m.lastKey = ki
		return ki
	}
	ki := &keyInfo{name: key, skey: StorageKey(key), tkey: TokenKey(key)}
	m.place(ki.skey, &ki.order)
	n := MaxTries
	if m.cfg.NoFailover || m.cfg.Servers <= 1 {
		n = 1
	}
	for _, srv := range ki.order[:n] {
		if !containsInt32(ki.uniq[:ki.nuniq], srv) {
			ki.uniq[ki.nuniq] = srv
			ki.nuniq++
		}
	}
	if m.lastKey != nil {
		// A second key: from now on keep them all.
		if m.keys == nil {
			m.keys = make(map[string]*keyInfo)
		}
		m.keys[m.lastKey.name] = m.lastKey
		m.keys[key] = ki
	}
	m.lastKey = ki
	return ki
}

// place computes the server of each try for skey.
func (m *Machine) place(skey string, order *[MaxTries]int32) {
	n := uint32(max(m.cfg.Servers, 1))
	for try := range order {
		k := skey
		if try > 0 {
			k = strconv.Itoa(try-1) + skey
		}
		order[try] = int32(crc32.ChecksumIEEE([]byte(k)) % n)
	}
}

// Candidates appends to buf the servers to try for skey (a memcached key,
// StorageKey's) at client time now, in order: the key's server, then,
// with failover, the servers "<try><key>" hashes to, skipping servers
// marked dead and repeats. Without failover, or with one server, it is
// the key's server alone, dead or not. The lock's attempts use it, and so
// does package locks/memcache's List.
func (m *Machine) Candidates(skey string, now int64, buf []int) []int {
	var ki keyInfo
	m.place(skey, &ki.order)
	return m.candidates(&ki, now, buf)
}

func (m *Machine) candidates(ki *keyInfo, now int64, buf []int) []int {
	if m.cfg.NoFailover || m.cfg.Servers <= 1 {
		return append(buf, int(ki.order[0]))
	}
	start := len(buf)
	for _, s := range ki.order {
		i := int(s)
		if now < m.deadUntil[i] || contains(buf[start:], i) {
			continue
		}
		buf = append(buf, i)
	}
	return buf
}

func containsInt32(s []int32, v int32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// MarkDead makes the failover skip server i for RetryDead from client
// time now (nothing without failover).
func (m *Machine) MarkDead(i int, now int64) {
	if !m.cfg.NoFailover {
		m.deadUntil[i] = now + int64(m.cfg.RetryDead)
	}
}

// ReqKind is what a request asks.
type ReqKind uint8

// Request kinds.
const (
	Acquire    ReqKind = iota // poll until held, failed or timed out
	TryAcquire                // one attempt
	Renew                     // rewrite the lease's item with a fresh expiry
	Release                   // delete the lease's item if still ours
)

var reqNames = [...]string{"acquire", "try-acquire", "renew", "release"}

// String names the request kind.
func (k ReqKind) String() string { return reqNames[k] }

// Request is a caller's request.
type Request struct {
	Kind ReqKind
	// Key is the lock's key (Acquire, TryAcquire).
	Key string
	// Lease is the grant to renew or release (Renew, Release), or, for
	// an acquire, where to keep its grant (nil: a new Lease), for a
	// driver that keeps leases in memory of its own.
	Lease *Lease
}

// OpKind is a memcached command.
type OpKind uint8

// Operations.
const (
	OpAdd  OpKind = iota // add Key = Data() with Exp
	OpIncr               // incr Key by 1
	OpGets               // gets Key
	OpCas                // cas Key = Value with Exp, if its CAS id is still CAS
)

var opNames = [...]string{"add", "incr", "gets", "cas"}

// String names the command.
func (k OpKind) String() string { return opNames[k] }

// Op is one memcached command to one server.
type Op struct {
	Kind OpKind
	// Exp is the expiry of add and cas in seconds: 0 never, -1 at once.
	Exp int32
	Key string // the memcached key
	// Value is what add or cas stores, unless Owner is set: then the
	// value is Owner, a space and Nonce in hex (the lock's add), which
	// Data builds only when asked.
	Value string
	Owner string
	Nonce uint64
	// CAS is the id the item had at the gets (cas). A client library that
	// keeps the id inside the item it returned (gomemcache) uses that item
	// instead.
	CAS uint64
}

// Data is the value the op stores.
func (o *Op) Data() string {
	if o.Owner != "" {
		return LockValue(o.Owner, o.Nonce)
	}
	return o.Value
}

// LockValue is the value of a lock item: the owner, a space and the nonce
// in 16 hex digits.
func LockValue(owner string, nonce uint64) string {
	var b [16]byte
	const digits = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		b[i] = digits[nonce&15]
		nonce >>= 4
	}
	return owner + " " + string(b[:])
}

// Owner is the owner part of a lock item's value.
func Owner(value string) string {
	if i := strings.LastIndexByte(value, ' '); i >= 0 {
		return value[:i]
	}
	return value
}

// Outcome is what an operation's reply says.
type Outcome uint8

// Outcomes.
const (
	Stored      Outcome = iota // add, cas: STORED
	NotStored                  // add: NOT_STORED (the key exists); cas: NOT_STORED
	Miss                       // incr, gets, cas: NOT_FOUND / no item
	Exists                     // cas: EXISTS (the CAS id changed)
	Hit                        // gets: the item (Value, CAS)
	Number                     // incr: the new value (N)
	Unreachable                // refused, reset, broken, or no answer within Timeout
	ServerError                // any other error answer
)

var outcomeNames = [...]string{"stored", "not-stored", "miss", "exists", "hit", "number", "unreachable", "error"}

// String names the outcome.
func (o Outcome) String() string { return outcomeNames[o] }

// Reply is the answer to an Op.
type Reply struct {
	Outcome Outcome
	// Value is the item's value (Hit); for the lock's add (Stored) the
	// value the driver sent, if it has it as a string, so that the
	// machine need not build it again (else "").
	Value string
	CAS   uint64 // Hit
	N     uint64 // Number
}

// OutKind is the kind of an Output.
type OutKind uint8

// Output kinds.
const (
	// OutSend: send Op to Server, its answer due within D on Clock
	// (true time). Detached: the op is sent even when the caller
	// has given up (a give-back), so the driver must not answer it with
	// Cancel.
	OutSend OutKind = iota
	// OutTimer: call Fire after D on Clock (the poll interval, on the
	// client clock).
	OutTimer
	// OutGrant: the lock is held: Lease, with its token.
	OutGrant
	// OutLost: the lease is lost: Reason, found on Server, Text the
	// other owner (LossTaken).
	OutLost
	// OutDead: Server is marked dead until Until (client clock): for
	// traces; a driver need not act on it.
	OutDead
	// OutFail: the request fails, because of Cause, while doing Text
	// ("acquire", "token", "renew", "release"); with CauseReply the
	// reply just fed in is the error. OutDone follows (at once, or after
	// a give-back).
	OutFail
	// OutDone: the request is over with Result.
	OutDone
)

// Cause is why a request failed.
type Cause uint8

// Causes of OutFail.
const (
	CauseReply     Cause = iota // the reply just fed in (unreachable, an error)
	CauseNoServers              // every server is marked dead
	CauseNoToken                // the token counter kept disappearing
	CauseChurn                  // the item kept changing under cas
	CauseCancelled              // the caller gave up
)

var causeNames = [...]string{"reply", "no-servers", "no-token", "churn", "cancelled"}

// String names the cause.
func (c Cause) String() string { return causeNames[c] }

// LossReason is why a lease was lost.
type LossReason uint8

// Loss reasons.
const (
	LossGone  LossReason = iota // the item is gone: expired, evicted, a restart
	LossTaken                   // the item holds another owner's value
)

// Output is one thing a Call asks its driver to do or tells it. Which
// fields mean something depends on Kind (see the OutKind constants).
type Output struct {
	Kind     OutKind
	Result   lm.Result  // OutDone
	Clock    lm.Clock   // OutSend, OutTimer: what D is measured on
	Detached bool       // OutSend
	Reason   LossReason // OutLost
	Cause    Cause      // OutFail
	Server   int32      // OutSend, OutLost, OutDead
	// D is the answer's deadline (OutSend) or the timer's delay
	// (OutTimer).
	D time.Duration
	// Until is the end of a dead server's window, client time (OutDead).
	Until int64
	Lease *Lease // OutGrant
	// Text is the stage of an OutFail ("acquire", "token", "renew",
	// "release") or the other owner of an OutLost (LossTaken).
	Text string
	Op   Op // OutSend
}

// LossText is an OutLost's reason as locks.LostError carries it, with
// server the name or address of Output.Server.
func (o *Output) LossText(server string) string {
	if o.Reason == LossTaken {
		return "taken by " + o.Text
	}
	return "key gone from " + server + ": expired, evicted or the server restarted"
}

// Lease is one grant.
type Lease struct {
	// Key is the lock's key.
	Key string
	// Value is what the item holds while it is ours.
	Value string
	// Server is the index of the server the add succeeded on: renewals
	// and the release go there.
	Server int
	// Token is the fencing token: the counter's value after the incr.
	Token int64
	skey  string
	lost  bool
}

// StorageKey is the lease's memcached key.
func (l *Lease) StorageKey() string { return l.skey }

// Lost reports whether the machine found the lease lost.
func (l *Lease) Lost() bool { return l.lost }

// phase is where a Call is.
type phase uint8

const (
	phAdd   phase = iota // the lock's add to key.uniq[k]
	phIncr               // the token's first incr
	phZero               // add "0" of the counter
	phIncr2              // incr after add "0"
	phPoll               // waiting for the poll timer
	phGets               // renew, release, give-back: gets
	phCas                // renew, release, give-back: cas
	phDone
)

// Call is one request in progress. Its zero value is ready for
// Machine.Request; a driver keeps it (and may reuse it once done).
type Call struct {
	kind     ReqKind
	phase    phase
	key      *keyInfo
	lease    *Lease
	cands    uint32 // the live candidates of the attempt: bits of key.uniq
	k        int    // the candidate tried: an index in key.uniq
	server   int    // of the op in flight
	retried  bool
	rounds   int
	exp      int32
	nonce    uint64
	deadline int64
	timed    bool
	giveBack bool // releasing an unfenced grant; then end with cause
	cause    Cause
	stage    string
	op       Op // the op in flight, for a resend
}

// Done reports whether the call has ended.
func (c *Call) Done() bool { return c.phase == phDone }

// Kind is the call's request kind.
func (c *Call) Kind() ReqKind { return c.kind }

// Request starts r on c (which must not be in progress) at client time
// now; nonce is fresh randomness for the first attempt of an acquire.
func (m *Machine) Request(c *Call, r Request, now int64, nonce uint64, out []Output) []Output {
	*c = Call{kind: r.Kind}
	switch r.Kind {
	case Acquire, TryAcquire:
		c.key = m.key(r.Key)
		c.lease = r.Lease
		if r.Kind == Acquire && m.cfg.WaitTimeout > 0 {
			c.deadline, c.timed = now+int64(m.cfg.WaitTimeout), true
		}
		return m.attempt(c, now, nonce, out)
	default:
		c.lease = r.Lease
		c.exp = m.exp
		if r.Kind == Release {
			c.exp = -1
		}
		if c.lease.lost {
			return done(c, lm.Lost, out)
		}
		return m.gets(c, out)
	}
}

func done(c *Call, r lm.Result, out []Output) []Output {
	c.phase = phDone
	return append(out, Output{Kind: OutDone, Result: r})
}

// fail ends c with cause while doing stage.
func (m *Machine) fail(c *Call, cause Cause, stage string, out []Output) []Output {
	out = append(out, Output{Kind: OutFail, Cause: cause, Text: stage})
	if cause == CauseCancelled {
		return done(c, lm.Cancelled, out)
	}
	return done(c, lm.Failed, out)
}

func (m *Machine) send(c *Call, server int, op Op, out []Output) []Output {
	c.server, c.op, c.retried = server, op, false
	return append(out, Output{Kind: OutSend, Server: int32(server), Op: op, D: m.cfg.Timeout, Clock: lm.TrueTime, Detached: c.giveBack})
}

// attempt is one try: the add to the first candidate.
func (m *Machine) attempt(c *Call, now int64, nonce uint64, out []Output) []Output {
	c.nonce = nonce
	c.cands = 0
	ki := c.key
	for j, srv := range ki.uniq[:ki.nuniq] {
		if m.cfg.NoFailover || m.cfg.Servers <= 1 || now >= m.deadUntil[srv] {
			c.cands |= 1 << j
		}
	}
	if c.cands == 0 {
		return m.fail(c, CauseNoServers, "acquire", out)
	}
	return m.sendAdd(c, out)
}

func (m *Machine) sendAdd(c *Call, out []Output) []Output {
	c.phase = phAdd
	c.k = bits.TrailingZeros32(c.cands)
	c.cands &^= 1 << c.k
	return m.send(c, int(c.key.uniq[c.k]), Op{Kind: OpAdd, Key: c.key.skey, Owner: m.cfg.Owner, Nonce: c.nonce, Exp: m.exp}, out)
}

func (m *Machine) gets(c *Call, out []Output) []Output {
	c.phase = phGets
	return m.send(c, c.lease.Server, Op{Kind: OpGets, Key: c.lease.skey}, out)
}

func (m *Machine) incr(c *Call, p phase, out []Output) []Output {
	c.phase = p
	return m.send(c, c.lease.Server, Op{Kind: OpIncr, Key: c.key.tkey}, out)
}

// stage names what a renew, release or give-back call is doing.
func (c *Call) stageName() string {
	switch {
	case c.giveBack:
		return "token"
	case c.kind == Renew:
		return "renew"
	case c.kind == Release:
		return "release"
	case c.phase == phAdd || c.phase == phPoll:
		return "acquire"
	}
	return "token"
}

// Reply feeds c the answer to its op in flight, at client time now.
func (m *Machine) Reply(c *Call, r Reply, now int64, out []Output) []Output {
	if r.Outcome == Unreachable && !c.retried && c.phase <= phCas && c.phase != phPoll {
		// Once more, on a fresh connection.
		c.retried = true
		return append(out, Output{Kind: OutSend, Server: int32(c.server), Op: c.op, D: m.cfg.Timeout, Clock: lm.TrueTime, Detached: c.giveBack})
	}
	switch c.phase {
	case phAdd:
		switch r.Outcome {
		case Stored:
			v := r.Value
			if v == "" {
				v = LockValue(m.cfg.Owner, c.nonce)
			}
			l := c.lease
			if l == nil {
				l = new(Lease)
			}
			*l = Lease{Key: c.key.name, Value: v, Server: c.server, skey: c.key.skey}
			c.lease = l
			return m.incr(c, phIncr, out)
		case NotStored:
			return m.notAcquired(c, now, out)
		case Unreachable:
			if !m.cfg.NoFailover {
				m.MarkDead(c.server, now)
				out = append(out, Output{Kind: OutDead, Server: int32(c.server), Until: m.deadUntil[c.server]})
			}
			if c.cands != 0 {
				return m.sendAdd(c, out)
			}
		}
		return m.fail(c, CauseReply, "acquire", out)
	case phIncr, phIncr2:
		switch r.Outcome {
		case Number:
			c.lease.Token = int64(r.N)
			c.phase = phDone
			out = append(out, Output{Kind: OutGrant, Lease: c.lease})
			return append(out, Output{Kind: OutDone, Result: lm.OK})
		case Miss:
			if c.phase == phIncr {
				c.phase = phZero
				return m.send(c, c.lease.Server, Op{Kind: OpAdd, Key: c.key.tkey, Value: "0"}, out)
			}
			c.rounds++
			if c.rounds < 3 {
				return m.incr(c, phIncr, out)
			}
			return m.noToken(c, CauseNoToken, out)
		}
		return m.noToken(c, CauseReply, out)
	case phZero:
		if r.Outcome == Stored || r.Outcome == NotStored {
			return m.incr(c, phIncr2, out)
		}
		return m.noToken(c, CauseReply, out)
	case phGets:
		switch r.Outcome {
		case Miss:
			return m.lost(c, Output{Kind: OutLost, Reason: LossGone, Server: int32(c.server)}, out)
		case Hit:
			if r.Value != c.lease.Value {
				return m.lost(c, Output{Kind: OutLost, Reason: LossTaken, Server: int32(c.server), Text: Owner(r.Value)}, out)
			}
			c.phase = phCas
			return m.send(c, c.lease.Server, Op{Kind: OpCas, Key: c.lease.skey, Value: c.lease.Value, Exp: c.exp, CAS: r.CAS}, out)
		}
		return m.rewriteFailed(c, CauseReply, out)
	case phCas:
		switch r.Outcome {
		case Stored:
			return m.rewriteDone(c, out)
		case Exists, NotStored:
			// Changed or gone since the gets: look again.
			c.rounds++
			if c.rounds < 5 {
				return m.gets(c, out)
			}
			return m.rewriteFailed(c, CauseChurn, out)
		}
		// A miss here is an error, not a loss, as gomemcache's cas
		// returns it (ErrCacheMiss) and locks/memcache has always
		// treated it.
		return m.rewriteFailed(c, CauseReply, out)
	}
	return out
}

// notAcquired ends an attempt that found the lock held: a try is over, an
// acquire waits for its next attempt unless its wait timeout has passed.
func (m *Machine) notAcquired(c *Call, now int64, out []Output) []Output {
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

// noToken is a grant that cannot be fenced: give the lock back, then
// fail.
func (m *Machine) noToken(c *Call, cause Cause, out []Output) []Output {
	out = append(out, Output{Kind: OutFail, Cause: cause, Text: "token"})
	c.giveBack, c.cause, c.stage = true, cause, "token"
	c.exp, c.rounds = -1, 0
	return m.gets(c, out)
}

func (m *Machine) lost(c *Call, o Output, out []Output) []Output {
	if c.giveBack {
		return m.rewriteDone(c, out)
	}
	c.lease.lost = true
	out = append(out, o)
	return done(c, lm.Lost, out)
}

func (m *Machine) rewriteDone(c *Call, out []Output) []Output {
	if c.giveBack {
		if c.cause == CauseCancelled {
			return done(c, lm.Cancelled, out)
		}
		return done(c, lm.Failed, out)
	}
	return done(c, lm.OK, out)
}

func (m *Machine) rewriteFailed(c *Call, cause Cause, out []Output) []Output {
	if c.giveBack {
		return m.rewriteDone(c, out)
	}
	return m.fail(c, cause, c.stageName(), out)
}

// Fire feeds c its timer firing (the poll interval is over), at client
// time now; nonce is fresh randomness for the attempt it starts.
func (m *Machine) Fire(c *Call, now int64, nonce uint64, out []Output) []Output {
	if c.phase != phPoll {
		return out
	}
	return m.attempt(c, now, nonce, out)
}

// Cancel tells c that the caller gave up: the op it asked to send was not
// sent, or its timer will not be waited for. A grant half made (the add
// stored, the token not yet had) is given back first; a give-back itself
// (a Detached op) is not cancelled: Cancel then means it could not be
// sent, and the call fails as it would have.
func (m *Machine) Cancel(c *Call, now int64, out []Output) []Output {
	switch {
	case c.phase == phDone:
		return out
	case c.giveBack:
		return m.rewriteDone(c, out)
	case c.phase == phIncr || c.phase == phZero || c.phase == phIncr2:
		return m.noToken(c, CauseCancelled, out)
	}
	return m.fail(c, CauseCancelled, c.stageName(), out)
}
