package sim

import (
	"strconv"
	"time"

	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/locks"
	lm "github.com/locksim/locksim/locks/machine"
	lockMemcache "github.com/locksim/locksim/locks/memcache"
	mcm "github.com/locksim/locksim/locks/memcache/machine"
)

// memcache models memcached 1.6 servers under locks/memcache, which is
// seed 004's mutex_lock with locksim's renewal and incr token (MegaMutex
// as written is backend megamutex, megamutex.go, on these same servers).
//
// Reproduced on the server:
//   - add stores only if the key is absent (or expired): the lock. incr of
//     the token counter, created at "0" when missing. Renew and Release
//     are gets + cas, which here is one compare-value-and-set (see below).
//   - Expiry in whole seconds on the server's clock: memcached's
//     current_time is seconds since the process started, which its
//     clock_handler reads from the clock once a second (a libevent timer
//     at the process's own phase); an item set with a relative expiry of e
//     seconds at current_time t expires when current_time reaches t+e, so
//     it lives between e-1 and e seconds. A server clock that drifts or
//     steps moves every expiry with it — at the next tick, not at once (as
//     measured on memcached 1.6.18 under libfaketime: an item expired
//     about a second after a step). A negative expiry expires at once.
//   - LRU eviction: each server holds at most mcCapacity items and evicts
//     the least recently used; the "evict" fault writes mcCapacity filler
//     items, as memory pressure from other users would. The token counter
//     is an ordinary item and goes with the lock.
//   - A restart (or a kill and a start) empties the server: the lock and
//     its counter are gone, so the next add succeeds and tokens start
//     again at 1.
//
// The client is not a copy: it is locks/memcache's own client machine
// (package locks/memcache/machine), which real runs drive over gomemcache,
// driven here by mcClient over these servers, with the configuration real
// runs use (locks/memcache.RunConfig: a server that cannot be reached —
// refused, or no answer within 500 ms of true time, twice, the second on
// a fresh connection — is skipped for 1 s; lock.failover: off keeps the
// key on its server). Renew and release are gets + cas, the token incr,
// then add "0" and incr on a miss, each a round trip of its own, as on
// the real server.
//
// Held to the real server by sim/behaviour's MemcachedCases (run against
// memcached 1.6 from package cluster and against this model): add as a
// test-and-set; delete; gets and cas with CAS ids; incr that creates
// nothing, and the token as add "0" then incr; touch; a negative expiry;
// expiry in whole seconds (an item of e s lives between e-1 and e s); a
// server clock step seen at the next tick; a restart empties the server;
// memory pressure evicts the lock and its counter; an add sent into a cut
// of the client's link lost, and failed at the heal (the link's reset).
// The cases found three defects, since fixed: the model applied a clock
// step at once, and its first second of current_time lasted up to two, so
// items lived up to a second too long; and a cut link held the add and
// delivered it at the heal (stored, and answered), where the real proxy
// drops it and the heal's reset fails it — so a cut-off holder's retry in
// flight at the heal was answered NOT_STORED by the key's server, where
// in real runs it fails and the next try goes to the next server
// (holder-cut-off: fencing-lock in 229 of 500 seeds before, 435 after;
// real runs 6 of 6, 2026-12-02).
type memcache struct {
	r       *run
	servers []*mcServer
	cfg     lockMemcache.Config // as harness/ configures real runs
	ops     *arena[mcOp]
	timers  *arena[mcTimer]
	leases  *arena[mcm.Lease]
}

// mcCapacity is the number of items a simulated memcached holds.
const mcCapacity = 1024

type mcServer struct {
	n          *node
	items      map[string]*mcItem
	head, tail *mcItem // LRU: head most recent
	startLocal int64
	ct         int64  // current_time, as of the last tick
	casSeq     uint64 // the last CAS id handed out
	fill       int
	// last is nil or the item found or stored last, which is in items:
	// the one key a run uses is looked up without hashing it (lookup; del
	// keeps it true).
	last    *mcItem
	tickFn  func()         // tick, made once
	itemMem *arena[mcItem] // the run's items (nil: allocated one by one)
}

type mcItem struct {
	key, value string
	exp        int64  // current_time at which it expires; 0: never
	cas        uint64 // the CAS id: new at every store and incr
	prev, next *mcItem
}

func newMemcache(r *run, size int) *memcache {
	m := &memcache{r: r, ops: mcOps.get(r), timers: mcTimers.get(r), leases: mcLeases.get(r)}
	items := mcItems.get(r)
	names := make([]string, size)
	for i := 0; i < size; i++ {
		s := &mcServer{n: r.w.addNode("memcached" + strconv.Itoa(i+1)), itemMem: items} // as cluster/ names them
		s.n.resets = true                                                               // each client reaches it through a proxy of its own
		// The server started some time before the run: its ticks are at
		// a phase of their own.
		s.reset(1 + r.w.int64n(int64(time.Second)))
		s.n.onRestart = func() { s.reset(int64(time.Second)) }
		m.servers = append(m.servers, s)
		r.servers = append(r.servers, s.n)
		names[i] = s.n.name
	}
	m.cfg = lockMemcache.RunConfig(names, r.sc.Lock.NoFailover())
	return m
}

// reset is a server process started now, its first tick after
// firstTick.
func (s *mcServer) reset(firstTick int64) {
	s.items = make(map[string]*mcItem)
	s.head, s.tail, s.last = nil, nil, nil
	// current_time counts whole seconds of the server's clock, and each
	// tick reads one more than the last (memcached reads the monotonic
	// clock's seconds at ticks a second apart): the count is taken from
	// half a second before the tick's phase, so that tick k reads k.
	s.startLocal = s.n.now() + firstTick - int64(time.Second) - int64(time.Second)/2
	s.ct = 0
	if s.tickFn == nil {
		s.tickFn = s.tick
	}
	s.n.afterTrue(firstTick, s.tickFn)
}

// tick is memcached's clock_handler: once a second it sets current_time
// from the server's clock.
func (s *mcServer) tick() {
	s.ct = (s.n.now() - s.startLocal) / int64(time.Second)
	s.n.afterTrue(int64(time.Second), s.tickFn)
}

// currentTime is memcached's current_time: whole seconds since start, as
// the last tick read them.
func (s *mcServer) currentTime() int64 {
	return s.ct
}

func (s *mcServer) unlink(it *mcItem) {
	if it.prev != nil {
		it.prev.next = it.next
	} else {
		s.head = it.next
	}
	if it.next != nil {
		it.next.prev = it.prev
	} else {
		s.tail = it.prev
	}
	it.prev, it.next = nil, nil
}

func (s *mcServer) front(it *mcItem) {
	it.next = s.head
	if s.head != nil {
		s.head.prev = it
	}
	s.head = it
	if s.tail == nil {
		s.tail = it
	}
}

// lookup is s.items[key].
func (s *mcServer) lookup(key string) *mcItem {
	if it := s.last; it != nil && it.key == key {
		return it
	}
	it := s.items[key]
	if it != nil {
		s.last = it
	}
	return it
}

// del is delete(s.items, key).
func (s *mcServer) del(key string) {
	delete(s.items, key)
	if s.last != nil && s.last.key == key {
		s.last = nil
	}
}

// get returns the live item for key (bumping it in the LRU), or nil.
func (s *mcServer) get(key string) *mcItem {
	it := s.lookup(key)
	if it == nil {
		return nil
	}
	if it.exp != 0 && it.exp <= s.currentTime() {
		s.unlink(it)
		s.del(key)
		return nil
	}
	s.unlink(it)
	s.front(it)
	return it
}

// set stores key with a relative expiry in seconds (0: never; negative:
// already expired), evicting the least recently used items beyond
// mcCapacity.
func (s *mcServer) set(key, value string, exp int64) {
	if it := s.lookup(key); it != nil {
		s.unlink(it)
		s.del(key)
	}
	if exp < 0 {
		return
	}
	s.casSeq++
	var it *mcItem
	if s.itemMem != nil {
		it = s.itemMem.alloc()
	} else {
		it = new(mcItem)
	}
	it.key, it.value, it.cas = key, value, s.casSeq
	if exp > 0 {
		it.exp = s.currentTime() + exp
	}
	s.items[key] = it
	s.last = it
	s.front(it)
	for len(s.items) > mcCapacity {
		old := s.tail
		s.unlink(old)
		s.del(old.key)
	}
}

func (s *mcServer) add(key, value string, exp int64) bool {
	if s.get(key) != nil {
		return false
	}
	s.set(key, value, exp)
	return true
}

// incrExisting is memcached's incr: one more on a live number, or
// NOT_FOUND (false); it creates nothing.
func (s *mcServer) incrExisting(key string) (int64, bool) {
	it := s.get(key)
	if it == nil {
		return 0, false
	}
	v, _ := strconv.ParseInt(it.value, 10, 64)
	v++
	it.value = strconv.FormatInt(v, 10)
	s.casSeq++
	it.cas = s.casSeq
	return v, true
}

// touch sets a live item's relative expiry; false is NOT_FOUND.
func (s *mcServer) touch(key string, exp int64) bool {
	it := s.get(key)
	if it == nil {
		return false
	}
	if exp < 0 {
		s.unlink(it)
		s.del(key)
		return true
	}
	it.exp = 0
	if exp > 0 {
		it.exp = s.currentTime() + exp
	}
	return true
}

// remove is memcached's delete; false is NOT_FOUND.
func (s *mcServer) remove(key string) bool {
	it := s.get(key)
	if it == nil {
		return false
	}
	s.unlink(it)
	s.del(key)
	return true
}

// cas stores key if its CAS id is still id: 0 stored, 1 NOT_FOUND, 2
// EXISTS.
func (s *mcServer) cas(key, value string, exp int64, id uint64) int {
	it := s.get(key)
	switch {
	case it == nil:
		return 1
	case it.cas != id:
		return 2
	}
	s.set(key, value, exp)
	return 0
}

// evictAll is memory pressure: mcCapacity filler items through the LRU.
func (s *mcServer) evictAll() {
	for i := 0; i < mcCapacity; i++ {
		s.fill++
		s.set("filler"+strconv.Itoa(s.fill), "x", 0)
	}
}

func (m *memcache) leader() *node { return m.servers[0].n }
func (m *memcache) faultChanged() {}
func (m *memcache) evict(n *node) {
	for _, s := range m.servers {
		if s.n == n && !s.n.down {
			s.evictAll()
		}
	}
}

// destroySession deletes the holder's item (an operator's delete).
func (m *memcache) destroySession(p *proc) {
	if c, ok := p.lc.(*mcClient); ok && c.lease != nil {
		m.servers[c.lease.Server].set(c.lease.StorageKey(), "", -1)
	}
}

func (m *memcache) client(p *proc) lockClient {
	o := locks.Options{
		TTL:          time.Duration(m.r.opts.ttl),
		PollInterval: time.Duration(m.r.opts.poll),
		WaitTimeout:  time.Duration(m.r.opts.waitTimeout),
		Owner:        p.name,
	}
	return &mcClient{m: m, p: p, mc: mcm.New(lockMemcache.MachineConfig(m.cfg, o)), buf: make([]mcm.Output, 0, 4)}
}

// mcClient is the simulator's driver of locks/memcache's client machine
// (package locks/memcache/machine) for one proc: it sends the operations
// the machine asks for as calls to the memcached models, sets its poll
// timer on the proc's clock, and gives it the answers. It decides
// nothing of the algorithm.
//
// Beside the machine it applies the bounds of locks.Run's hold loop
// (package locks/machine/hold, which package sim drives as real runs do):
// a renewal may take until the next one is due (renew_every) and a
// release one TTL, both on the client's clock; past that, or once the
// hold cancels a renewal, no further operation of the request is sent (as
// the real driver checks its context before each operation), and a
// release ends with an unknown outcome. It tells the hold when a renewal
// is over (renewNotifier).
type mcClient struct {
	m     *memcache
	p     *proc
	mc    *mcm.Machine
	nonce uint64
	lease *mcm.Lease // the current grant, until its release starts
	slots [3]mcSlot
	buf   []mcm.Output // the machine's outputs, reused
}

// The requests a proc can have in progress at once: one of each.
const (
	slotAcquire uint8 = iota
	slotRenew
	slotRelease
)

// mcSlot is one request in progress.
type mcSlot struct {
	c        mcm.Call
	gen      uint32 // bumped at every request: stale answers check it
	busy     bool
	deadline int64 // virtual time past which no op is sent; 0: none
	acqDone  acquireWaiter
	relDone  releaseWaiter
	renDone  renewWaiter // renewThen's, if any
	last     lm.Result   // how the last request ended
}

// mcOp is one operation of a machine in flight to one server, from the
// run's arena: the call is embedded, so an operation is one allocation
// and no closures.
type mcOp struct {
	call
	c      *mcClient
	slot   uint8
	gen    uint32
	server int
	op     mcm.Op
	rep    mcm.Reply
}

// mcTimer is a machine's poll timer, from the run's arena.
type mcTimer struct {
	c    *mcClient
	slot uint8
	gen  uint32
}

// mcOps and mcTimers keep their memory from one run to the next.
var (
	mcOps    arenaPool[mcOp]
	mcTimers arenaPool[mcTimer]
	mcLeases arenaPool[mcm.Lease]
	mcItems  arenaPool[mcItem]
)

func (c *mcClient) acquire(key string, done acquireWaiter) {
	s := c.start(slotAcquire, 0)
	s.acqDone = done
	c.nonce++
	// The grant, if any, lives in the run's arena: no allocation, and
	// never reused within the run.
	lease := c.m.leases.alloc()
	c.drive(slotAcquire, c.mc.Request(&s.c, mcm.Request{Kind: mcm.Acquire, Key: key, Lease: lease}, c.p.n.now(), c.nonce, c.buf[:0]))
}

func (c *mcClient) renew() {
	if c.lease == nil || c.slots[slotRenew].busy {
		return // the last renewal is still running: locks.Run waits for it
	}
	s := c.start(slotRenew, c.m.r.opts.renewEvery)
	c.drive(slotRenew, c.mc.Request(&s.c, mcm.Request{Kind: mcm.Renew, Lease: c.lease}, c.p.n.now(), 0, c.buf[:0]))
}

// renewThen implements renewNotifier: the renewal's end goes to done, as
// lease.Renew returns to locks.Run's renewer.
func (c *mcClient) renewThen(done renewWaiter) {
	if c.lease == nil || c.slots[slotRenew].busy {
		done.renewed(lm.Failed)
		return
	}
	c.slots[slotRenew].renDone = done
	c.renew()
}

// cancelRenew implements renewNotifier: a renewal in progress sends no
// further operation, as the real driver checks its context before each.
func (c *mcClient) cancelRenew() {
	if s := &c.slots[slotRenew]; s.busy {
		s.deadline = max(c.m.r.w.now, 1)
	}
}

func (c *mcClient) release(done releaseWaiter) {
	c.slots[slotAcquire].gen++ // an acquire's late answers are stale
	if c.lease == nil {
		done.released(history.Fail)
		return
	}
	lease := c.lease
	c.lease = nil
	s := c.start(slotRelease, c.m.r.opts.ttl)
	s.relDone = done
	c.drive(slotRelease, c.mc.Request(&s.c, mcm.Request{Kind: mcm.Release, Lease: lease}, c.p.n.now(), 0, c.buf[:0]))
}

// start begins a request in slot i, bounded by bound on the client's
// clock (0: no bound).
func (c *mcClient) start(i uint8, bound int64) *mcSlot {
	s := &c.slots[i]
	s.gen++
	s.busy = true
	s.deadline = 0
	if bound > 0 {
		s.deadline = c.m.r.w.now + c.p.n.clk.real(bound)
	}
	return s
}

// drive carries out the outputs of slot i's machine call. out is c.buf:
// OutDone is always the last output, so a request that finish starts
// (from a proc's callback) may reuse the buffer.
func (c *mcClient) drive(i uint8, out []mcm.Output) {
	s := &c.slots[i]
	for {
		var next *mcm.Output
		for k := range out {
			o := &out[k]
			switch o.Kind {
			case mcm.OutSend, mcm.OutTimer:
				next = o
			case mcm.OutGrant:
				c.lease = o.Lease
			case mcm.OutLost:
				c.p.onLost(o.LossText(c.m.servers[o.Server].n.name))
			case mcm.OutDone:
				c.finish(i, o.Result)
				return
			}
		}
		if next == nil {
			return
		}
		w := c.m.r.w
		if next.Kind == mcm.OutTimer {
			t := c.m.timers.alloc()
			t.c, t.slot, t.gen = c, i, s.gen
			c.p.n.afterH(int64(next.D), t)
			return
		}
		if !next.Detached && s.deadline != 0 && w.now >= s.deadline {
			out = c.mc.Cancel(&s.c, c.p.n.now(), c.buf[:0])
			continue
		}
		q := c.m.ops.alloc()
		q.c, q.slot, q.gen, q.server, q.op = c, i, s.gen, int(next.Server), next.Op
		q.call.w, q.call.c, q.call.s, q.call.h = w, c.p.n, c.m.servers[next.Server].n, q // the rest is zero, from the arena
		w.startTrue(&q.call, int64(next.D))
		return
	}
}

// finish ends slot i's request with res.
func (c *mcClient) finish(i uint8, res lm.Result) {
	s := &c.slots[i]
	s.busy, s.last = false, res
	switch i {
	case slotAcquire:
		tok := int64(0)
		if res == lm.OK {
			tok = c.lease.Token
		}
		endAcquire(s.acqDone, res, tok)
	case slotRenew:
		if done := s.renDone; done != nil {
			s.renDone = nil
			done.renewed(res)
		}
	case slotRelease:
		t := history.Info
		switch res {
		case lm.OK:
			t = history.OK
		case lm.Lost:
			t = history.Fail
		}
		s.relDone.released(t)
	}
}

func (t *mcTimer) stopped() bool {
	s := &t.c.slots[t.slot]
	return s.gen != t.gen || !s.busy
}

// handle is the poll timer firing.
func (t *mcTimer) handle() {
	if t.stopped() {
		return
	}
	c := t.c
	s := &c.slots[t.slot]
	c.nonce++
	c.drive(t.slot, c.mc.Fire(&s.c, c.p.n.now(), c.nonce, c.buf[:0]))
}

// serve runs the operation on the server.
func (q *mcOp) serve(*call) {
	s := q.c.m.servers[q.server]
	op := &q.op
	switch op.Kind {
	case mcm.OpAdd:
		// The value is made only if the add stores, and handed back to
		// the machine, which then need not make it again.
		q.rep.Outcome = mcm.NotStored
		if s.get(op.Key) == nil {
			v := op.Data()
			s.set(op.Key, v, int64(op.Exp))
			q.rep = mcm.Reply{Outcome: mcm.Stored, Value: v}
		}
	case mcm.OpIncr:
		n, ok := s.incrExisting(op.Key)
		q.rep = mcm.Reply{Outcome: mcm.Miss}
		if ok {
			q.rep = mcm.Reply{Outcome: mcm.Number, N: uint64(n)}
		}
	case mcm.OpGets:
		q.rep = mcm.Reply{Outcome: mcm.Miss}
		if it := s.get(op.Key); it != nil {
			q.rep = mcm.Reply{Outcome: mcm.Hit, Value: it.value, CAS: it.cas}
		}
	case mcm.OpCas:
		q.rep.Outcome = [...]mcm.Outcome{mcm.Stored, mcm.Miss, mcm.Exists}[s.cas(op.Key, op.Value, int64(op.Exp), op.CAS)]
	}
	q.call.replyH()
}

// replied runs on the client with the answer.
func (q *mcOp) replied() { q.answer(q.rep) }

// failed is a refused or timed-out operation: the server is unreachable.
func (q *mcOp) failed(e rpcErr) {
	if e == errServer {
		q.answer(mcm.Reply{Outcome: mcm.ServerError})
		return
	}
	q.answer(mcm.Reply{Outcome: mcm.Unreachable})
}

func (q *mcOp) answer(r mcm.Reply) {
	c := q.c
	s := &c.slots[q.slot]
	if s.gen != q.gen || !s.busy {
		return
	}
	c.drive(q.slot, c.mc.Reply(&s.c, r, c.p.n.now(), c.buf[:0]))
}
