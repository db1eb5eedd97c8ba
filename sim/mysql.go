package sim

import (
	"maps"
	"slices"
	"time"

	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/locks"
	lm "github.com/locksim/locksim/locks/machine"
	lockMySQL "github.com/locksim/locksim/locks/mysql"
	mym "github.com/locksim/locksim/locks/mysql/machine"
)

// mysql models one MariaDB 10.11 server under locks/mysql (backend
// "mysql", seed 004's GET_LOCK), as harness/ deploys it: every client
// reaches the server through a toxiproxy link of its own (package faults),
// and the server keeps its defaults (wait_timeout 28800 s).
//
// The server:
//   - Named locks belong to connections. GET_LOCK(name, wait) grants the
//     lock when it is free (or already the connection's), else the
//     connection waits on the server, in arrival order, until the holder
//     lets go or wait seconds pass on the server's clock (answer 0).
//     IS_USED_LOCK answers the holding connection's id, RELEASE_LOCK 1
//     (ours), 0 (another's) or NULL (nobody's).
//   - A connection's locks go when the server sees it end: the client
//     closing its socket (a hang-up: the FIN reaches the client's proxy,
//     cut or not, and the proxy closes the server's side, one network
//     delay later), the link's reset at the heal of a cut, wait_timeout
//     seconds without a statement (a server-side timer: through a cut
//     too), a KILL (destroySession), or a server crash or restart (every
//     connection and lock). While a link is cut nothing else ends a
//     connection: the server's TCP peer is the proxy, whose kernel
//     answers keepalives, and an idle connection waits for its next
//     command for wait_timeout.
//   - The token counter rows are InnoDB: durable across restarts.
//
// The client is locks/mysql's machine (package locks/mysql/machine),
// driven here by myClient with the configuration real runs use
// (lockMySQL.RunConfig): a connection opened for each lease, GET_LOCK on
// it, the token on it, renewals IS_USED_LOCK on it bounded as locks.Run
// bounds them (renew_every on the client's clock, and the statement
// timeout on true time); a statement that times out is go-sql-driver
// closing the connection: a hang-up, so the server frees the lock one
// network delay after the holder learns of the loss. Pooled (lock.connection:
// pooled) runs every statement on a connection of its own that the client
// closes as soon as it has the answer (database/sql with no idle
// connections): a pooled GET_LOCK's lock goes one network delay after the
// grant.
//
// Links: as in the postgres model, a statement sent into a cut link is
// lost, and when the cut heals the link is reset: the server closes the
// client's connections, and every statement in flight fails on the
// client.
//
// Held to the real server by the behaviour cases in sim/behaviour
// (MySQLCases; TestMySQLModel here, TestMySQLReal there): one holder at a
// time and increasing tokens; a killed client; a paused client; a cut
// holder kept for the cut and freed at the heal; a cut holder's renewal
// timing out frees the lock at once (unlike pgx's 15 s); a client killed
// while cut; a restart; wait_timeout through a cut.
//
// Simplified: a pooled statement's connect is folded into its round
// trip; a connection given back to the pool after a release is
// forgotten (it holds nothing).
type mysql struct {
	r *run
	n *node

	holders map[string]*myConn
	queues  map[string][]*myWaiter
	tokens  map[string]int64
	conns   []*myConn
	nextID  int64
	// waitTimeout is the server's wait_timeout for connections opened
	// from now on.
	waitTimeout int64
	clients     []*myClient
	cfg         lockMySQL.Config
	calls       *arena[myCall]
	waiters     *arena[myWaiter]
}

var (
	myCalls   arenaPool[myCall]
	myWaiters arenaPool[myWaiter]
)

// mysqlWaitTimeout is MariaDB's default wait_timeout.
const mysqlWaitTimeout = int64(28800 * time.Second)

type myConn struct {
	id          int64
	alive       bool
	owner       *myClient
	keys        []string
	waitTimeout int64
	active      int64 // when its last statement ran
}

// myWaiter is a GET_LOCK waiting on the server; q gets its answer.
type myWaiter struct {
	m    *mysql
	conn *myConn
	key  string
	done bool
	q    *myCall
}

func newMySQL(r *run) *mysql {
	m := &mysql{
		r: r, holders: make(map[string]*myConn), queues: make(map[string][]*myWaiter),
		tokens: make(map[string]int64), waitTimeout: mysqlWaitTimeout,
		cfg:   lockMySQL.RunConfig(r.opts.pooled),
		calls: myCalls.get(r), waiters: myWaiters.get(r),
	}
	m.n = r.w.addNode("mysql") // as harness/ names it
	r.servers = append(r.servers, m.n)
	m.n.onCrash = m.dropConnections
	m.n.startup = func() int64 { return mysqlStartupMin + r.w.int64n(mysqlStartupMax-mysqlStartupMin) }
	return m
}

// mysqlStartupMin and mysqlStartupMax bound how long a restarted MariaDB
// takes until it answers (uniform between): cluster/'s MariaDB, killed
// and restarted, answered after 157-212 ms on an idle machine, and in real
// runs of mysql-restart (kill for 500 ms) 0.7-1.7 s after the kill, under
// load (2026-12-02). Held by the behaviour case "named lock: a restarted
// server answers only after its startup ...". Before, the model answered
// at once, and a holder renewing every second met a second holder in 191
// of 500 seeds where real runs met none.
const (
	mysqlStartupMin = int64(150 * time.Millisecond)
	mysqlStartupMax = int64(1200 * time.Millisecond)
)

func (m *mysql) leader() *node { return m.n }
func (m *mysql) evict(*node)   {}
func (m *mysql) faultChanged() {
	for _, c := range m.clients {
		switch {
		case !m.r.w.reachable(m.n, c.p.n):
			c.cut = true
		case c.cut:
			c.cut = false
			m.resetLink(c)
		}
	}
}

// resetLink is the heal of c's cut link (faults.Network.Heal restarts the
// link's proxy): the server closes c's connections at once; every
// statement c has in flight fails one network delay later.
func (m *mysql) resetLink(c *myClient) {
	c.link++
	for _, conn := range m.conns {
		if conn.owner == c && conn.alive {
			m.closeConn(conn)
		}
	}
	w := m.r.w
	calls := c.calls
	c.calls = nil
	for _, q := range calls {
		if !q.over {
			w.onNode(c.p.n, w.now+w.linkDelay(), func() { q.fail(errRefused) })
		}
	}
}

// destroySession is KILL of the holder's connection.
func (m *mysql) destroySession(p *proc) {
	if c, ok := p.lc.(*myClient); ok && c.leaseConn != nil {
		m.closeConn(c.leaseConn)
	}
}

func (m *mysql) client(p *proc) lockClient {
	o := locks.Options{WaitTimeout: time.Duration(m.r.opts.waitTimeout)}
	c := &myClient{m: m, p: p, mc: mym.New(lockMySQL.MachineConfig(m.cfg, o))}
	m.clients = append(m.clients, c)
	return c
}

// dropConnections is a server crash: every connection and lock is gone,
// and every waiting GET_LOCK's connection with it; the token rows stay.
func (m *mysql) dropConnections() {
	for _, c := range m.conns {
		c.alive = false
	}
	m.conns = nil
	m.holders = make(map[string]*myConn)
	queues := m.queues
	m.queues = make(map[string][]*myWaiter)
	for _, k := range slices.Sorted(maps.Keys(queues)) {
		for _, wt := range queues[k] {
			wt.finish(-1)
		}
	}
}

// finish answers the waiting GET_LOCK: 1 granted, 0 timed out, -1 the
// connection ended.
func (wt *myWaiter) finish(n int64) {
	if !wt.done {
		wt.done = true
		wt.q.locked(wt.conn, n)
	}
}

// handle is the waiter's wait running out on the server's clock.
func (wt *myWaiter) handle() {
	if !wt.done {
		wt.m.dropWaiter(wt)
		wt.m.touch(wt.conn)
		wt.finish(0)
	}
}

func (m *mysql) openConn(c *myClient) *myConn {
	m.nextID++
	conn := &myConn{id: m.nextID, alive: true, owner: c, waitTimeout: m.waitTimeout}
	m.conns = append(m.conns, conn)
	m.touch(conn)
	return conn
}

// touch is a statement on conn: its wait_timeout starts again.
func (m *mysql) touch(conn *myConn) {
	now := m.r.w.now
	conn.active = now
	if now+conn.waitTimeout > m.r.w.end {
		return // past the end of the run
	}
	m.n.after(conn.waitTimeout, func() {
		if conn.alive && conn.active == now {
			m.closeConn(conn)
		}
	})
}

// getLock is GET_LOCK(key, wait) on conn for statement q; q.locked gets
// 1, 0 or -1 (the connection ended while waiting).
func (m *mysql) getLock(conn *myConn, key string, wait float64, q *myCall) {
	if h := m.holders[key]; h == nil || h == conn {
		m.grant(conn, key)
		q.locked(conn, 1)
		return
	}
	wt := m.waiters.alloc()
	wt.m, wt.conn, wt.key, wt.q = m, conn, key, q
	m.queues[key] = append(m.queues[key], wt)
	if d := int64(wait * float64(time.Second)); m.r.w.now+d <= m.r.w.end {
		m.n.afterH(d, wt)
	}
}

func (m *mysql) grant(conn *myConn, key string) {
	if m.holders[key] == conn {
		return
	}
	m.holders[key] = conn
	conn.keys = append(conn.keys, key)
}

func (m *mysql) dropWaiter(wt *myWaiter) {
	q := m.queues[wt.key]
	for i, x := range q {
		if x == wt {
			m.queues[wt.key] = append(q[:i:i], q[i+1:]...)
			return
		}
	}
}

// unlock frees key held by conn and grants it to the first live waiter.
func (m *mysql) unlock(conn *myConn, key string) bool {
	if m.holders[key] != conn {
		return false
	}
	delete(m.holders, key)
	for i, k := range conn.keys {
		if k == key {
			conn.keys = append(conn.keys[:i:i], conn.keys[i+1:]...)
			break
		}
	}
	for len(m.queues[key]) > 0 {
		wt := m.queues[key][0]
		m.queues[key] = m.queues[key][1:]
		if wt.conn.alive && !wt.done {
			m.grant(wt.conn, key)
			m.touch(wt.conn)
			wt.finish(1)
			break
		}
	}
	return true
}

func (m *mysql) closeConn(conn *myConn) {
	if !conn.alive {
		return
	}
	conn.alive = false
	for _, k := range append([]string(nil), conn.keys...) {
		m.unlock(conn, k)
	}
	for _, k := range slices.Sorted(maps.Keys(m.queues)) {
		q := m.queues[k]
		kept := q[:0]
		for _, wt := range q {
			if wt.conn != conn {
				kept = append(kept, wt)
			} else {
				wt.done = true // its statement dies with the connection
			}
		}
		m.queues[k] = kept
	}
}

// The requests a proc can have in progress at once: one of each.
const (
	mySlotAcquire uint8 = iota
	mySlotRenew
	mySlotRelease
)

// myClient is the simulator's driver of locks/mysql's client machine for
// one proc: it sends the operations the machine asks for as statements
// on the proc's link to the server and gives it the answers. It decides
// nothing of the algorithm.
type myClient struct {
	m         *mysql
	p         *proc
	mc        *mym.Machine
	lease     *mym.Lease
	leaseConn *myConn // the lease's pinned connection
	slots     [3]mySlot

	// link counts the resets of the client's link; cut is whether it was
	// cut at the last fault change; calls are the statements sent since
	// the last reset (pruned now and then).
	link  uint32
	cut   bool
	calls []*myCall

	// bufs are the machine's output buffers, one a nesting depth of drive
	// (a proc's callback from drive may start a request); depth is the
	// number in use.
	bufs  [][]mym.Output
	depth int
}

// buf is an empty output buffer for a machine input given at this depth.
func (c *myClient) buf() []mym.Output {
	if c.depth == len(c.bufs) {
		c.bufs = append(c.bufs, make([]mym.Output, 0, 4))
	}
	return c.bufs[c.depth][:0]
}

type mySlot struct {
	c        mym.Call
	gen      uint32
	busy     bool
	bound    int64 // the request's bound on the client's clock; 0: none
	deadline int64 // virtual time past which no op is sent; 0: none
	conn     *myConn
	acqDone  acquireWaiter
	relDone  releaseWaiter
	resDone  func(lm.Result)
}

// myCall is one statement on a client's link.
type myCall struct {
	call
	c     *myClient
	slot  uint8
	gen   uint32
	link  uint32
	over  bool
	op    mym.Op
	conn  *myConn // the pinned connection it runs on (nil: a new one)
	rep   mym.Reply
	fresh *myConn // the connection a connect or pooled statement opened
}

func (c *myClient) acquire(key string, done acquireWaiter) {
	s := c.start(mySlotAcquire, 0)
	s.acqDone = done
	s.conn = nil
	c.drive(mySlotAcquire, c.mc.Request(&s.c, mym.Request{Kind: mym.Acquire, Key: key}, c.p.n.now(), c.buf()))
}

func (c *myClient) renew() {
	if c.lease == nil || c.slots[mySlotRenew].busy {
		return // the last renewal is still running: locks.Run waits for it
	}
	c.renewBounded(c.m.r.opts.renewEvery, nil)
}

// renewBounded is a renewal bounded by bound on the client's clock (0:
// none); done, if set, gets its result.
func (c *myClient) renewBounded(bound int64, done func(lm.Result)) {
	s := c.start(mySlotRenew, bound)
	s.resDone = done
	s.conn = c.leaseConn
	c.drive(mySlotRenew, c.mc.Request(&s.c, mym.Request{Kind: mym.Renew, Lease: c.lease}, c.p.n.now(), c.buf()))
}

func (c *myClient) release(done releaseWaiter) {
	c.slots[mySlotAcquire].gen++ // an acquire's late answers are stale
	if c.lease == nil {
		done.released(history.Fail)
		return
	}
	lease := c.lease
	c.lease = nil
	s := c.start(mySlotRelease, c.m.r.opts.ttl)
	s.relDone = done
	s.conn = c.leaseConn
	c.leaseConn = nil
	c.drive(mySlotRelease, c.mc.Request(&s.c, mym.Request{Kind: mym.Release, Lease: lease}, c.p.n.now(), c.buf()))
}

// crashed is the client process killed: its kernel closes its sockets.
func (c *myClient) crashed() {
	for _, conn := range c.m.conns {
		if conn.owner == c && conn.alive {
			c.hangUp(conn)
		}
	}
}

// hangUp is the client closing its socket of conn: the FIN reaches the
// client's proxy, which no cut stops, and the proxy closes the server's
// side one network delay later (behind what the client sent before,
// unless the link is cut: that was dropped).
func (c *myClient) hangUp(conn *myConn) {
	w, m := c.m.r.w, c.m
	t := w.now + w.linkDelay()
	if l := &w.links[c.p.n.id][m.n.id]; l.blocked == 0 {
		t = max(t, l.last)
	}
	w.onNode(m.n, t, func() { m.closeConn(conn) })
}

func (c *myClient) start(i uint8, bound int64) *mySlot {
	s := &c.slots[i]
	s.gen++
	s.busy = true
	s.bound, s.deadline = bound, 0
	if bound > 0 {
		s.deadline = c.m.r.w.now + c.p.n.clk.real(bound)
	}
	return s
}

// drive carries out the outputs of slot i's machine call; out is
// c.buf(): drive holds that buffer while it runs.
func (c *myClient) drive(i uint8, out []mym.Output) {
	d := c.depth
	c.bufs[d] = out[:0] // keep what the machine grew
	c.depth++
	c.drive1(i, out, d)
	c.depth = d
}

func (c *myClient) drive1(i uint8, out []mym.Output, d int) {
	s := &c.slots[i]
	for {
		var next *mym.Output
		for k := range out {
			o := &out[k]
			switch o.Kind {
			case mym.OutSend:
				next = o
			case mym.OutClose:
				if o.Drop && s.conn != nil {
					c.hangUp(s.conn)
				}
				s.conn = nil
			case mym.OutGrant:
				c.lease = o.Lease
				c.leaseConn = s.conn
			case mym.OutLost:
				c.p.onLost(o.LossText())
			case mym.OutDone:
				c.finish(i, o.Result)
				return
			}
		}
		if next == nil {
			return
		}
		w := c.m.r.w
		if s.deadline != 0 && w.now >= s.deadline {
			out = c.mc.Cancel(&s.c, c.p.n.now(), c.bufs[d][:0])
			continue
		}
		c.send(i, next.Op, int64(next.D))
		return
	}
}

// send is one statement of slot i, failing after d of true time or when
// the slot's bound passes on the client's clock, whichever comes first.
func (c *myClient) send(i uint8, op mym.Op, d int64) {
	s := &c.slots[i]
	w := c.m.r.w
	q := c.m.calls.alloc()
	*q = myCall{c: c, slot: i, gen: s.gen, link: c.link, op: op, conn: s.conn}
	q.call = call{w: w, c: c.p.n, s: c.m.n, h: q}
	if len(c.calls) >= 8 {
		kept := c.calls[:0]
		for _, o := range c.calls {
			if !o.over {
				kept = append(kept, o)
			}
		}
		clear(c.calls[len(kept):])
		c.calls = kept
	}
	c.calls = append(c.calls, q)
	if s.deadline != 0 {
		d = min(d, s.deadline-w.now) // the bound, set on the client's clock
	}
	w.startTrue(&q.call, d)
}

func (c *myClient) finish(i uint8, res lm.Result) {
	s := &c.slots[i]
	s.busy = false
	switch i {
	case mySlotAcquire:
		tok := int64(0)
		if res == lm.OK {
			tok = c.lease.Token
		}
		endAcquire(s.acqDone, res, tok)
	case mySlotRenew:
		if s.resDone != nil {
			s.resDone(res)
		}
	case mySlotRelease:
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

// serve runs the statement on the server, unless the link was reset
// since it was sent (what was sent into a cut is lost).
func (q *myCall) serve(r *call) {
	c := q.c
	if q.link != c.link {
		return
	}
	m := c.m
	conn := q.conn
	if q.op.Pooled || q.op.Kind == mym.OpConnect {
		conn = m.openConn(c)
		q.fresh = conn
	}
	if conn == nil || !conn.alive {
		q.rep = mym.Reply{Outcome: mym.Dead}
		r.replyH()
		return
	}
	m.touch(conn)
	rep := &q.rep
	switch q.op.Kind {
	case mym.OpConnect, mym.OpPing:
		rep.Outcome = mym.OK
	case mym.OpGetLock:
		m.getLock(conn, q.op.Name, q.op.Wait, q)
		return
	case mym.OpToken:
		m.tokens[q.op.Name]++
		*rep = mym.Reply{Outcome: mym.Int, N: m.tokens[q.op.Name]}
	case mym.OpCheck:
		rep.Outcome = mym.Null
		if h := m.holders[q.op.Name]; h != nil {
			*rep = mym.Reply{Outcome: mym.Int, N: h.id}
		}
	case mym.OpRelease:
		switch h := m.holders[q.op.Name]; {
		case h == nil:
			rep.Outcome = mym.Null
		case m.unlock(conn, q.op.Name):
			*rep = mym.Reply{Outcome: mym.Int, N: 1}
		default:
			*rep = mym.Reply{Outcome: mym.Int, N: 0}
		}
	}
	r.replyH()
}

// locked is GET_LOCK's answer n on conn (-1: the connection ended).
func (q *myCall) locked(conn *myConn, n int64) {
	switch n {
	case -1:
		q.rep = mym.Reply{Outcome: mym.Dead}
	default:
		q.rep = mym.Reply{Outcome: mym.Int, N: n, ConnID: conn.id}
	}
	q.call.replyH()
}

// replied runs on the client with the answer.
func (q *myCall) replied() {
	if q.over || q.link != q.c.link {
		return
	}
	q.over = true
	c := q.c
	if q.op.Pooled && q.fresh != nil {
		// database/sql closes the connection once the row is read.
		c.hangUp(q.fresh)
	} else if q.op.Kind == mym.OpConnect && q.fresh != nil {
		s := &c.slots[q.slot]
		if s.gen == q.gen && s.busy {
			s.conn = q.fresh
		} else {
			c.hangUp(q.fresh)
		}
	}
	q.answer(q.rep)
}

// failed is a statement that timed out or whose connection was reset:
// go-sql-driver gives the connection up (the machine hangs it up).
func (q *myCall) failed(e rpcErr) { q.fail(e) }

func (q *myCall) fail(e rpcErr) {
	if q.over {
		return
	}
	q.over = true
	if e == errServer {
		q.answer(mym.Reply{Outcome: mym.Error})
		return
	}
	q.answer(mym.Reply{Outcome: mym.Dead})
}

func (q *myCall) answer(r mym.Reply) {
	c := q.c
	s := &c.slots[q.slot]
	if s.gen != q.gen || !s.busy {
		return
	}
	c.drive(q.slot, c.mc.Reply(&s.c, r, c.p.n.now(), c.buf()))
}
