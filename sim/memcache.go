package sim

import (
	"hash/crc32"
	"slices"
	"strconv"
	"time"

	"github.com/locksim/locksim/history"
	lockMemcache "github.com/locksim/locksim/locks/memcache"
)

// memcache models memcached 1.6 servers under locks/memcache, which is
// MegaMutex (seeds 000/001) and seed 004's mutex_lock.
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
// Reproduced in the client (mirrored from locks/memcache's servers.go,
// which is unexported): the key's server is crc32(key) mod N; with
// failover, a server that cannot be reached (refused, or no answer within
// the 500 ms timeout) is marked dead for 30 s and the client rehashes
// "<try><key>" for up to 20 tries, skipping dead servers — so a client cut
// off from the holder's server takes the lock on another one. Acquire polls
// TryAcquire every PollInterval (locks.Poll); a backend error ends the
// Acquire. Renew and Release go to the server the add succeeded on. Loss is
// found only by a Renew (or a Release) that finds the item gone or taken.
//
// Held to the real server by sim/behaviour's MemcachedCases (run against
// memcached 1.6 from package cluster and against this model): add as a
// test-and-set; delete; gets and cas with CAS ids; incr that creates
// nothing, and the token as add "0" then incr; touch; a negative expiry;
// expiry in whole seconds (an item of e s lives between e-1 and e s); a
// server clock step seen at the next tick; a restart empties the server;
// memory pressure evicts the lock and its counter. The cases found two
// defects, since fixed: the model applied a clock step at once, and its
// first second of current_time lasted up to two, so items lived up to a
// second too long.
//
// Simplified: gets + cas is one round trip that compares the value and
// sets the item (the real one is two, and retries on a cas conflict); the
// token's incr-or-create is one round trip (the real one is up to three);
// the client's retry on a fresh connection is not modelled.
type memcache struct {
	r       *run
	servers []*mcServer
	exp     int64 // the lock's expiry in whole seconds
	reqs    *arena[mcReq]
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
}

type mcItem struct {
	key, value string
	exp        int64  // current_time at which it expires; 0: never
	cas        uint64 // the CAS id: new at every store and incr
	prev, next *mcItem
}

func newMemcache(r *run, size int) *memcache {
	m := &memcache{r: r, reqs: mcReqs.get(r)}
	secs := (r.opts.ttl + int64(time.Second) - 1) / int64(time.Second)
	m.exp = max(secs, 1)
	for i := 0; i < size; i++ {
		s := &mcServer{n: r.w.addNode("memcached" + strconv.Itoa(i+1))} // as cluster/ names them
		// The server started some time before the run: its ticks are at
		// a phase of their own.
		s.reset(1 + r.w.int64n(int64(time.Second)))
		s.n.onRestart = func() { s.reset(int64(time.Second)) }
		m.servers = append(m.servers, s)
		r.servers = append(r.servers, s.n)
	}
	return m
}

// reset is a server process started now, its first tick after
// firstTick.
func (s *mcServer) reset(firstTick int64) {
	s.items = make(map[string]*mcItem)
	s.head, s.tail = nil, nil
	// current_time counts whole seconds of the server's clock, and each
	// tick reads one more than the last (memcached reads the monotonic
	// clock's seconds at ticks a second apart): the count is taken from
	// half a second before the tick's phase, so that tick k reads k.
	s.startLocal = s.n.now() + firstTick - int64(time.Second) - int64(time.Second)/2
	s.ct = 0
	s.n.afterTrue(firstTick, s.tick)
}

// tick is memcached's clock_handler: once a second it sets current_time
// from the server's clock.
func (s *mcServer) tick() {
	s.ct = (s.n.now() - s.startLocal) / int64(time.Second)
	s.n.afterTrue(int64(time.Second), s.tick)
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

// get returns the live item for key (bumping it in the LRU), or nil.
func (s *mcServer) get(key string) *mcItem {
	it := s.items[key]
	if it == nil {
		return nil
	}
	if it.exp != 0 && it.exp <= s.currentTime() {
		s.unlink(it)
		delete(s.items, key)
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
	if it := s.items[key]; it != nil {
		s.unlink(it)
		delete(s.items, key)
	}
	if exp < 0 {
		return
	}
	s.casSeq++
	it := &mcItem{key: key, value: value, cas: s.casSeq}
	if exp > 0 {
		it.exp = s.currentTime() + exp
	}
	s.items[key] = it
	s.front(it)
	for len(s.items) > mcCapacity {
		old := s.tail
		s.unlink(old)
		delete(s.items, old.key)
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

// incr is locks/memcache's token step: incr, and on NOT_FOUND add "0" and
// incr again (three round trips in the real client, one here).
func (s *mcServer) incr(key string) int64 {
	if v, ok := s.incrExisting(key); ok {
		return v
	}
	s.add(key, "0", 0)
	v, _ := s.incrExisting(key)
	return v
}

// touch sets a live item's relative expiry; false is NOT_FOUND.
func (s *mcServer) touch(key string, exp int64) bool {
	it := s.get(key)
	if it == nil {
		return false
	}
	if exp < 0 {
		s.unlink(it)
		delete(s.items, key)
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
	delete(s.items, key)
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

// casValue sets key's expiry if it still holds value: 0 done, 1 missing,
// 2 holds another value.
func (s *mcServer) casValue(key, value string, exp int64) int {
	it := s.get(key)
	switch {
	case it == nil:
		return 1
	case it.value != value:
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
	if c, ok := p.lc.(*mcClient); ok && c.server >= 0 {
		m.servers[c.server].set(c.key, "", -1)
	}
}

func (m *memcache) client(p *proc) lockClient {
	return &mcClient{m: m, p: p, server: -1, deadUntil: make([]int64, len(m.servers))}
}

// mcClient is locks/memcache's client side for one proc.
type mcClient struct {
	m         *memcache
	p         *proc
	deadUntil []int64 // client clock
	nonce     int
	order     map[string][]int // per key: the server of each of the 20 tries
	cands     []int
	tokFor    string // tokKey is the token key of tokFor
	tokKey    string

	gen    uint32
	key    string
	value  string
	server int
}

const (
	mcTimeout   = int64(500 * time.Millisecond) // gomemcache's DefaultTimeout
	mcRetryDead = int64(30 * time.Second)
	mcMaxTries  = 20
)

func (c *mcClient) hash(k string) int {
	return int(crc32.ChecksumIEEE([]byte(k)) % uint32(len(c.m.servers)))
}

// candidates is locks/memcache's servers.candidates: the key's server,
// then the servers "<try><key>" hashes to, skipping dead ones and repeats.
// The result is valid until the next call.
func (c *mcClient) candidates(key string) []int {
	order := c.order[key]
	if order == nil {
		order = make([]int, mcMaxTries)
		for try := range order {
			k := key
			if try > 0 {
				k = strconv.Itoa(try-1) + key
			}
			order[try] = c.hash(k)
		}
		if c.order == nil {
			c.order = make(map[string][]int)
		}
		c.order[key] = order
	}
	out := c.cands[:0]
	if len(c.m.servers) == 1 {
		return append(out, order[0])
	}
	now := c.p.n.now()
	for _, i := range order {
		if now < c.deadUntil[i] || slices.Contains(out, i) {
			continue
		}
		out = append(out, i)
	}
	c.cands = out
	return out
}

// mcReq is one request of an mcClient to one memcached server: what it
// asks (kind), its answer, and what the client does with it. The call is
// embedded and the callbacks are the client's own objects, so a request
// is one allocation (from the run's arena) and no closures: the poll loop
// of each waiting client makes one every PollInterval.
type mcReq struct {
	call
	c      *mcClient
	kind   uint8
	gen    uint32
	server int
	key    string
	value  string
	tokKey string
	nonce  int
	exp    int64
	a      *mcAcquire         // mrAdd, mrIncr: the acquire it is a try of
	done   func(history.Type) // mrCas

	// mrAdd fails over: the candidates in order, the one being tried.
	cands   []int
	candBuf [4]int
	k       int

	// The answer.
	ok  bool
	res int   // mrCas: casValue's result
	n   int64 // mrIncr: the token
}

// Kinds of mcReq.
const (
	mrAdd  uint8 = iota // the lock's add, failing over
	mrIncr              // the token's incr on the lock's server
	mrCas               // gets + cas (renew, release)
)

// mcReqs keeps the memory of mcReqs from one run to the next.
var mcReqs arenaPool[mcReq]

func (c *mcClient) req(kind uint8, server int) *mcReq {
	q := c.m.reqs.alloc()
	q.c, q.kind, q.server = c, kind, server
	return q
}

// send runs q on its server with the client's timeout.
func (q *mcReq) send() {
	c := q.c
	w := c.m.r.w
	q.call = call{w: w, c: c.p.n, s: c.m.servers[q.server].n, h: q}
	w.start(&q.call, mcTimeout)
}

// serve runs on the server.
func (q *mcReq) serve(*call) {
	s := q.c.m.servers[q.server]
	switch q.kind {
	case mrAdd:
		// The owner and nonce are only written if the add stores.
		q.ok = s.get(q.key) == nil
		if q.ok {
			q.value = q.c.p.name + " " + strconv.Itoa(q.nonce)
			s.set(q.key, q.value, q.c.m.exp)
		}
	case mrIncr:
		q.n = s.incr(q.tokKey)
	case mrCas:
		q.res = s.casValue(q.key, q.value, q.exp)
	}
	q.call.replyH()
}

// replied runs on the client with the answer.
func (q *mcReq) replied() {
	c := q.c
	switch q.kind {
	case mrAdd:
		if c.gen != q.gen {
			return
		}
		if !q.ok {
			q.a.result(1, 0)
			return
		}
		c.value, c.server = q.value, q.server
		r := c.req(mrIncr, q.server)
		r.gen, r.tokKey, r.a = q.gen, q.tokKey, q.a
		r.send()
	case mrIncr:
		q.a.result(0, q.n)
	case mrCas:
		switch q.res {
		case 0:
			q.done(history.OK)
		case 1:
			c.p.onLost("key gone from memcached" + strconv.Itoa(q.server+1) + ": expired, evicted or the server restarted")
			q.done(history.Fail)
		default:
			c.p.onLost("taken by another owner")
			q.done(history.Fail)
		}
	}
}

// failed is a refused or timed-out request.
func (q *mcReq) failed(rpcErr) {
	c := q.c
	switch q.kind {
	case mrAdd:
		// The candidate is dead: the next one, as a new request.
		if len(c.m.servers) > 1 {
			c.deadUntil[q.cands[q.k]] = c.p.n.now() + mcRetryDead
		}
		r := c.req(mrAdd, -1)
		r.gen, r.key, r.tokKey, r.nonce, r.a = q.gen, q.key, q.tokKey, q.nonce, q.a
		r.cands = append(r.candBuf[:0], q.cands...)
		r.k = q.k + 1
		r.next()
	case mrIncr:
		c.rewrite(-1, nop)
		q.a.result(2, 0)
	case mrCas:
		q.done(history.Info)
	}
}

// next sends an add to the candidate k, or fails the try when none is
// left.
func (q *mcReq) next() {
	if q.k >= len(q.cands) {
		q.a.result(2, 0)
		return
	}
	q.server = q.cands[q.k]
	q.send()
}

func nop(history.Type) {}

// mcAcquire is one Acquire: TryAcquire every PollInterval until it
// succeeds, errs or the wait timeout passes.
type mcAcquire struct {
	c         *mcClient
	gen       uint32
	deadline  int64
	done      func(bool, int64)
	attemptFn func()
}

func (c *mcClient) acquire(key string, done func(bool, int64)) {
	c.gen++
	c.key = key
	a := &mcAcquire{c: c, gen: c.gen, done: done}
	a.attemptFn = a.attempt
	if wt := c.m.r.opts.waitTimeout; wt > 0 {
		a.deadline = c.p.n.now() + wt
	}
	a.attempt()
}

func (a *mcAcquire) attempt() {
	if a.c.gen != a.gen {
		return
	}
	a.c.tryAcquire(a)
}

// result is a TryAcquire's: 0 acquired, 1 not acquired, 2 error.
func (a *mcAcquire) result(res int, tok int64) {
	c := a.c
	if c.gen != a.gen {
		return
	}
	switch res {
	case 0:
		a.done(true, tok)
		return
	case 2:
		a.done(false, 0)
		return
	}
	wait := c.m.r.opts.poll
	if a.deadline != 0 {
		left := a.deadline - c.p.n.now()
		if left <= 0 {
			a.done(false, 0)
			return
		}
		wait = min(wait, left)
	}
	c.p.n.after(wait, a.attemptFn)
}

// tryAcquire: add (failing over), then the token's incr on the same
// server.
func (c *mcClient) tryAcquire(a *mcAcquire) {
	c.nonce++
	q := c.req(mrAdd, -1)
	q.gen, q.key, q.tokKey, q.nonce, q.a = a.gen, c.key, c.tokenKey(c.key), c.nonce, a
	q.cands = append(q.candBuf[:0], c.candidates(c.key)...)
	q.next()
}

// tokenKey is locks/memcache.TokenKey(key), remembered.
func (c *mcClient) tokenKey(key string) string {
	if c.tokFor != key || c.tokKey == "" {
		c.tokFor, c.tokKey = key, lockMemcache.TokenKey(key)
	}
	return c.tokKey
}

// rewrite is gets + cas with expiry exp on the lock's server.
func (c *mcClient) rewrite(exp int64, done func(history.Type)) {
	if c.server < 0 {
		done(history.Fail)
		return
	}
	q := c.req(mrCas, c.server)
	q.key, q.value, q.exp, q.done = c.key, c.value, exp, done
	q.send()
}

func (c *mcClient) renew() { c.rewrite(c.m.exp, nop) }

func (c *mcClient) release(done func(history.Type)) {
	c.gen++
	c.rewrite(-1, done)
	c.server = -1
}
