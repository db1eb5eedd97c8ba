package sim

import (
	"math/bits"
	"math/rand/v2"
	"time"
)

// world is the simulated universe of one run: virtual time, the event
// queue, the one PRNG, the nodes and the links between them.
type world struct {
	now   int64 // virtual ns from the start of the run
	end   int64 // the run stops at this time
	seq   uint64
	q     evHeap
	pcg   *rand.PCG  // the run's one generator
	rng   *rand.Rand // on pcg, for 32-bit systems (see int64n)
	nodes []*node
	links [][]link // links[from][to]

	// The memory of nodes and links: nodes in chunks of 8, and the links
	// in one array with a row of linkCap for each node (addNode).
	nodeMem []node
	linkMem []link
	linkCap int

	// Link shape: one-way delays drawn from delays, or, if it is nil,
	// base + uniform [0, jitter).
	delays            *dist
	baseDelay, jitter int64

	// poll, if set, is called once every pollEvery events with the virtual
	// time reached (Config.Context, Config.Progress); when it returns true
	// the run stops early, and stopped says so.
	poll    func(now int64) (stop bool)
	stopped bool

	// topo counts the changes of who can talk to whom: a node paused,
	// resumed, crashed or restarted, a link cut or healed. What is worked
	// out from those alone (a quorum's majorities) is kept until it moves.
	topo uint64
}

// pollEvery is how many events run between two calls of world.poll: a
// call costs next to nothing that often, and a run of a long scenario
// stops within a millisecond or so.
const pollEvery = 1 << 12

// event is one entry of the queue. An event bound to a node (n != 0) runs
// only while that node is the incarnation it was scheduled for, and waits
// while the node is paused. Nodes are named by id+1 (0: none), and what
// the event runs is in h or fn as kind says: three pointer words, the
// fewer for the GC's write barrier to see when events are written.
type event struct {
	at int64
	// h is the handler of evHandler, the *call of the call kinds, and for
	// evFn a message's refusal (a fnHandler) or nil.
	h handler
	// fn is what evFn runs, and the answer evReply runs (nil: the call's
	// replier's replied).
	fn func()
	n  int32 // the node it runs on: id+1, 0 for none
	// A message (a request, or an evFn message with a refusal) whose
	// receiver n crashed is refused: the refusal runs on from (id+1) one
	// delay later.
	from int32
	inc  uint32
	kind uint8
	// timer: a timer of its node (after, afterTrue…), not a message: one
	// that comes due while the node is paused fires at the resume, late
	// by a draw of its own.
	timer bool
}

// nid is n's id in an event: id+1, 0 for none.
func nid(n *node) int32 {
	if n == nil {
		return 0
	}
	return int32(n.id) + 1
}

// handler is an object that moves through the world by itself, keeping
// its own stage (a request through a quorum): no closure per hop.
type handler interface{ handle() }

// fnHandler is a function kept in an event's h: an evFn message's refusal.
type fnHandler func()

func (f fnHandler) handle() { f() }

// handle makes a *call fit in an event's h; the event's kind says what to
// do with it.
func (r *call) handle() {}

// Event kinds (rc: the event's h, a *call).
const (
	evFn        uint8 = iota // run fn
	evRequest                // rc.serve() on the server
	evReply                  // fn (or rc.h's replied) on the client unless rc ended
	evRefused                // rc fails with errRefused, on the client
	evTimeout                // rc fails with errTimeout, on the client
	evHandler                // h.handle()
	evServerErr              // rc fails with errServer, on the client
	evReset                  // rc, ended by its link's reset, fails with errReset
)

// dispatch runs an event that is due, on a live and running node.
func (w *world) dispatch(e *event) {
	switch e.kind {
	case evFn:
		e.fn()
	case evRequest:
		e.h.(*call).serve()
	case evReply:
		if rc := e.h.(*call); !rc.done {
			rc.done = true
			rc.unpend()
			if e.fn != nil {
				e.fn()
			} else {
				rc.h.(replier).replied()
			}
		}
	case evRefused:
		e.h.(*call).fail(errRefused)
	case evTimeout:
		e.h.(*call).fail(errTimeout)
	case evServerErr:
		e.h.(*call).fail(errServer)
	case evReset:
		rc := e.h.(*call)
		if rp, ok := rc.h.(replayer); ok && rp.replayable() {
			rp.replay()
		} else {
			rc.failed(errReset)
		}
	case evHandler:
		e.h.handle()
	}
}

// refuse answers a message that reached a crashed node.
func (w *world) refuse(e *event) {
	from := w.nodes[e.from-1]
	switch {
	case e.kind == evRequest:
		w.schedule(w.now+w.linkDelay(), from, nil, evRefused, e.h, nil)
	case e.kind == evFn && e.h != nil:
		w.onNode(from, w.now+w.linkDelay(), e.h.(fnHandler))
	}
}

// push schedules (a copy of) e, giving it its sequence number; events
// after the end of the run are dropped: they would never run.
func (w *world) push(e *event) {
	if e.at > w.end {
		return
	}
	e.at = max(e.at, w.now)
	w.seq++
	idx := w.q.slot()
	w.q.slab[idx] = *e
	w.q.insert(mkKey(e.at, w.seq, idx), e.at-w.now < nearWindow)
}

// schedule is push of the event {at, n (at its incarnation now), from,
// kind, h, fn}, written in its slot in place.
func (w *world) schedule(at int64, n, from *node, kind uint8, h handler, fn func()) {
	w.scheduleAs(at, n, from, kind, h, fn, false)
}

// scheduleAs is schedule, marking the event a timer of n (event.timer).
func (w *world) scheduleAs(at int64, n, from *node, kind uint8, h handler, fn func(), timer bool) {
	if at > w.end {
		return
	}
	at = max(at, w.now)
	w.seq++
	idx := w.q.slot()
	e := &w.q.slab[idx]
	e.at, e.h, e.fn, e.from, e.kind, e.timer = at, h, fn, nid(from), kind, timer
	if n != nil {
		e.n, e.inc = int32(n.id)+1, n.inc
	} else {
		e.n, e.inc = 0, 0
	}
	w.q.insert(mkKey(at, w.seq, idx), at-w.now < nearWindow)
}

// nearWindow is how soon an event is due for the queue to keep it in its
// short sorted list rather than the heap (see evHeap).
const nearWindow = int64(5 * time.Millisecond)

// evHeap is a binary min-heap of events by (at, seq): ties run in the order
// they were scheduled, which keeps runs deterministic. The heap orders
// pointer-free keys; the events themselves sit in a slab with a free list,
// so sifting moves no pointers (and costs no GC write barriers). An event
// is written once, into its slot (world.schedule, or a copy by push), and
// runs from there (pop, then release once it has run); a freed slot is not
// cleared, it is overwritten by the next event.
//
// Most events are due soon (message hops, commits), few far out (timers):
// the keys of those due within nearWindow go to near, a short ring kept
// sorted, where they are pushed and popped without sifting (a new one is
// usually the latest), and pop takes the first of near's and the heap's.
// The order is the same (at, seq) order; near only saves the heap's work
// (and when it is full, a near key goes to the heap).
type evHeap struct {
	keys []evKey
	near *[nearCap]evKey // a ring of nn keys from nh on, sorted
	nh   uint32          // < nearCap
	nn   uint32
	slab []event
	free []int32 // free slots: free[:nfree]
	// nfree is how many of free are free slots: the slice is written only
	// when it grows (no slice header, with its pointer, written per event).
	nfree int
}

// nearCap is the size of evHeap.near: a power of two.
const nearCap = 128

// evKey is an event's place in the queue: its time, then its sequence
// number and slot packed in one word (seq in the high bits, so that
// comparing the words compares the sequence numbers, which are unique):
// 16 bytes to move instead of 24.
type evKey struct {
	at int64
	sq uint64 // seq<<slotBits | slot
}

// slotBits is how many bits of evKey.sq name the slot: the queue holds
// fewer events than that at once (slot panics otherwise), and a run has
// fewer than 1<<(64-slotBits) events.
const slotBits = 24

func mkKey(at int64, seq uint64, idx int32) evKey {
	return evKey{at: at, sq: seq<<slotBits | uint64(idx)}
}

func (k *evKey) idx() int32 { return int32(k.sq & (1<<slotBits - 1)) }

func (k *evKey) less(o *evKey) bool {
	return k.at < o.at || k.at == o.at && k.sq < o.sq
}

func (h *evHeap) len() int { return len(h.keys) + int(h.nn) }

// slot takes a free slot for an event to be written in.
func (h *evHeap) slot() int32 {
	if h.nfree > 0 {
		h.nfree--
		return h.free[h.nfree]
	}
	if len(h.slab) >= 1<<slotBits {
		panic("sim: too many events queued at once")
	}
	h.slab = append(h.slab, event{})
	return int32(len(h.slab) - 1)
}

// insert queues the key of an event written in its slot; near: it is due
// within nearWindow.
func (h *evHeap) insert(k evKey, near bool) {
	if near && h.nn < nearCap {
		r := h.near
		i := h.nh + h.nn
		for i != h.nh {
			p := &r[(i-1)&(nearCap-1)]
			if !k.less(p) {
				break
			}
			r[i&(nearCap-1)] = *p
			i--
		}
		r[i&(nearCap-1)] = k
		h.nn++
		return
	}
	h.keys = append(h.keys, k)
	s := h.keys
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !k.less(&s[p]) {
			break
		}
		s[i] = s[p]
		i = p
	}
	s[i] = k
}

// popHeap pops the heap's top, which comes first.
func (h *evHeap) popHeap() int32 {
	s := h.keys
	top := s[0]
	last := len(s) - 1
	k := s[last]
	s = s[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(s) {
			break
		}
		m := l
		if r := l + 1; r < len(s) && s[r].less(&s[l]) {
			m = r
		}
		if !s[m].less(&k) {
			break
		}
		s[i] = s[m]
		i = m
	}
	if len(s) > 0 {
		s[i] = k
	}
	h.keys = s
	return top.idx()
}

// release frees the slot of an event that has run.
func (h *evHeap) release(idx int32) {
	if h.nfree < len(h.free) {
		h.free[h.nfree] = idx
	} else {
		h.free = append(h.free, idx)
	}
	h.nfree++
}

// evHeaps keeps the queues' memory from one run to the next.
var evHeaps freeList[evHeap]

// reuseQueue registers with r the return of w's queue's memory to the
// pool when the run ends (newWorld took it from there, if it had one).
func (w *world) reuseQueue(r *run) {
	r.atEnd = append(r.atEnd, func() {
		clear(w.q.slab) // no pointers into this run kept
		evHeaps.put(&evHeap{keys: w.q.keys[:0], near: w.q.near, slab: w.q.slab[:0], free: w.q.free[:0]})
		w.q = evHeap{}
	})
}

func newWorld(seed uint64, end time.Duration) *world {
	pcg := rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)
	w := &world{
		end:    int64(end),
		pcg:    pcg,
		rng:    rand.New(pcg),
		delays: linkDelay,
	}
	if h := evHeaps.get(); h != nil {
		w.q = *h // an earlier run's queue memory (see reuseQueue)
	} else {
		w.q.near = new([nearCap]evKey)
	}
	return w
}

// at schedules fn at virtual time t, bound to no node.
func (w *world) at(t int64, fn func()) {
	w.schedule(t, nil, nil, evFn, nil, fn)
}

// onNode schedules fn at virtual time t on node n.
func (w *world) onNode(n *node, t int64, fn func()) {
	w.schedule(t, n, nil, evFn, nil, fn)
}

// run executes events until the queue is empty or the end of the run.
func (w *world) run() {
	w.runTo(w.end)
	w.now = max(w.now, min(w.end, w.now))
}

// runUntil runs the events due up to virtual time t, leaving the later
// ones queued, and sets the time to t: for tests that drive a model step
// by step (the behaviour cases).
func (w *world) runUntil(t int64) {
	w.runTo(t)
	w.now = max(w.now, t)
}

// runTo executes the events due up to limit (the end of the run, or a
// test's step), until the queue is empty or the poll says stop. The pop
// (popDue) and the dispatch of the common kinds are written out: this
// loop runs every event.
func (w *world) runTo(limit int64) {
	q := &w.q
	for steps := pollEvery; ; {
		if steps--; steps == 0 {
			steps = pollEvery
			if w.poll != nil && w.poll(w.now) {
				w.stopped = true
				return
			}
		}
		var idx int32
		if k := &q.near[q.nh&(nearCap-1)]; q.nn > 0 && (len(q.keys) == 0 || k.less(&q.keys[0])) {
			if k.at > limit {
				return // left queued: runUntil may go on from here
			}
			idx = k.idx()
			q.nh = (q.nh + 1) & (nearCap - 1)
			q.nn--
		} else {
			if len(q.keys) == 0 || q.keys[0].at > limit {
				return // empty, or left queued
			}
			idx = q.popHeap()
		}
		// e stays valid while it runs: its slot is not reused before the
		// release, and if the slab grows, e still reads the old copy.
		e := &q.slab[idx]
		w.now = e.at
		if e.n != 0 {
			n := w.nodes[e.n-1]
			if n.inc != e.inc || n.down {
				if e.from != 0 {
					w.refuse(e)
				}
				q.release(idx)
				continue
			}
			if n.paused {
				n.deferred = append(n.deferred, *e)
				q.release(idx)
				continue
			}
		}
		switch e.kind {
		case evHandler:
			e.h.handle()
		case evRequest:
			e.h.(*call).serve()
		default:
			w.dispatch(e)
		}
		q.release(idx)
	}
}

// int64n is a uniform draw in [0, n); 0 when n <= 0.
func (w *world) int64n(n int64) int64 {
	if n <= 0 {
		return 0
	}
	if is32bit {
		return w.rng.Int64N(n)
	}
	return int64(w.uint64n(uint64(n)))
}

const is32bit = ^uint(0)>>32 == 0

// uint64n is rand.Rand's Int64N for n > 0 on 64-bit systems, called on the
// PCG directly rather than through the Source interface: the same draws,
// the same values.
func (w *world) uint64n(n uint64) uint64 {
	if n&(n-1) == 0 {
		return w.pcg.Uint64() & (n - 1)
	}
	hi, lo := bits.Mul64(w.pcg.Uint64(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(w.pcg.Uint64(), n)
		}
	}
	return hi
}

// float64 is rand.Rand's Float64: a uniform draw in [0, 1).
func (w *world) float64() float64 {
	return float64(w.pcg.Uint64()<<11>>11) / (1 << 53)
}

// clock is a node's clock: piecewise linear in virtual time. Its reading
// at virtual time t is base + (t - t0) * rate.
type clock struct {
	base int64
	t0   int64
	rate float64 // 1 + drift
}

func (c *clock) read(t int64) int64 {
	if c.rate == 1 {
		return c.base + (t - c.t0)
	}
	return c.base + int64(float64(t-c.t0)*c.rate)
}

// setDrift changes the rate from t on (drift 0.1: 10% fast).
func (c *clock) setDrift(t int64, drift float64) {
	c.base, c.t0, c.rate = c.read(t), t, 1+drift
}

// step jumps the reading by off at t.
func (c *clock) step(t int64, off int64) {
	c.base, c.t0 = c.read(t)+off, t
}

// real converts a duration measured on this clock into virtual time.
func (c *clock) real(d int64) int64 {
	if c.rate == 1 || c.rate <= 0 {
		return d
	}
	return int64(float64(d) / c.rate)
}

// node is one simulated process: a server, a client or the resource.
type node struct {
	w      *world
	id     int
	name   string
	clk    clock
	paused bool
	down   bool
	inc    uint32 // incarnation: bumped by a crash
	// deferred holds the events that came due while the node was paused.
	deferred []event
	// slow and slowJitter are the latency toxic a slow fault put on every
	// proxied link of this node (see slowDelay).
	slow, slowJitter int64
	// direct: reached without a proxy (the resource), so a slow fault
	// does not touch its messages.
	direct bool
	// resets: a server whose clients' connections are reset when a cut
	// of their link heals, as faults.Network resets a healed link's
	// proxy (see world.resetLink): what a client sent into the cut, or
	// the server answered into it, was dropped, and the client's calls
	// still pending across the link fail when it heals. The calls to it
	// are kept on their client's pending list (pend) meanwhile.
	resets bool
	// pend is the first of this client's pending calls to servers that
	// reset (call.pNext links the others).
	pend *call
	// onCrash and onRestart let a model drop or rebuild its state.
	onCrash, onRestart func()
	// startup, if set, draws how long a restarted server takes until it
	// answers; starting is set meanwhile.
	startup  func() int64
	starting bool
	// timeouts holds the calls' timeouts from this node, one fifo per
	// timeout duration (see world.start).
	timeouts []*fifo
	// late, if set, is the distribution of this node's timer lateness.
	late *dist
}

func (w *world) addNode(name string) *node {
	if len(w.nodeMem) == cap(w.nodeMem) {
		w.nodeMem = make([]node, 0, 8)
	}
	w.nodeMem = w.nodeMem[:len(w.nodeMem)+1]
	n := &w.nodeMem[len(w.nodeMem)-1]
	*n = node{w: w, id: len(w.nodes), name: name, clk: clock{rate: 1}}
	w.nodes = append(w.nodes, n)
	k := len(w.nodes)
	if k > w.linkCap {
		// Room for twice as many nodes: the links in one array, a row of
		// linkCap for each node, the rows' links copied over.
		c := max(8, 2*w.linkCap)
		mem := make([]link, c*c)
		rows := make([][]link, len(w.links), c)
		for i, row := range w.links {
			rows[i] = mem[i*c : i*c+copy(mem[i*c:], row) : i*c+c]
		}
		w.links, w.linkMem, w.linkCap = rows, mem, c
	}
	// Every row one longer (the new link is zero: never used), and the
	// new node's row.
	c := w.linkCap
	for i := range w.links {
		w.links[i] = w.links[i][:k]
	}
	w.links = append(w.links, w.linkMem[(k-1)*c:(k-1)*c+k:(k-1)*c+c])
	return n
}

// now is the node's clock reading.
func (n *node) now() int64 { return n.clk.read(n.w.now) }

// after runs fn once d has passed on the node's clock (and the node's
// timer lateness).
func (n *node) after(d int64, fn func()) {
	n.w.scheduleAs(n.w.now+n.clk.real(d)+n.lateness(), n, nil, evFn, nil, fn, true)
}

// afterH is after with a handler object instead of a closure.
func (n *node) afterH(d int64, h handler) {
	n.w.scheduleAs(n.w.now+n.clk.real(d)+n.lateness(), n, nil, evHandler, h, nil, true)
}

// lateness is how late a timer of this node fires: a draw from
// timerLateness on client processes, nothing on servers.
func (n *node) lateness() int64 {
	if n.late == nil {
		return 0
	}
	return n.late.draw(n.w)
}

// afterTrue runs fn once d of true time has passed, whatever the node's
// clock says: for timers a process keeps outside the locks.Clock it was
// given (the Go runtime's own, as in the etcd client), which a clock fault
// does not reach. A pause still holds them back.
func (n *node) afterTrue(d int64, fn func()) {
	n.w.scheduleAs(n.w.now+d+n.lateness(), n, nil, evFn, nil, fn, true)
}

// afterTrueH is afterTrue with a handler object instead of a closure.
func (n *node) afterTrueH(d int64, h handler) {
	n.w.scheduleAs(n.w.now+d+n.lateness(), n, nil, evHandler, h, nil, true)
}

// pause stops the node: nothing it would do runs until resume.
func (n *node) pause() {
	n.paused = true
	n.w.topo++
}

// stopper is a timer's handler that can tell its timer was stopped: its
// owner moved on (a new generation, a request that ended), so that firing
// it would do nothing. A real process stops such a timer (a context's
// cancel, Timer.Stop) and it is not in the runtime's heap at a wake; the
// simulator leaves it to fire as a no-op, so resume must not count it
// when it orders the overdue timers.
type stopper interface{ stopped() bool }

// live reports whether the event is a timer that would still do something.
func (e *event) live() bool {
	s, ok := e.h.(stopper)
	return !ok || !s.stopped()
}

// resume runs what came due during the pause, as a Go process woken by
// SIGCONT does (measured: behaviour.ProcessCases, and wakeLateness): the
// messages that arrived meanwhile run together, in the order they came,
// one draw of wakeLateness after the signal; the overdue timers fire
// together too, in one pass of the runtime's timer check, another draw
// after it: the one that came due last first (its goroutine takes the
// processor's next slot; in a share 1-wakeLastFirst of wakes another one,
// at random), the others in the order they came due, each wakeTimerGap
// after the one before. A timer that is stopped (a stopper) does not take
// the first slot. So overdue timers fire within tens of microseconds of
// each other, not each late by a lateness of its own:
// a paused holder's hold timer and its renewal fire together, and its
// write goes out before its renewal's answer can come back. Whether the
// messages or the timers run first is a race, as it is for a real client
// (its reader goroutine runs first in 69 % of measured wakes, but a lock
// client's reply still goes through its library's goroutines before the
// lock notices it). (Until 2026-12-02 each overdue timer fired late by a
// draw of its own: holder-paused-past-lease-unfenced showed damage in
// 48-50 % of seeds on PostgreSQL and memcached against 5 of 5 real runs.)
// A server's events all run at the resume, in the order they came due:
// its timers are exact.
func (n *node) resume() {
	if !n.paused {
		return
	}
	n.paused = false
	n.w.topo++
	d := n.deferred
	n.deferred = nil
	if n.late == nil {
		for i := range d {
			d[i].at = n.w.now
			n.w.push(&d[i])
		}
		return
	}
	if len(d) == 0 {
		return
	}
	reads := n.w.now + wakeLateness.draw(n.w)
	last := -1     // the last-due live timer (a stopped one, if none is)
	var live []int // the live timers, in due order
	for i := range d {
		if !d[i].timer {
			d[i].at = reads
			n.w.push(&d[i])
		} else if d[i].live() {
			live = append(live, i)
			last = i
		} else if len(live) == 0 {
			last = i
		}
	}
	if last < 0 {
		return
	}
	if n.w.float64() >= wakeLastFirst && len(live) > 0 { // another timer's goroutine runs first
		last = live[n.w.int64n(int64(len(live)))]
	}
	at := n.w.now + wakeLateness.draw(n.w)
	d[last].at = at
	n.w.push(&d[last])
	for i := range d {
		if d[i].timer && i != last {
			at += wakeTimerGap.draw(n.w)
			d[i].at = at
			n.w.push(&d[i])
		}
	}
}

// crash kills the node: its timers and in-flight messages are dropped.
func (n *node) crash() {
	if n.down {
		if n.starting { // killed again while it starts: no start
			n.starting = false
			n.inc++
		}
		return
	}
	n.down = true
	n.paused = false
	n.w.topo++
	n.deferred = nil
	n.inc++
	for n.pend != nil { // its calls die with it: none of them ends now
		n.pend.unpend()
	}
	if n.onCrash != nil {
		n.onCrash()
	}
}

// restart brings a crashed node back as a new incarnation: at once, or,
// for a server whose model gives it a startup time, once that has passed
// (it refuses connections until then, as a real server does while it
// starts). A crash during the startup cancels it.
func (n *node) restart() {
	if !n.down || n.starting {
		return
	}
	if n.startup != nil {
		n.starting = true
		inc := n.inc
		n.w.at(n.w.now+n.startup(), func() {
			if n.starting && n.inc == inc {
				n.starting = false
				n.up()
			}
		})
		return
	}
	n.up()
}

// up is the end of a restart: the node answers again.
func (n *node) up() {
	n.down = false
	n.w.topo++
	n.inc++
	if n.onRestart != nil {
		n.onRestart()
	}
}

// link is the state of messages from one node to another.
type link struct {
	blocked int         // active partitions cutting this direction
	held    []heldEvent // messages sent while blocked, delivered at heal
	last    int64       // the latest delivery time scheduled (TCP order)
	loss    float64     // chance that a message needs a retransmission
}

// heldEvent is a message sent on a cut link: sendEv's arguments, sent
// again at the heal (or dropped, a call's on a link that resets).
type heldEvent struct {
	from, to *node
	kind     uint8
	h        handler
	fn       func()
}

// rto is the extra delay of a lost packet: TCP's minimum retransmission
// timeout.
const rto = int64(200 * time.Millisecond)

// sendEv delivers the event {kind, h, fn} from → to after the link's
// delay, to run on to at its incarnation when it arrives. Every message
// comes through here: the common case (an open link between two nodes,
// the measured delay, no slow fault, no loss) is written out without a
// call but the queue's insert, so that nothing is spilled for the rare
// ones, which sendEvAll does.
func (w *world) sendEv(from, to *node, kind uint8, h handler, fn func()) {
	l := &w.linkMem[from.id*w.linkCap+to.id] // w.links[from.id][to.id]
	dl := w.delays
	if from == to || l.blocked > 0 || dl == nil || l.loss > 0 || from.slow|from.slowJitter|to.slow|to.slowJitter != 0 {
		w.sendEvAll(from, to, kind, h, fn)
		return
	}
	// dist.draw, written out.
	r := w.pcg.Uint64()
	i := (r >> 32) * distBins >> 32
	lo, hi := int64(dl.tab[i]), int64(dl.tab[i+1])
	d := lo + (hi-lo)*int64(r&(1<<32-1))>>32
	t := max(w.now+d, l.last, w.now)
	l.last = t
	// schedule(t, to, from, kind, h, fn), written out.
	if t > w.end {
		return
	}
	w.seq++
	idx := w.q.slot()
	e := &w.q.slab[idx]
	e.at, e.h, e.fn, e.kind, e.timer = t, h, fn, kind, false
	e.n, e.inc, e.from = int32(to.id)+1, to.inc, int32(from.id)+1
	// insert, its common case written out: a near key not before the
	// last near one (a tie is later: its seq is the greatest so far).
	// With no near key the slot read is a stale one, whatever it holds:
	// k goes after it, or insert puts it first.
	k := mkKey(t, w.seq, idx)
	q := &w.q
	if n, r := q.nh+q.nn, q.near; t-w.now < nearWindow && q.nn < nearCap && r[(n-1)&(nearCap-1)].at <= t {
		r[n&(nearCap-1)] = k
		q.nn++
		return
	}
	q.insert(k, t-w.now < nearWindow)
}

// sendEvAll is sendEv for every case: to itself, a cut link, a slow
// fault, a lossy link, an unmeasured delay.
func (w *world) sendEvAll(from, to *node, kind uint8, h handler, fn func()) {
	if from == to {
		w.schedule(w.now, to, from, kind, h, fn)
		return
	}
	l := &w.links[from.id][to.id]
	if l.blocked > 0 {
		l.held = append(l.held, heldEvent{from, to, kind, h, fn})
		return
	}
	d := w.linkDelay() + w.slowDelay(from, to)
	if l.loss > 0 && w.float64() < l.loss {
		d += rto
	}
	t := max(w.now+d, l.last, w.now)
	l.last = t
	w.schedule(t, to, from, kind, h, fn)
}

// linkDelay is one message's one-way delay on an unshaped link: a draw
// from the measured delay, or base plus a uniform jitter when the run's
// Config.Net set them.
// slowDelay is the extra delay of a message from from to to that a slow
// fault adds, as real runs add it (faults.Network.Slow): a toxiproxy
// latency toxic on each proxied link that touches a slowed node — once per
// message, however many of the link's ends the fault named — of latency
// plus a uniform draw in [-jitter, jitter), as toxiproxy's latency toxic
// draws it, and never below nothing. The resource, which clients reach
// without a proxy, is not slowed.
func (w *world) slowDelay(from, to *node) int64 {
	if from.direct || to.direct {
		return 0
	}
	lat, jit := from.slow, from.slowJitter
	if to.slow > lat || (to.slow == lat && to.slowJitter > jit) {
		lat, jit = to.slow, to.slowJitter
	}
	if jit > 0 {
		lat += w.int64n(2*jit) - jit
	}
	return max(lat, 0)
}

func (w *world) linkDelay() int64 {
	if w.delays != nil {
		return w.delays.draw(w)
	}
	return w.baseDelay + w.int64n(w.jitter)
}

// block cuts the direction from → to (one more partition on it).
func (w *world) block(from, to *node) {
	if from != to {
		w.links[from.id][to.id].blocked++
		w.topo++
	}
}

// unblock removes one partition from from → to, delivering held messages
// once none is left. When neither direction is cut any more and one end
// is a server that resets, the link is reset (resetLink).
func (w *world) unblock(from, to *node) {
	if from == to {
		return
	}
	l := &w.links[from.id][to.id]
	if l.blocked == 0 {
		return
	}
	l.blocked--
	w.topo++
	if l.blocked == 0 {
		w.healed(from, to)
	}
}

// healAll removes every partition.
func (w *world) healAll() {
	for i := range w.links {
		for j := range w.links[i] {
			l := &w.links[i][j]
			if l.blocked > 0 {
				l.blocked = 0
				w.topo++
				w.healed(w.nodes[i], w.nodes[j])
			}
		}
	}
}

// healed is the end of the last cut of from → to: its held messages are
// sent, unless the pair's link resets, which drops the calls' messages
// held either way and fails the calls pending across it — once the other
// direction is whole too (a link is one proxy for both directions).
func (w *world) healed(from, to *node) {
	client, server := from, to
	if from.resets {
		client, server = to, from
	}
	if !server.resets || client.resets {
		w.flush(&w.links[from.id][to.id], false)
		return
	}
	if w.links[to.id][from.id].blocked > 0 {
		return // still cut the other way: reset when that heals
	}
	w.flush(&w.links[from.id][to.id], true)
	w.flush(&w.links[to.id][from.id], true)
	w.resetLink(client, server)
}

// flush sends the messages held on l; reset drops the calls' (requests
// and answers), which were lost in the cut.
func (w *world) flush(l *link, reset bool) {
	held := l.held
	l.held = nil
	for _, m := range held {
		if reset && m.kind != evFn && m.kind != evHandler {
			continue
		}
		w.sendEv(m.from, m.to, m.kind, m.h, m.fn)
	}
}

// resetLink is the reset of client's link to server at its heal: every
// call of client's to server still pending fails on the client one
// network delay later, as the client reads the closed connection (or is
// sent again then, if its handler is a replayer that says so); an answer
// that comes after the reset is dropped (the call is over at once).
func (w *world) resetLink(client, server *node) {
	for r := client.pend; r != nil; {
		next := r.pNext
		if r.s == server && !r.done {
			r.done = true
			r.unpend()
			w.schedule(w.now+w.linkDelay(), client, nil, evReset, r, nil)
		}
		r = next
	}
}

// reachable reports whether a and b can talk both ways right now.
func (w *world) reachable(a, b *node) bool {
	if a == b {
		return true
	}
	return w.links[a.id][b.id].blocked == 0 && w.links[b.id][a.id].blocked == 0
}

// rpcErr says why a call ended without an answer.
type rpcErr int

const (
	errTimeout rpcErr = iota + 1 // the client's own timeout passed
	errRefused                   // the server is down (the connection refused, or reset by its crash)
	errServer                    // the server answered with an error (see call.failFrom)
	errReset                     // the connection was reset at its link's heal (world.resetLink): a handler that does not tell it from errRefused takes it as one
)

// call is one request from a client node to a server node. The server's
// handler answers with reply; the client's callbacks run at most once.
type call struct {
	w    *world
	c, s *node
	done bool
	h    rpcHandler // or the two functions:
	sf   func(*call)
	ff   func(rpcErr)
	// pPrev and pNext link the call on its client's pending list (node.pend)
	// while a call to a server that resets is pending; pended says it is.
	pPrev, pNext *call
	pended       bool
}

// pend puts r on its client's pending list.
func (r *call) pend() {
	c := r.c
	r.pPrev, r.pNext, r.pended = nil, c.pend, true
	if c.pend != nil {
		c.pend.pPrev = r
	}
	c.pend = r
}

// unpend takes r off its client's pending list, if it is on it.
func (r *call) unpend() {
	if !r.pended {
		return
	}
	r.pended = false
	if r.pPrev != nil {
		r.pPrev.pNext = r.pNext
	} else {
		r.c.pend = r.pNext
	}
	if r.pNext != nil {
		r.pNext.pPrev = r.pPrev
	}
	r.pPrev, r.pNext = nil, nil
}

// replayer is an rpcHandler whose request a client library sends again
// on a fresh connection when its link is reset (world.resetLink), if it
// is replayable, instead of failing it.
type replayer interface {
	replayable() bool
	replay()
}

// rpcHandler is a call's two ends: serve on the server, failed on the
// client.
type rpcHandler interface {
	serve(*call)
	failed(rpcErr)
}

// replier is an rpcHandler that keeps its answer itself: a reply without a
// function (call.replyH) runs its replied on the client. No closure per
// answer.
type replier interface {
	replied()
}

func (r *call) serve() {
	if r.h != nil {
		r.h.serve(r)
		return
	}
	r.sf(r)
}

// rpc sends a request from c to s: serve runs on s and answers (or not)
// with call.reply. failed runs on c if s is down, or if timeout > 0 passes
// on c's clock first. A call without a timeout waits as long as it takes,
// as a client library without a deadline does.
func (w *world) rpc(c, s *node, timeout int64, serve func(r *call), failed func(rpcErr)) {
	w.start(&call{w: w, c: c, s: s, sf: serve, ff: failed}, timeout)
}

// start sends the call r, whose w, c, s and h (or sf and ff) are set: a
// caller may embed the call in its own request object (one allocation per
// request instead of several).
func (w *world) start(r *call, timeout int64) {
	c, s := r.c, r.s
	if s.resets {
		r.pend()
	}
	w.sendEv(c, s, evRequest, r, nil)
	if timeout > 0 {
		w.timeout(r, timeout)
	}
}

// startTrue is start with the timeout on true time instead of the
// client's clock: a socket deadline of a client library, which a clock
// fault on the client's locks.Clock does not reach.
func (w *world) startTrue(r *call, timeout int64) {
	if r.s.resets {
		r.pend()
	}
	w.sendEv(r.c, r.s, evRequest, r, nil)
	if timeout > 0 {
		w.timeoutAt(r, timeout, w.now+timeout)
	}
}

// timeout arms r's timeout on its client. Nearly every call is answered
// long before its timeout, so rather than an event each, a node keeps a
// fifo per timeout duration (its timeouts come due in the order they were
// set while its clock's rate holds), which skips the answered ones. A
// timeout that would come due before one set earlier (the clock's rate
// went up) is an event of its own.
func (w *world) timeout(r *call, timeout int64) {
	w.timeoutAt(r, timeout, w.now+r.c.clk.real(timeout))
}

// timeoutAt arms r's timeout of duration timeout to fire at virtual time
// at.
func (w *world) timeoutAt(r *call, timeout, at int64) {
	c := r.c
	var f *fifo
	for _, t := range c.timeouts {
		if t.d == timeout {
			f = t
			break
		}
	}
	if f == nil {
		f = w.newFIFO(time.Duration(timeout))
		c.timeouts = append(c.timeouts, f)
	}
	if !f.addAt(at, r) {
		w.schedule(at, c, nil, evTimeout, r, nil)
	}
}

// expire and pending make a call's timeout a fifo timer.
func (r *call) expire()       { r.fail(errTimeout) }
func (r *call) pending() bool { return !r.done }

func (r *call) fail(e rpcErr) {
	if r.done {
		return
	}
	r.done = true
	r.unpend()
	r.failed(e)
}

// failed runs r's failure on its client.
func (r *call) failed(e rpcErr) {
	switch {
	case r.h != nil:
		r.h.failed(e)
	case r.ff != nil:
		r.ff(e)
	}
}

// reply sends the answer fn back from the server to the client, where it
// runs unless the call already ended.
func (r *call) reply(fn func()) {
	r.w.sendEv(r.s, r.c, evReply, r, fn)
}

// replyH is reply for a call whose handler is a replier: its replied runs
// on the client.
func (r *call) replyH() {
	r.w.sendEv(r.s, r.c, evReply, r, nil)
}

// replyHFrom is replyH sent by another server than the one called.
func (r *call) replyHFrom(from *node) {
	r.w.sendEv(from, r.c, evReply, r, nil)
}

// failFrom answers the call with an error from the server from: the
// handler's failed runs on the client with errServer.
func (r *call) failFrom(from *node) {
	r.w.sendEv(from, r.c, evServerErr, r, nil)
}

// replyFrom is reply sent by another server than the one called (a
// forwarded request answered by the node the client is connected to).
func (r *call) replyFrom(from *node, fn func()) {
	r.w.sendEv(from, r.c, evReply, r, fn)
}

// fifo is a set of timers that all run the same duration after they are
// set, so they come due in the order they were set: one queue and one
// event in the heap instead of one event each. It measures virtual time
// (the node's drift does not stretch it); a timer that comes due while its
// node is paused waits for the resume, and a crash cancels it.
//
// A timer whose expire would do nothing any more (its request was
// answered: pending is false) is dropped without an event: the fifo arms
// only for the first pending timer, and makes room by dropping the others
// before it grows. Request timeouts are long and requests are answered
// quickly, so the queue stays short and seldom fires.
type fifo struct {
	w      *world
	d      int64
	q      []fifoTimer
	head   int
	armed  bool
	fireFn func()
}

// fifoTimer is a call's timeout, to run on its client r.c at the
// incarnation inc. The call itself rather than an interface: one pointer
// word to write, and pending and expire called directly.
type fifoTimer struct {
	at  int64
	r   *call
	inc uint32
}

func (w *world) newFIFO(d time.Duration) *fifo {
	f := &fifo{w: w, d: int64(d)}
	f.fireFn = f.fire
	return f
}

// addAt runs r.expire on its client at virtual time at, if that is not
// before the last timer's: it reports whether the fifo took it.
func (f *fifo) addAt(at int64, r *call) bool {
	if f.head < len(f.q) && at < f.q[len(f.q)-1].at {
		return false
	}
	if at > f.w.end {
		return true
	}
	if len(f.q) == cap(f.q) {
		f.drop()
	}
	f.q = append(f.q, fifoTimer{at: at, r: r, inc: r.c.inc})
	if !f.armed {
		f.arm()
	}
	return true
}

// drop removes the timers that are no longer pending, moving the rest to
// the front. An event armed for a dropped timer finds nothing due and arms
// for the next.
func (f *fifo) drop() {
	n := 0
	for _, t := range f.q[f.head:] {
		if t.r.pending() {
			f.q[n] = t
			n++
		}
	}
	// What is left after the n is not read again (append writes it
	// over): only its call is cleared, for the GC, without clear's call
	// (a fifo is mostly one or two timers, and drops at every add).
	for i := n; i < len(f.q); i++ {
		f.q[i].r = nil
	}
	f.q, f.head = f.q[:n], 0
}

func (f *fifo) arm() {
	for f.head < len(f.q) && !f.q[f.head].r.pending() {
		f.q[f.head] = fifoTimer{}
		f.head++
	}
	if f.head >= len(f.q) {
		f.q, f.head, f.armed = f.q[:0], 0, false
		return
	}
	f.armed = true
	f.w.at(f.q[f.head].at, f.fireFn)
}

func (f *fifo) fire() {
	for f.head < len(f.q) && f.q[f.head].at <= f.w.now {
		t := f.q[f.head]
		f.q[f.head] = fifoTimer{}
		f.head++
		n := t.r.c
		switch {
		case n.inc != t.inc || n.down || !t.r.pending():
		case n.paused:
			n.deferred = append(n.deferred, event{at: f.w.now, n: nid(n), inc: t.inc, fn: t.r.expire})
		default:
			t.r.expire()
		}
	}
	if f.head > 64 && f.head*2 > len(f.q) {
		n := copy(f.q, f.q[f.head:])
		clear(f.q[n:])
		f.q, f.head = f.q[:n], 0
	}
	f.arm()
}
