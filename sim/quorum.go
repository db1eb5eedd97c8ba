package sim

import (
	"strconv"
	"time"
)

// quorum is the replicated state machine under the etcd and Consul models:
// N servers, one leader, a commit that needs a majority. The state itself
// is one logical copy owned by the model (what every member would agree
// on); quorum decides whether, when and through whom an operation reaches
// it.
//
// Simplifications, named: a request goes client → the server it is
// connected to → the leader → back the same way, each hop a simulated
// message; the leader commits a write when a majority of servers (itself
// included) is up, not paused and reachable both ways, after a commit delay
// (the disk sync); otherwise the request waits and the entry server answers
// with an error after requestTimeout. A read forwarded to a leader that is
// down is refused at once and tried again an election timeout later (a
// write's proposal is lost with the leader and waits for the timeout).
// There is no log and no replication lag: reads through the leader see
// every commit. Elections are not
// simulated message by message: an election timeout after any fault starts
// or ends, a leader that is down, paused or cut from a majority is replaced
// by the next server (in index order after it) that has a majority, and the
// model is told (onLeader) so it can do what a new leader does (etcd and
// Consul extend every lease or session TTL).
type quorum struct {
	r               *run
	servers         []*node
	leader          int // index in servers; -1: none
	term            int
	electionTimeout int64
	commitDelay     int64 // plus a uniform jitter of the same size
	requestTimeout  int64
	onLeader        func()

	// The requests waiting for an answer, in the order they came (so in
	// the order their timeouts come due): a list of the pending ones only,
	// each unlinked once answered, with one event armed for the first (as
	// a fifo of the world, but without a queue of answered ones).
	first, last *qreq
	armed       bool
	fireFn      func()

	// majority[i] is hasMajority(i) as of the world's topo majAt[i]-1.
	majority []bool
	majAt    []uint64
}

func newQuorum(r *run, prefix string, size int, election, commit, request time.Duration) *quorum {
	q := &quorum{
		r:               r,
		electionTimeout: int64(election),
		commitDelay:     int64(commit),
		requestTimeout:  int64(request),
	}
	q.fireFn = q.fire
	for i := 0; i < size; i++ {
		n := r.w.addNode(prefix + strconv.Itoa(i+1))
		q.servers = append(q.servers, n)
		r.servers = append(r.servers, n)
	}
	q.leader = 0
	q.majority, q.majAt = make([]bool, size), make([]uint64, size)
	return q
}

func (q *quorum) leaderNode() *node {
	if q.leader < 0 {
		return nil
	}
	return q.servers[q.leader]
}

func (q *quorum) healthy(i int) bool {
	n := q.servers[i]
	return !n.down && !n.paused
}

func (q *quorum) hasMajority(i int) bool {
	w := q.r.w
	if q.majAt[i] == w.topo+1 {
		return q.majority[i]
	}
	m := q.countMajority(i)
	q.majority[i], q.majAt[i] = m, w.topo+1
	return m
}

// countMajority is hasMajority worked out: i is up, not paused, and
// reaches a majority of the servers (itself included) both ways.
func (q *quorum) countMajority(i int) bool {
	if !q.healthy(i) {
		return false
	}
	votes := 0
	for j := range q.servers {
		if q.healthy(j) && q.r.w.reachable(q.servers[i], q.servers[j]) {
			votes++
		}
	}
	return votes > len(q.servers)/2
}

// faultChanged schedules an election check one election timeout later.
func (q *quorum) faultChanged() {
	q.r.w.at(q.r.w.now+q.electionTimeout, q.elect)
}

// elect keeps a leader that can still commit, or picks the next server
// that can.
func (q *quorum) elect() {
	if q.leader >= 0 && q.hasMajority(q.leader) {
		return
	}
	start := max(q.leader, 0)
	for k := 1; k <= len(q.servers); k++ {
		i := (start + k) % len(q.servers)
		if q.hasMajority(i) {
			q.leader = i
			q.term++
			if q.onLeader != nil {
				q.onLeader()
			}
			return
		}
	}
	q.leader = -1
}

// isLeader reports whether n is the leader in term.
func (q *quorum) isLeader(n *node, term int) bool {
	return q.leader >= 0 && q.servers[q.leader] == n && q.term == term
}

// do runs op on the leader for the call c (which arrived at server c.s):
// writes after the commit delay, reads at once. op returns the answer to
// run on the client. If the operation cannot reach a leader that can
// commit within requestTimeout, the entry server answers failed instead
// (the write may still happen later).
func (q *quorum) do(c *call, write bool, op func() func(), failed func()) {
	q.start(&qreq{q: q, c: c, write: write, op: op, failed: failed})
}

// start sends r (q, c, write, and op and failed or o set) on its way: the
// caller may embed the qreq in its own request object.
func (q *quorum) start(r *qreq) {
	if r.pre == nil && r.o != nil {
		r.pre, _ = r.o.(preApplier)
	}
	q.addTimeout(r)
	r.forward(r.c.s)
}

// addTimeout starts r's request timeout on its entry server.
func (q *quorum) addTimeout(r *qreq) {
	w := q.r.w
	at := w.now + q.requestTimeout
	if at > w.end {
		return
	}
	n := r.c.s
	r.tAt, r.tInc = at, n.inc
	r.tPrev, r.tNext, r.linked = q.last, nil, true
	if q.last != nil {
		q.last.tNext = r
	} else {
		q.first = r
	}
	q.last = r
	if !q.armed {
		q.arm()
	}
}

// unlink takes r off the list of pending requests.
func (q *quorum) unlink(r *qreq) {
	if !r.linked {
		return
	}
	r.linked = false
	if r.tPrev != nil {
		r.tPrev.tNext = r.tNext
	} else {
		q.first = r.tNext
	}
	if r.tNext != nil {
		r.tNext.tPrev = r.tPrev
	} else {
		q.last = r.tPrev
	}
	r.tPrev, r.tNext = nil, nil
}

// arm schedules the first pending request's timeout.
func (q *quorum) arm() {
	if q.first == nil {
		q.armed = false
		return
	}
	q.armed = true
	q.r.w.at(q.first.tAt, q.fireFn)
}

// fire expires the requests whose timeout came due: on their entry
// server, which a pause holds back and a crash cancels them with.
func (q *quorum) fire() {
	w := q.r.w
	for r := q.first; r != nil && r.tAt <= w.now; r = q.first {
		q.unlink(r)
		n := r.c.s
		switch {
		case n.inc != r.tInc || n.down:
		case n.paused:
			r.held = true
			n.deferred = append(n.deferred, event{at: w.now, n: nid(n), inc: r.tInc, fn: r.expire})
		default:
			r.expire()
		}
	}
	q.arm()
}

// qop is an operation that keeps its answer itself: apply runs on the
// leader and stores the answer, and the call's handler (a replier) gets
// replied, or failed(errServer) after the request timeout. No closures per
// request.
type qop interface {
	apply()
}

// preApplier is a qop with a check the leader makes when the request
// reaches it, before the commit delay (Consul's kvsPreApply): refused
// says the request is answered there, without a commit.
type preApplier interface {
	preApply() (refused bool)
}

// readServer is a qop whose read takes the leader a while to answer
// (etcd's lease renewal): serveTime is drawn per request.
type readServer interface {
	serveTime() int64
}

// qreq is one request on its way through the quorum. It moves as an
// event handler: stage says what handle does when it is delivered.
type qreq struct {
	q        *quorum
	c        *call
	write    bool
	op       func() func()
	failed   func()
	o        qop        // instead of op and failed
	pre      preApplier // o, if it has a pre-commit check (set by start, or with o)
	answered bool
	l        *node // the leader it was sent to
	term     int
	ans      func()
	stage    uint8
	from     *node // where a retry forwards from

	// The request timeout on the entry server (c.s, at its incarnation
	// tInc), while pending (linked).
	tAt          int64
	tInc         uint32
	linked       bool
	tPrev, tNext *qreq
	// held: its expire waits on the paused entry server, an event the
	// request's own way does not know about (its owner must not reuse it).
	held bool
}

// Stages of a qreq.
const (
	qArrive uint8 = iota // at the server it was sent to as leader
	qCommit              // the commit delay (or a read's serve time) on the leader is over
	qAnswer              // back at the entry server with the answer
	qRetry               // an election timeout later, forward again
)

func (r *qreq) handle() {
	switch r.stage {
	case qArrive:
		r.arrive()
	case qCommit:
		r.finish()
	case qAnswer:
		r.answer(true)
	case qRetry:
		r.forward(r.from)
	}
}

// expire is the entry server's request timeout.
func (r *qreq) expire() { r.answer(false) }

// answer sends the answer (ok) or the error back from the entry server.
func (r *qreq) answer(ok bool) {
	if r.answered {
		return
	}
	r.answered = true
	r.q.unlink(r)
	switch {
	case r.o == nil && ok:
		r.c.replyFrom(r.c.s, r.ans)
	case r.o == nil:
		r.c.replyFrom(r.c.s, r.failed)
	case ok:
		r.c.replyHFrom(r.c.s)
	default:
		r.c.failFrom(r.c.s)
	}
}

// after runs the next stage on n after d (n's clock).
func (r *qreq) after(n *node, d int64, stage uint8) {
	r.stage = stage
	w := r.q.r.w
	w.schedule(w.now+n.clk.real(d), n, nil, evHandler, r, nil)
}

// forward sends the request from a server to the leader, or waits an
// election timeout for one.
func (r *qreq) forward(from *node) {
	q := r.q
	if q.leader < 0 {
		r.from = from
		r.after(from, q.electionTimeout, qRetry)
		return
	}
	r.l = q.servers[q.leader]
	if r.l.down && !r.write {
		// A read's forward to a dead leader is refused at once; the
		// server tries again once a new leader may be there (etcd's
		// linearizable read fails with ErrLeaderChanged and the client
		// retries; a lease renewal retries every 50 ms). A write's
		// proposal is lost with the leader and waits for the request
		// timeout, as in etcd.
		r.from = from
		r.after(from, q.electionTimeout, qRetry)
		return
	}
	r.stage = qArrive
	q.r.w.sendEv(from, r.l, evHandler, r, nil)
}

// arrive runs on the server the request was sent to as leader.
func (r *qreq) arrive() {
	q, l := r.q, r.l
	r.term = q.term
	if !q.isLeader(l, r.term) || !q.hasMajority(q.leader) {
		r.from = l
		r.after(l, q.electionTimeout, qRetry)
		return
	}
	if r.write {
		if r.pre != nil && r.pre.preApply() {
			r.finish() // refused before the commit
			return
		}
		r.after(l, q.commitDelay+q.r.w.int64n(q.commitDelay), qCommit)
		return
	}
	if rs, ok := r.o.(readServer); ok {
		if d := rs.serveTime(); d > 0 {
			r.after(l, d, qCommit)
			return
		}
	}
	r.finish()
}

// finish applies the operation on the leader and sends the answer back
// through the entry server.
func (r *qreq) finish() {
	q, l := r.q, r.l
	if !q.isLeader(l, r.term) {
		r.forward(l)
		return
	}
	if r.o != nil {
		r.o.apply()
	} else {
		r.ans = r.op()
	}
	if l == r.c.s {
		r.answer(true)
		return
	}
	r.stage = qAnswer
	q.r.w.sendEv(l, r.c.s, evHandler, r, nil)
}
