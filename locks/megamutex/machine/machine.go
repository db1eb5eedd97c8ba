// Package machine is locks/megamutex's client algorithm without I/O:
// MegaMutex's DistributedMutex over Ruby's memcache-client, written once
// for the real driver (package locks/megamutex, over gomemcache) and the
// simulator's driver (package sim, over its memcached model). See package
// locks/machine for the shape every lock machine shares.
//
// A Machine is one client process (one MemCache instance): its servers'
// continuum, which servers it holds a connection to, and which it marked
// dead. A Call is one request on it (an acquire, a try, a release). A
// driver starts a request with Machine.Request and feeds the Call what
// happens: Reply when an operation is answered (or not), Fire when the
// poll timer fires, Cancel when the caller gives up. A Call has at most one
// operation in flight or one timer pending, and ends with one OutDone.
//
// Every input carries now, the client clock's reading in nanoseconds from
// a fixed origin: the wait timeout and the dead-server window are measured
// on it; operation deadlines (memcache-client's socket timeout) are on
// true time. Package locks/megamutex's doc comment says, with source line
// numbers, what this reproduces and where it departs.
package machine

import (
	"crypto/sha1"
	"encoding/binary"
	"hash/crc32"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	lm "github.com/locksim/locksim/locks/machine"
)

// Constants of memcache-client and mega_mutex.
const (
	// MaxTries is memcache-client's get_server_for_key loop: the key's
	// hash, then "<try><key>" rehashes, 20 in all.
	MaxTries = 20
	// PointsPerServer is memcache-client's Continuum::POINTS_PER_SERVER.
	PointsPerServer = 160
	// Namespace is mega_mutex's default configuration.namespace.
	Namespace = "mega_mutex"
	// Poll is lock!'s `sleep 0.1`.
	Poll = 100 * time.Millisecond
	// RetryDead is memcache-client's Server::RETRY_DELAY.
	RetryDead = 30 * time.Second
	// Timeout is memcache-client's default :timeout (socket timeout).
	Timeout = 500 * time.Millisecond
	// MaxKey is memcache-client's longest key (namespace included).
	MaxKey = 250
)

// Config is one client's configuration.
type Config struct {
	// Servers are the servers as "host:port": the continuum hashes these
	// strings, so both drivers must name servers alike to place alike.
	Servers []string
	// Weights are the servers' weights (nil: 1 each, memcache-client's
	// DEFAULT_WEIGHT).
	Weights []int
	// NoFailover is memcache-client's :failover => false.
	NoFailover bool
	// RetryDead is how long a dead server is skipped (client clock);
	// 0: RetryDead.
	RetryDead time.Duration
	// Timeout bounds each operation and connect (true time); 0: Timeout.
	Timeout time.Duration
	// PollInterval is the sleep between attempts (client clock); 0: Poll.
	PollInterval time.Duration
	// WaitTimeout is mega_mutex's :timeout (client clock); 0: none.
	WaitTimeout time.Duration
	// TTL is the add's expiry, rounded up to whole seconds; 0: none, as
	// mega_mutex adds the key (the lock is freed only by unlock).
	TTL time.Duration
	// Namespace prefixes every key with Namespace and ':'; "": Namespace.
	Namespace string
	// PID is the first part of the lock id (Process.pid).
	PID int
}

type point struct {
	value  uint32
	server int32
}

// Machine is one client's state. It is not safe for concurrent use.
type Machine struct {
	cfg       Config
	exp       int32
	continuum []point
	connected []bool
	deadUntil []int64
	// hkey and hsum are the last key place hashed and its crc32: a
	// call's every operation is on one key.
	hkey string
	hsum uint32
	hok  bool
	// lh and ls are the last hash lookup placed and its server.
	lh  uint32
	ls  int
	lok bool
	// ckey and ck are the last request's key and its cache key.
	ckey, ck string
}

// New returns the machine of one client.
func New(cfg Config) *Machine {
	if cfg.RetryDead <= 0 {
		cfg.RetryDead = RetryDead
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = Timeout
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = Poll
	}
	if cfg.Namespace == "" {
		cfg.Namespace = Namespace
	}
	if len(cfg.Servers) == 0 {
		cfg.Servers = []string{"localhost:11211"}
	}
	m := &Machine{cfg: cfg, connected: make([]bool, len(cfg.Servers)), deadUntil: make([]int64, len(cfg.Servers))}
	if cfg.TTL > 0 {
		m.exp = int32((cfg.TTL + time.Second - 1) / time.Second)
	}
	if len(cfg.Servers) > 1 {
		m.continuum = sharedContinuum(cfg.Servers, cfg.Weights)
	}
	return m
}

// lastContinuum is the continuum New built last, shared read-only by the
// machines of the same servers and weights (every client of a simulated
// run, every run of a sweep): 160 SHA1 sums a server and a sort a client
// otherwise. One entry, so memory stays bounded whatever the servers.
var lastContinuum struct {
	mu  sync.Mutex
	key string
	c   []point
}

// sharedContinuum is Continuum(servers, weights), from lastContinuum when
// it is that one. Machines only read a continuum.
func sharedContinuum(servers []string, weights []int) []point {
	var b strings.Builder
	for _, s := range servers {
		b.WriteString(s)
		b.WriteByte(0)
	}
	for _, w := range weights {
		b.WriteString(strconv.Itoa(w))
		b.WriteByte(',')
	}
	key := b.String()
	lastContinuum.mu.Lock()
	defer lastContinuum.mu.Unlock()
	if lastContinuum.c == nil || lastContinuum.key != key {
		lastContinuum.key, lastContinuum.c = key, Continuum(servers, weights)
	}
	return lastContinuum.c
}

// keySum is crc32.ChecksumIEEE of key, from hsum when it is the last one.
func (m *Machine) keySum(key string) uint32 {
	if !m.hok || key != m.hkey {
		m.hkey, m.hsum, m.hok = key, crcString("", key), true
	}
	return m.hsum
}

// crcString is crc32.ChecksumIEEE([]byte(prefix + s)) without building
// either: the same table, bit for bit.
func crcString(prefix, s string) uint32 {
	crc := ^uint32(0)
	for i := 0; i < len(prefix); i++ {
		crc = crc32.IEEETable[byte(crc)^prefix[i]] ^ (crc >> 8)
	}
	for i := 0; i < len(s); i++ {
		crc = crc32.IEEETable[byte(crc)^s[i]] ^ (crc >> 8)
	}
	return ^crc
}

// Config is the machine's configuration, defaults filled in.
func (m *Machine) Config() Config { return m.cfg }

// Continuum is memcache-client's create_continuum_for: for each server,
// floor(n*160*weight/total) points, each the first 8 hex digits of
// SHA1("host:port:idx"), sorted by value.
func Continuum(servers []string, weights []int) []point {
	w := func(i int) int {
		if i < len(weights) && weights[i] > 0 {
			return weights[i]
		}
		return 1
	}
	total := 0
	for i := range servers {
		total += w(i)
	}
	var c []point
	for i, s := range servers {
		count := len(servers) * PointsPerServer * w(i) / total
		for idx := 0; idx < count; idx++ {
			sum := sha1.Sum([]byte(s + ":" + strconv.Itoa(idx)))
			c = append(c, point{value: binary.BigEndian.Uint32(sum[:4]), server: int32(i)})
		}
	}
	sort.SliceStable(c, func(a, b int) bool { return c[a].value < c[b].value })
	return c
}

// lookup is Continuum.binary_search and the entry it picks: the last
// point at or below h, or, below the first, the last point (Ruby's
// ary[-1]).
func (m *Machine) lookup(h uint32) int {
	c := m.continuum
	i := sort.Search(len(c), func(i int) bool { return c[i].value > h }) - 1
	if i < 0 {
		i = len(c) - 1
	}
	return int(c[i].server)
}

// Order is the server of each of the 20 tries for cache key ck (the
// namespaced key), dead or alive: crc32(ck), then crc32("<try><ck>") for
// try = 0..18. With one server, that server.
func (m *Machine) Order(ck string) [MaxTries]int {
	var o [MaxTries]int
	if len(m.cfg.Servers) == 1 {
		return o
	}
	h := crc32.ChecksumIEEE([]byte(ck))
	for t := range o {
		o[t] = m.lookup(h)
		h = crc32.ChecksumIEEE([]byte(strconv.Itoa(t) + ck))
	}
	return o
}

// CacheKey is make_cache_key: the namespace, ':' and the key.
func (m *Machine) CacheKey(key string) string { return m.cfg.Namespace + ":" + key }

// LockID is my_lock_id: "pid.object_id.time".
func LockID(pid int, objectID uint64, unix int64) string {
	// One string made, not three and their concatenation.
	var buf [64]byte
	b := strconv.AppendInt(buf[:0], int64(pid), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, objectID, 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, unix, 10)
	return string(b)
}

// ReqKind is what a request asks.
type ReqKind uint8

// Request kinds.
const (
	Acquire    ReqKind = iota // lock!: poll until held or timed out
	TryAcquire                // one attempt of lock!
	Release                   // unlock!: get, then delete if ours
)

var reqNames = [...]string{"acquire", "try-acquire", "release"}

// String names the kind.
func (k ReqKind) String() string { return reqNames[k] }

// Request is a caller's request.
type Request struct {
	Kind ReqKind
	// Key is the mutex id (Acquire, TryAcquire).
	Key string
	// Unix is the client clock's Unix seconds: the time part of the lock
	// id (Acquire, TryAcquire).
	Unix int64
	// ObjectID is the DistributedMutex's object_id, the lock id's middle
	// part: the driver's, unique within the client process.
	ObjectID uint64
	// Lease is the grant to release (Release).
	Lease *Lease
}

// OpKind is a memcached command.
type OpKind uint8

// Operations.
const (
	OpConnect OpKind = iota // open a connection (Server#socket)
	OpGet                   // get Key
	OpAdd                   // add Key = Value with Exp (0: never)
	OpDelete                // delete Key
)

var opNames = [...]string{"connect", "get", "add", "delete"}

// String names the command.
func (k OpKind) String() string { return opNames[k] }

// Op is one command to one server.
type Op struct {
	Kind  OpKind
	Key   string // the cache key (namespaced)
	Value string
	Exp   int32
}

// Outcome is what a reply says.
type Outcome uint8

// Outcomes.
const (
	OK          Outcome = iota // connect: connected; add: STORED; delete: DELETED
	Hit                        // get: the item (Value)
	Miss                       // get: no item; delete: NOT_FOUND
	NotStored                  // add: NOT_STORED
	TimedOut                   // no answer within Timeout (Timeout::Error)
	Broken                     // refused, reset, closed (SystemCallError, IOError)
	ServerError                // an ERROR answer (MemCacheError)
)

var outcomeNames = [...]string{"ok", "hit", "miss", "not-stored", "timeout", "broken", "error"}

// String names the outcome.
func (o Outcome) String() string { return outcomeNames[o] }

// Reply is the answer to an Op.
type Reply struct {
	Outcome Outcome
	Value   string // Hit
}

// OutKind is the kind of an Output.
type OutKind uint8

// Output kinds.
const (
	// OutSend: send Op to Server, its answer due within D (true time).
	// Detached: run's ensure unlock!, sent even when the caller gave up.
	OutSend OutKind = iota
	// OutTimer: call Fire after D on the client clock (sleep 0.1).
	OutTimer
	// OutGrant: the lock is held: Lease.
	OutGrant
	// OutDead: Server marked dead until Until (client clock).
	OutDead
	// OutFail: the request fails (an exception), Cause, while Text.
	OutFail
	// OutNotOurs: the release found another id (Text) or none.
	OutNotOurs
	// OutDone: the request is over with Result.
	OutDone
)

// Cause is why a request failed.
type Cause uint8

// Causes of OutFail.
const (
	CauseTimeout   Cause = iota // an operation timed out: the server is marked dead
	CauseBroken                 // the connection broke twice (or once, and no server was left)
	CauseError                  // an ERROR answer, twice
	CauseNoServers              // "No servers available"
	CauseNoConn                 // one server, dead or unreachable: "No connection to server"
	CauseBadKey                 // whitespace or longer than 250 bytes (ArgumentError)
	CauseCancelled              // the caller gave up
)

var causeNames = [...]string{"timeout", "broken", "error", "no-servers", "no-connection", "bad-key", "cancelled"}

// String names the cause.
func (c Cause) String() string { return causeNames[c] }

// Output is one thing a Call asks its driver to do or tells it.
type Output struct {
	Kind     OutKind
	Result   lm.Result // OutDone
	Clock    lm.Clock  // OutSend, OutTimer
	Detached bool      // OutSend
	Cause    Cause     // OutFail
	Server   int32     // OutSend, OutDead
	D        time.Duration
	Until    int64  // OutDead
	Lease    *Lease // OutGrant
	Text     string // OutFail: the stage; OutNotOurs: the id found
	Op       Op     // OutSend
}

// Lease is one grant: the key and the lock id. There is no fencing token
// and no server: each operation places the key again.
type Lease struct {
	Key      string
	CacheKey string
	ID       string
}

type phase uint8

const (
	phGet1   phase = iota // attempt_to_lock: current_lock
	phAdd                 // set_current_lock
	phGet2                // attempt_to_lock: current_lock, which decides
	phPoll                // sleep 0.1
	phRelGet              // unlock!: locked_by_me?
	phRelDel              // unlock!: delete
	phDone
)

// Call is one request in progress; its zero value is ready for Request.
type Call struct {
	kind     ReqKind
	phase    phase
	lease    Lease
	deadline int64
	timed    bool
	// ensure: the unlock! of run's ensure after a lock! that did not
	// grant; end with result then (unless the unlock raises).
	ensure bool
	result lm.Result
	// The operation being placed and sent (with_server).
	op         Op
	try        int
	h          uint32
	server     int
	connecting bool
	wsRetried  bool // with_server's retry after an IndexError
	sockRetry  bool // with_socket_management's retry
}

// Done reports whether the call has ended.
func (c *Call) Done() bool { return c.phase == phDone }

// Request starts r on c at client time now.
func (m *Machine) Request(c *Call, r Request, now int64, out []Output) []Output {
	*c = Call{kind: r.Kind}
	if r.Kind == Release {
		c.lease = *r.Lease
		c.phase = phRelGet
		return m.sendOp(c, Op{Kind: OpGet, Key: c.lease.CacheKey}, now, out)
	}
	if m.ck == "" || r.Key != m.ckey {
		m.ckey, m.ck = r.Key, m.CacheKey(r.Key)
	}
	ck := m.ck
	c.lease = Lease{Key: r.Key, CacheKey: ck, ID: LockID(m.cfg.PID, r.ObjectID, r.Unix)}
	if !validKey(ck) {
		// ArgumentError from get_server_for_key, and again from run's
		// ensure unlock!.
		out = append(out, Output{Kind: OutFail, Cause: CauseBadKey, Text: "lock"})
		return done(c, lm.Failed, out)
	}
	if r.Kind == Acquire && m.cfg.WaitTimeout > 0 {
		c.deadline, c.timed = now+int64(m.cfg.WaitTimeout), true
	}
	return m.attempt(c, now, out)
}

func validKey(ck string) bool {
	if len(ck) > MaxKey || len(ck) == 0 {
		return false
	}
	for i := 0; i < len(ck); i++ {
		switch ck[i] {
		case ' ', '\t', '\n', '\v', '\f', '\r':
			return false
		}
	}
	return true
}

func (m *Machine) attempt(c *Call, now int64, out []Output) []Output {
	c.phase = phGet1
	return m.sendOp(c, Op{Kind: OpGet, Key: c.lease.CacheKey}, now, out)
}

func (c *Call) stageName() string {
	switch c.phase {
	case phRelGet, phRelDel:
		if c.ensure {
			return "ensure-unlock"
		}
		return "unlock"
	}
	return "lock"
}

// fail is an exception out of lock! or unlock!.
func (m *Machine) fail(c *Call, cause Cause, now int64, out []Output) []Output {
	out = append(out, Output{Kind: OutFail, Cause: cause, Text: c.stageName()})
	res := lm.Failed
	if cause == CauseCancelled {
		res = lm.Cancelled
	}
	return m.endLock(c, res, now, out)
}

// endLock ends a lock! that did not grant with res: run's ensure calls
// unlock! first (Detached), and the request ends with res after it unless
// the unlock! raises. A failed unlock! (a release's, or the ensure's) is
// the end.
func (m *Machine) endLock(c *Call, res lm.Result, now int64, out []Output) []Output {
	if c.kind == Release || c.ensure {
		return done(c, res, out)
	}
	c.ensure, c.result = true, res
	c.phase = phRelGet
	return m.sendOp(c, Op{Kind: OpGet, Key: c.lease.CacheKey}, now, out)
}

func done(c *Call, res lm.Result, out []Output) []Output {
	c.phase = phDone
	return append(out, Output{Kind: OutDone, Result: res})
}

// sendOp is with_server: place op's key and send it.
func (m *Machine) sendOp(c *Call, op Op, now int64, out []Output) []Output {
	c.op, c.wsRetried = op, false
	return m.place(c, now, out)
}

func (m *Machine) place(c *Call, now int64, out []Output) []Output {
	c.sockRetry = false
	if len(m.cfg.Servers) == 1 {
		c.server = 0
		return m.socket(c, now, out)
	}
	c.try, c.h = 0, m.keySum(c.op.Key)
	return m.tries(c, now, out)
}

// tries is get_server_for_key's loop from c.try: the first server that
// is alive? (connected, or connects) takes the op.
func (m *Machine) tries(c *Call, now int64, out []Output) []Output {
	for c.try < MaxTries {
		if !m.lok || c.h != m.lh {
			m.lh, m.ls, m.lok = c.h, m.lookup(c.h), true
		}
		s := m.ls
		if m.connected[s] {
			c.server = s
			return m.sendNow(c, out)
		}
		if now >= m.deadUntil[s] {
			c.server, c.connecting = s, true
			return m.send(c, Op{Kind: OpConnect}, out)
		}
		if !m.next(c) {
			break
		}
	}
	return m.fail(c, CauseNoServers, now, out)
}

// next moves to the next try; false if there is none.
func (m *Machine) next(c *Call) bool {
	if m.cfg.NoFailover {
		return false
	}
	c.h = crcString(strconv.Itoa(c.try), c.op.Key)
	c.try++
	return c.try < MaxTries
}

// socket is Server#socket inside with_socket_management: connected,
// connect, or nil (IndexError).
func (m *Machine) socket(c *Call, now int64, out []Output) []Output {
	s := c.server
	if m.connected[s] {
		return m.sendNow(c, out)
	}
	if now < m.deadUntil[s] {
		return m.indexError(c, now, out)
	}
	c.connecting = true
	return m.send(c, Op{Kind: OpConnect}, out)
}

// indexError is "No connection to server": with_server places the op
// once more if there is more than one server.
func (m *Machine) indexError(c *Call, now int64, out []Output) []Output {
	if !c.wsRetried && len(m.cfg.Servers) > 1 {
		c.wsRetried = true
		return m.place(c, now, out)
	}
	if len(m.cfg.Servers) > 1 {
		return m.fail(c, CauseBroken, now, out)
	}
	return m.fail(c, CauseNoConn, now, out)
}

func (m *Machine) sendNow(c *Call, out []Output) []Output {
	c.connecting = false
	return m.send(c, c.op, out)
}

func (m *Machine) send(c *Call, op Op, out []Output) []Output {
	return append(out, Output{Kind: OutSend, Server: int32(c.server), Op: op, D: m.cfg.Timeout, Clock: lm.TrueTime, Detached: c.ensure})
}

func (m *Machine) markDead(c *Call, now int64, out []Output) []Output {
	s := c.server
	m.connected[s] = false
	m.deadUntil[s] = now + int64(m.cfg.RetryDead)
	return append(out, Output{Kind: OutDead, Server: int32(s), Until: m.deadUntil[s]})
}

// Reply feeds c the answer to its operation in flight, at client time
// now.
func (m *Machine) Reply(c *Call, r Reply, now int64, out []Output) []Output {
	if c.phase == phDone || c.phase == phPoll {
		return out
	}
	if c.connecting {
		c.connecting = false
		if r.Outcome == OK {
			m.connected[c.server] = true
			return m.sendNow(c, out)
		}
		// Server#socket rescues the error and marks the server dead.
		out = m.markDead(c, now, out)
		if len(m.cfg.Servers) == 1 || c.sockRetry {
			return m.indexError(c, now, out)
		}
		if !m.next(c) {
			return m.fail(c, CauseNoServers, now, out)
		}
		return m.tries(c, now, out)
	}
	switch r.Outcome {
	case TimedOut:
		// Timeout::Error: mark_dead, and the error is raised.
		out = m.markDead(c, now, out)
		return m.fail(c, CauseTimeout, now, out)
	case Broken, ServerError:
		if r.Outcome == Broken {
			m.connected[c.server] = false
		}
		if c.sockRetry {
			cause := CauseBroken
			if r.Outcome == ServerError {
				cause = CauseError
			}
			return m.fail(c, cause, now, out)
		}
		c.sockRetry = true
		return m.socket(c, now, out)
	}
	return m.answered(c, r, now, out)
}

// answered is the algorithm's step on an operation's answer.
func (m *Machine) answered(c *Call, r Reply, now int64, out []Output) []Output {
	switch c.phase {
	case phGet1:
		if r.Outcome == Hit {
			c.phase = phGet2
			return m.sendOp(c, Op{Kind: OpGet, Key: c.lease.CacheKey}, now, out)
		}
		c.phase = phAdd
		return m.sendOp(c, Op{Kind: OpAdd, Key: c.lease.CacheKey, Value: c.lease.ID, Exp: m.exp}, now, out)
	case phAdd:
		// set_current_lock's answer is not looked at.
		c.phase = phGet2
		return m.sendOp(c, Op{Kind: OpGet, Key: c.lease.CacheKey}, now, out)
	case phGet2:
		if r.Outcome == Hit && r.Value == c.lease.ID {
			c.phase = phDone
			l := c.lease
			out = append(out, Output{Kind: OutGrant, Lease: &l})
			return append(out, Output{Kind: OutDone, Result: lm.OK})
		}
		if c.kind == TryAcquire {
			return m.endLock(c, lm.NotAcquired, now, out)
		}
		c.phase = phPoll
		return append(out, Output{Kind: OutTimer, D: m.cfg.PollInterval, Clock: lm.ClientClock})
	case phRelGet:
		if r.Outcome == Hit && r.Value == c.lease.ID {
			c.phase = phRelDel
			return m.sendOp(c, Op{Kind: OpDelete, Key: c.lease.CacheKey}, now, out)
		}
		if c.ensure {
			return done(c, c.result, out)
		}
		out = append(out, Output{Kind: OutNotOurs, Text: r.Value})
		return done(c, lm.Lost, out)
	case phRelDel:
		// The delete's answer (DELETED, NOT_FOUND) is not looked at.
		if c.ensure {
			return done(c, c.result, out)
		}
		return done(c, lm.OK, out)
	}
	return out
}

// Fire feeds c its poll timer firing at client time now: `until
// timeout?` and the next attempt.
func (m *Machine) Fire(c *Call, now int64, out []Output) []Output {
	if c.phase != phPoll {
		return out
	}
	if c.timed && now > c.deadline {
		return m.endLock(c, lm.NotAcquired, now, out)
	}
	return m.attempt(c, now, out)
}

// Cancel tells c that the caller gave up: the op it asked to send was not
// sent, or its timer will not be waited for. A lock! then ends as if it
// raised, with run's ensure unlock! (Detached); an unlock! fails.
func (m *Machine) Cancel(c *Call, now int64, out []Output) []Output {
	switch {
	case c.phase == phDone:
		return out
	case c.ensure:
		// The ensure's op could not be sent.
		return done(c, c.result, out)
	}
	c.connecting = false
	return m.fail(c, CauseCancelled, now, out)
}
