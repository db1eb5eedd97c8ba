package sim

import (
	"hash/crc32"
	"slices"
	"strconv"
	"time"

	"github.com/locksim/locksim/history"
)

// postgres models one PostgreSQL 15 server under locks/postgres, in one of
// its two backends, as harness/ deploys it: every client reaches the
// server through a toxiproxy link of its own (package faults).
//
// Locker, the lease table of seed 002 (backend "postgres"):
//   - A row per key: locked_by, locked_until, sequence. Get is Locker's
//     single UPDATE: take the row when it is free, ours, or expired
//     (locked_until < now), set locked_until = now + TTL and bump sequence,
//     which is the token. Renew sets locked_until = now + TTL while
//     locked_by is still ours (even past expiry, if nobody took the row),
//     else the lease is lost (LockStolen). Release clears locked_by if it
//     is ours.
//   - "now" is the option lock.clock: db (default, Locker's
//     clock_timestamp()) reads the server's clock, and a step of the
//     server's clock shows at once (clock_timestamp() reads the clock at
//     every call; libfaketime with FAKETIME_NO_CACHE=1 re-reads its file);
//     client reads the client's own clock and sends it, so a client whose
//     clock runs ahead takes rows that are still held, and a server clock
//     step changes nothing.
//   - Acquire polls every PollInterval (Locker: 0.5 s). A holder learns of
//     the loss only at its next Renew (every RenewEvery, bounded by
//     RenewEvery as locks.Run bounds it) or Release.
//   - A renewal that fails (a timeout, the server down, the link reset) is
//     retried at the next tick under lock.renew_errors retry (locksim's
//     default); under stop (the gem's renewer thread, which rescues
//     nothing) the lease renews no more after it: nothing is sent, the
//     holder is not told, and it runs on until its release finds the row
//     taken.
//   - The table is durable: a restart keeps every row and the sequence.
//
// Advisory locks (backend "postgres-advisory"):
//   - pg_advisory_lock on a connection opened for the lease: the server
//     grants the lock to one connection at a time and queues the others
//     (in arrival order); the token is nextval of a sequence, which
//     survives restarts. Renew is SELECT 1 bounded by RenewEvery, and a
//     dead connection loses the lease; Release is pg_advisory_unlock.
//   - The lock lives as long as the server's connection lives. A killed
//     client's kernel closes its socket; the FIN reaches its proxy, cut or
//     not, and the proxy closes the server's side: the lock goes one
//     network delay later (hangUp). A paused client keeps its lock (its
//     kernel answers keepalives). A cut client keeps it for the whole cut,
//     whatever tcp_keepalives_* say (harness/deploy.go sets 2 s idle, 3
//     probes 1 s apart): the server's TCP peer is the proxy, whose kernel
//     answers the probes. The heal resets the cut link (resetLink): the
//     server frees the lock then, and the client's statements in flight
//     fail. A renewal that times out in a cut loses the lease at once
//     (pgx gives the connection up), and pgx closes the socket 15 s later
//     (pgxCloseAfter, after the cancel request it sends first): the lock
//     goes then, unless the heal came first. A server restart drops every
//     connection and every advisory lock.
//
// Links: a statement sent into a cut link is lost (toxiproxy drops the
// data), and when the cut heals the link is reset and every statement in
// flight on it fails unexecuted, whatever the simulated network would
// deliver after the heal.
//
// Held to the real server by the behaviour cases in sim/behaviour
// (PostgresCases; TestPostgresModel here, TestPostgresReal there): the
// lease table with clock db and client (taken when free, refused while
// held, taken once expired; the owner's renew extends locked_until,
// another's updates nothing; release by the owner only, sequence up at
// every grant; a server clock step; a client clock running ahead; a
// restart keeps rows and sequence), clock_timestamp() under a step, and
// the advisory lock (one holder, tokens increase; killed client; paused
// client; cut holder and heal; renewal timeout in a cut; client killed
// while cut; restart). Defects they found, fixed here: the model freed a
// cut holder's lock after TCP keepalive gave up (7,875 s, Linux defaults)
// and kept it across the heal, where the real server keeps it for the
// cut and frees it at the heal (issue 14's "2 + 1 × 3 s" holds for
// neither: the proxy answers the keepalives); a client killed while cut
// freed its lock only at the heal (the FIN waited behind the cut), where
// the real one frees it at once; a renewal had no deadline, so a cut
// holder never learnt of its loss, where locks.Run's deadline makes pgx
// give the connection up (lost at once) and close it 15 s later.
//
// Simplified: no transactions or pool; each statement is one round trip.
// Locker's ensure_key_exists INSERT is not a separate round trip.
type postgres struct {
	r        *run
	n        *node
	advisory bool

	rows map[string]*pgRow
	// advisory
	holders map[string]*pgConn
	queues  map[string][]*pgWaiter
	seq     int64
	conns   []*pgConn
	// clients are every client, whose links a heal resets.
	clients []*pgClient
}

type pgRow struct {
	lockedBy    string
	lockedUntil int64 // on the clock the option names
	sequence    int64
}

type pgConn struct {
	id    int
	alive bool
	owner *pgClient
	keys  []string
}

type pgWaiter struct {
	conn    *pgConn
	granted func(tok int64)
	failed  func() // the connection was reset
}

// pgxCloseAfter is how long pgx waits, after a query it gave up on (its
// context ended), before it closes the connection's socket:
// pgconn.asyncClose first sends a cancel request on a new connection and
// waits up to 15 s for the server to close that one.
const pgxCloseAfter = int64(15 * time.Second)

func newPostgres(r *run, advisory bool) *postgres {
	m := &postgres{
		r: r, advisory: advisory,
		rows:    make(map[string]*pgRow),
		holders: make(map[string]*pgConn),
		queues:  make(map[string][]*pgWaiter),
	}
	m.n = r.w.addNode("pg") // as harness/ names it
	r.servers = append(r.servers, m.n)
	m.n.onCrash = m.dropConnections
	return m
}

func (m *postgres) leader() *node { return m.n }

// faultChanged: a client's link that was cut and is whole again has been
// reset (resetLink). While it is cut nothing dies: the server's TCP peer
// is the client's proxy, whose kernel answers keepalives.
func (m *postgres) faultChanged() {
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

// resetLink is the heal of c's cut link: faults.Network.Heal restarts a
// cut link's proxy, which closes both sides of every connection through
// it. The server frees c's advisory locks at once; every statement c has
// in flight fails on the client one network delay later, and what c sent
// into the cut was lost (the proxy dropped it).
func (m *postgres) resetLink(c *pgClient) {
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
			w.onNode(c.p.n, w.now+w.linkDelay(), func() { c.fail(q, errRefused) })
		}
	}
}
func (m *postgres) evict(*node) {}

// destroySession is pg_terminate_backend of the holder's connection
// (advisory), or an UPDATE clearing its row (lease table).
func (m *postgres) destroySession(p *proc) {
	c, ok := p.lc.(*pgClient)
	if !ok {
		return
	}
	if m.advisory {
		if c.conn != nil {
			m.closeConn(c.conn)
		}
		return
	}
	if row := m.rows[c.key]; row != nil && row.lockedBy == c.id {
		row.lockedBy = ""
	}
}

func (m *postgres) client(p *proc) lockClient {
	c := &pgClient{m: m, p: p}
	m.clients = append(m.clients, c)
	return c
}

// crashed is the client process killed: its kernel closes its sockets
// (hangUp), cut or not.
func (c *pgClient) crashed() {
	for _, conn := range c.m.conns {
		if conn.owner == c && conn.alive {
			c.hangUp(conn)
		}
	}
}

// hangUp is the client closing its socket of conn. The FIN reaches the
// client's proxy, which no cut stops (a cut drops data; the proxy's own
// connections stay up), and the proxy closes the server's side: the
// server frees the connection's locks one network delay later, behind
// what the client sent before unless the link is cut (then that was
// dropped).
func (c *pgClient) hangUp(conn *pgConn) {
	w, m := c.m.r.w, c.m
	t := w.now + w.linkDelay()
	if l := &w.links[c.p.n.id][m.n.id]; l.blocked == 0 {
		t = max(t, l.last)
	}
	w.onNode(m.n, t, func() { m.closeConn(conn) })
}

// dropConnections is a server crash: every connection and advisory lock
// is gone; the table and the sequence are durable.
func (m *postgres) dropConnections() {
	for _, c := range m.conns {
		c.alive = false
	}
	m.conns = nil
	for _, k := range sortedKeys(m.queues) {
		for _, wt := range m.queues[k] {
			wt.failed()
		}
	}
	m.holders = make(map[string]*pgConn)
	m.queues = make(map[string][]*pgWaiter)
}

// now is the "now" of the lease table: the server's clock, or the one the
// client sent.
func (m *postgres) now(clientNow int64) int64 {
	if m.r.opts.clock == "client" {
		return clientNow
	}
	return m.n.now()
}

func (m *postgres) get(key, id string, clientNow int64) (int64, bool) {
	row := m.rows[key]
	if row == nil {
		row = &pgRow{}
		m.rows[key] = row
	}
	now := m.now(clientNow)
	if row.lockedBy != "" && row.lockedBy != id && row.lockedUntil >= now {
		return 0, false
	}
	row.lockedBy = id
	row.lockedUntil = now + m.r.opts.ttl
	row.sequence++
	return row.sequence, true
}

func (m *postgres) renewRow(key, id string, clientNow int64) bool {
	row := m.rows[key]
	if row == nil || row.lockedBy != id {
		return false
	}
	row.lockedUntil = m.now(clientNow) + m.r.opts.ttl
	return true
}

func (m *postgres) releaseRow(key, id string) bool {
	row := m.rows[key]
	if row == nil || row.lockedBy != id {
		return false
	}
	row.lockedBy = ""
	return true
}

func (m *postgres) openConn(c *pgClient) *pgConn {
	conn := &pgConn{id: len(m.conns) + 1, alive: true, owner: c}
	m.conns = append(m.conns, conn)
	return conn
}

// lockAdvisory grants key to conn now (granted called at once) or queues
// it.
func (m *postgres) lockAdvisory(conn *pgConn, key string, granted func(int64), failed func()) {
	if h := m.holders[key]; h == nil {
		m.holders[key] = conn
		conn.keys = append(conn.keys, key)
		m.seq++
		granted(m.seq)
		return
	}
	m.queues[key] = append(m.queues[key], &pgWaiter{conn: conn, granted: granted, failed: failed})
}

func (m *postgres) unlockAdvisory(conn *pgConn, key string) bool {
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
		if wt.conn.alive {
			m.lockAdvisory(wt.conn, key, wt.granted, wt.failed)
			break
		}
	}
	return true
}

func (m *postgres) closeConn(conn *pgConn) {
	if !conn.alive {
		return
	}
	conn.alive = false
	for _, k := range append([]string(nil), conn.keys...) {
		m.unlockAdvisory(conn, k)
	}
	for k, q := range m.queues {
		kept := q[:0]
		for _, wt := range q {
			if wt.conn != conn {
				kept = append(kept, wt)
			}
		}
		m.queues[k] = kept
	}
}

// pgClient is locks/postgres's client side (Locker or Advisory) for one
// proc.
type pgClient struct {
	m    *postgres
	p    *proc
	gen  uint32
	key  string
	id   string // locked_by
	n    int
	conn *pgConn

	// renewerDied is the gen of the lease whose renewal failed under
	// lock.renew_errors stop: that lease renews no more.
	renewerDied uint32
	// link counts the resets of the client's link to the server; cut is
	// whether it was cut at the last fault change.
	link uint32
	cut  bool
	// calls are the statements sent since the last reset, answered or
	// not (pruned now and then).
	calls []*pgCall
}

// pgCall is one statement on a client's link: the call itself (its own
// rpcHandler and replier, so a statement costs one allocation besides the
// caller's closures).
type pgCall struct {
	call
	c       *pgClient
	link    uint32 // the link's resets when it was sent
	over    bool   // answered or failed
	serveFn func(r *call, q *pgCall)
	failFn  func(rpcErr)
	answer  func()
}

func (q *pgCall) serve(r *call) {
	if q.link == q.c.link {
		q.serveFn(r, q)
	}
}

func (q *pgCall) failed(e rpcErr) { q.c.fail(q, e) }

func (q *pgCall) replied() {
	if !q.over && q.link == q.c.link {
		q.over = true
		q.answer()
	}
}

// send is one statement on c's link, failing after timeout on c's clock
// (0: never). serve runs on the server unless the link was reset since
// (what was sent into a cut is lost), and answers with c.answer; failed
// runs once on the client, for the timeout, a server that is down or a
// reset of the link.
func (c *pgClient) send(timeout int64, serve func(r *call, q *pgCall), failed func(rpcErr)) {
	w := c.m.r.w
	q := &pgCall{c: c, link: c.link, serveFn: serve, failFn: failed}
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
	w.start(&q.call, timeout)
}

// answer sends fn back as the answer to q; it runs on the client unless
// q ended first (a reset of the link in between).
func (c *pgClient) answer(r *call, q *pgCall, fn func()) {
	q.answer = fn
	r.replyH()
}

func (c *pgClient) fail(q *pgCall, e rpcErr) {
	if !q.over {
		q.over = true
		q.failFn(e)
	}
}

// query is one statement without a timeout (an acquisition: harness/
// clients set none).
func (c *pgClient) query(op func() func(), failed func()) {
	c.send(0, func(r *call, q *pgCall) { c.answer(r, q, op()) }, func(rpcErr) { failed() })
}

func (c *pgClient) acquire(key string, done func(bool, int64)) {
	c.gen++
	gen := c.gen
	c.key = key
	if c.m.advisory {
		c.acquireAdvisory(gen, key, done)
		return
	}
	c.n++
	id := c.p.name + " guid:" + itoa(int64(c.n))
	c.id = id
	var deadline int64
	if wt := c.m.r.opts.waitTimeout; wt > 0 {
		deadline = c.p.n.now() + wt
	}
	var attempt func()
	attempt = func() {
		clientNow := c.p.n.now()
		c.query(func() func() {
			tok, ok := c.m.get(key, id, clientNow)
			return func() {
				if c.gen != gen {
					return
				}
				if ok {
					done(true, tok)
					return
				}
				wait := c.m.r.opts.poll
				if deadline != 0 {
					left := deadline - c.p.n.now()
					if left <= 0 {
						done(false, 0)
						return
					}
					wait = min(wait, left)
				}
				c.p.n.after(wait, attempt)
			}
		}, func() {
			if c.gen == gen {
				done(false, 0)
			}
		})
	}
	attempt()
}

// advisoryKey is the advisory lock a key maps to: Locker::Advisory's
// CRC-32 of the key (locks/postgres.Advisory.LockKey, in one lockspace), so
// two keys with the same CRC share one lock.
func advisoryKey(key string) string {
	return strconv.FormatInt(int64(int32(crc32.ChecksumIEEE([]byte(key)))), 10)
}

func (c *pgClient) acquireAdvisory(gen uint32, key string, done func(bool, int64)) {
	key = advisoryKey(key)
	// Connect: one round trip, then pg_advisory_lock waits on the server.
	c.query(func() func() {
		conn := c.m.openConn(c)
		return func() {
			if c.gen != gen {
				return
			}
			c.conn = conn
			c.send(0, func(r *call, q *pgCall) {
				if !conn.alive {
					c.answer(r, q, func() { done(false, 0) })
					return
				}
				c.m.lockAdvisory(conn, key, func(tok int64) {
					c.answer(r, q, func() {
						if c.gen == gen {
							done(true, tok)
						}
					})
				}, func() {
					c.answer(r, q, func() {
						if c.gen == gen {
							done(false, 0)
						}
					})
				})
			}, func(rpcErr) {
				if c.gen == gen {
					done(false, 0)
				}
			})
			if wt := c.m.r.opts.waitTimeout; wt > 0 {
				// lock_timeout: the server cancels the wait.
				c.m.n.after(wt, func() {
					if conn.alive && c.m.holders[key] != conn {
						c.m.closeConn(conn)
					}
				})
			}
		}
	}, func() {
		if c.gen == gen {
			done(false, 0)
		}
	})
}

// renew is one tick of locks.Run's renewer, which bounds a renewal by
// renew_every.
func (c *pgClient) renew() {
	gen := c.gen
	if c.m.advisory {
		c.checkConn(c.m.r.opts.renewEvery, func(r pgRenew) {
			if c.gen == gen && r == pgLost {
				c.p.onLost("connection holding the advisory lock is gone")
			}
		})
		return
	}
	if c.renewerDied == gen {
		return // the renewer died: Renew sends nothing (ErrRenewerDied)
	}
	key, id, clientNow := c.key, c.id, c.p.n.now()
	c.send(c.m.r.opts.renewEvery, func(r *call, q *pgCall) {
		ok := c.m.renewRow(key, id, clientNow)
		c.answer(r, q, func() {
			if c.gen == gen && !ok {
				c.p.onLost("renew: the row was taken by another owner (LockStolen)")
			}
		})
	}, func(rpcErr) {
		if c.gen == gen && c.m.r.opts.renewErrors == "stop" {
			c.renewerDied = gen
		}
	})
}

// release is the end of locks.Run, which bounds a release by the TTL.
func (c *pgClient) release(done func(history.Type)) {
	c.gen++
	key := c.key
	result := func(ok bool) func() {
		return func() {
			if ok {
				done(history.OK)
			} else {
				done(history.Fail)
			}
		}
	}
	if c.m.advisory {
		key = advisoryKey(key)
		conn := c.conn
		c.conn = nil
		c.send(c.m.r.opts.ttl, func(r *call, q *pgCall) {
			ok := conn != nil && conn.alive && c.m.unlockAdvisory(conn, key)
			if conn != nil {
				c.m.closeConn(conn)
			}
			c.answer(r, q, result(ok))
		}, func(e rpcErr) {
			if e == errTimeout && conn != nil {
				// pgx gave the connection up; its socket closes later.
				c.p.n.afterTrue(pgxCloseAfter, func() { c.hangUp(conn) })
			}
			done(history.Info)
		})
		return
	}
	id := c.id
	c.send(c.m.r.opts.ttl, func(r *call, q *pgCall) {
		c.answer(r, q, result(c.m.releaseRow(key, id)))
	}, func(rpcErr) { done(history.Info) })
}

// pgRenew is what an advisory lease's renewal returned.
type pgRenew int

const (
	pgAlive  pgRenew = iota // nil
	pgLost                  // an error matching ErrLockLost: the connection is gone
	pgFailed                // another error
)

// checkConn is AdvisoryLease.Renew: SELECT 1 on the lock's connection,
// bounded by timeout (0: none). Any failure is a loss: a connection that
// is gone, or one pgx gave up on when the timeout passed (it closes the
// socket pgxCloseAfter later).
func (c *pgClient) checkConn(timeout int64, done func(pgRenew)) {
	conn := c.conn
	lost := func() {
		if c.conn == conn {
			c.conn = nil
		}
		done(pgLost)
	}
	c.send(timeout, func(r *call, q *pgCall) {
		alive := conn != nil && conn.alive
		c.answer(r, q, func() {
			if alive {
				done(pgAlive)
			} else {
				lost()
			}
		})
	}, func(e rpcErr) {
		if e == errTimeout && conn != nil {
			c.p.n.afterTrue(pgxCloseAfter, func() { c.hangUp(conn) })
		}
		lost()
	})
}

func itoa(v int64) string { return string(num(v)) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
