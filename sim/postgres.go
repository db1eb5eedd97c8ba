package sim

import (
	"slices"
	"time"

	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/locks"
	lm "github.com/locksim/locksim/locks/machine"
	lockPostgres "github.com/locksim/locksim/locks/postgres"
	pgm "github.com/locksim/locksim/locks/postgres/machine"
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
//     (in arrival order), or answers lock_not_available once the
//     connection's lock_timeout has passed on the server's clock; the
//     token is nextval of a sequence, which survives restarts. Renew is
//     SELECT 1 bounded by RenewEvery, and a dead connection loses the
//     lease; Release is pg_advisory_unlock, then the client closes the
//     connection.
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
// The client is not a copy: it is locks/postgres's own client machines
// (package locks/postgres/machine: Table for the lease table, Advisory
// for the advisory lock), which real runs drive over pgx, driven here by
// pgClient over this model with the configuration real runs use
// (locks/postgres.TableConfig, AdvisoryMachineConfig). Each statement the
// machine asks for is a round trip of its own, as on the real server:
// the lease table's ensure INSERT before an acquire's first get, the
// advisory lock's connect, SET lock_timeout (with a wait timeout),
// pg_advisory_lock and nextval. What pgx does beside the machine is
// pgClient's: a statement cut short by locks.Run's bound (renew_every, the
// TTL) leaves the connection closed for the machine, and its socket
// closes pgxCloseAfter later.
//
// Simplified: no transactions or pool; a connection opens in one round
// trip.
type postgres struct {
	r        *run
	n        *node
	advisory bool

	rows map[string]*pgRow
	// advisory, by key pair (advisoryKey)
	holders map[int64]*pgConn
	queues  map[int64][]*pgOp
	seq     int64
	conns   []*pgConn
	// clients are every client, whose links a heal resets.
	clients []*pgClient

	adv    *pgm.Advisory // the advisory client machine, which all clients share
	ops    *arena[pgOp]
	timers *arena[pgTimer]
	leases *arena[pgm.Lease]
}

type pgRow struct {
	lockedBy    string
	lockedUntil int64 // on the clock the option names
	sequence    int64
}

// pgConn is one advisory lease's connection, as both ends see it.
type pgConn struct {
	id    int
	alive bool // the server's side
	owner *pgClient
	keys  []int64
	// lockTimeout is the session's lock_timeout (0: none).
	lockTimeout int64
	// hungUp: the client closed its socket (the FIN is on its way);
	// gaveUp: pgx marked the connection closed after an error (a
	// timeout: its socket closes pgxCloseAfter later).
	hungUp, gaveUp bool
}

// pgxCloseAfter is how long pgx waits, after a query it gave up on (its
// context ended), before it closes the connection's socket:
// pgconn.asyncClose first sends a cancel request on a new connection and
// waits up to 15 s for the server to close that one.
const pgxCloseAfter = int64(15 * time.Second)

// The lease table and sequence as locks/postgres names them by default
// (harness/ uses the defaults).
const (
	pgTable    = `"locks"`
	pgSequence = `"locksim_advisory_token"`
)

// pgOps, pgTimers and pgLeases keep their memory from one run to the next.
var (
	pgOps    arenaPool[pgOp]
	pgTimers arenaPool[pgTimer]
	pgLeases arenaPool[pgm.Lease]
)

func newPostgres(r *run, advisory bool) *postgres {
	m := &postgres{
		r: r, advisory: advisory,
		rows:    make(map[string]*pgRow),
		holders: make(map[int64]*pgConn),
		queues:  make(map[int64][]*pgOp),
		ops:     pgOps.get(r),
		timers:  pgTimers.get(r),
		leases:  pgLeases.get(r),
	}
	if advisory {
		o := locks.Options{WaitTimeout: time.Duration(r.opts.waitTimeout)}
		m.adv = pgm.NewAdvisory(lockPostgres.AdvisoryMachineConfig(pgSequence, lockPostgres.AdvisoryConfig{Lockspace: 1}, o))
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
			w.onNode(c.p.n, w.now+w.linkDelay(), func() { q.fail(errRefused) })
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
	if c.lease == nil {
		return
	}
	if row := m.rows[c.lease.Key]; row != nil && row.lockedBy == c.lease.LockedBy {
		row.lockedBy = ""
	}
}

func (m *postgres) client(p *proc) lockClient {
	c := &pgClient{m: m, p: p, adv: m.adv, buf: make([]pgm.Output, 0, 4)}
	if !m.advisory {
		cfg := lockPostgres.Config{Clock: lockPostgres.ClockSource(m.r.opts.clock), RenewErrors: lockPostgres.RenewErrors(m.r.opts.renewErrors)}
		o := locks.Options{
			TTL:          time.Duration(m.r.opts.ttl),
			PollInterval: time.Duration(m.r.opts.poll),
			WaitTimeout:  time.Duration(m.r.opts.waitTimeout),
			Owner:        p.name,
		}
		c.table = pgm.NewTable(lockPostgres.TableConfig(pgTable, cfg, o))
	}
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
	if conn.hungUp {
		return
	}
	conn.hungUp = true
	w, m := c.m.r.w, c.m
	t := w.now + w.linkDelay()
	if l := &w.links[c.p.n.id][m.n.id]; l.blocked == 0 {
		t = max(t, l.last)
	}
	w.onNode(m.n, t, func() { m.closeConn(conn) })
}

// dropConnections is a server crash: every connection and advisory lock
// is gone; the table and the sequence are durable. A statement waiting
// for its lock fails.
func (m *postgres) dropConnections() {
	for _, c := range m.conns {
		c.alive = false
	}
	m.conns = nil
	keys := make([]int64, 0, len(m.queues))
	for k := range m.queues {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, q := range m.queues[k] {
			q.answerFailed()
		}
	}
	m.holders = make(map[int64]*pgConn)
	m.queues = make(map[int64][]*pgOp)
}

// now is the "now" of a statement under clock db: the server's clock.
func (m *postgres) now() int64 { return m.n.now() }

// get is Locker's get as the statement op asks it: under clock db with
// the server's clock_timestamp(), under clock client with the client's
// now and now + TTL.
func (m *postgres) get(op *pgm.Op) (int64, bool) {
	row := m.rows[op.Key]
	if row == nil {
		row = &pgRow{}
		m.rows[op.Key] = row
	}
	now, until := m.times(op)
	if row.lockedBy != "" && row.lockedBy != op.LockedBy && row.lockedUntil >= now {
		return 0, false
	}
	row.lockedBy = op.LockedBy
	row.lockedUntil = until
	row.sequence++
	return row.sequence, true
}

// times are a get's or renew's "now" and locked_until.
func (m *postgres) times(op *pgm.Op) (int64, int64) {
	if op.ClientClock {
		return op.At, op.Until
	}
	now := m.now()
	return now, now + op.TTLMicros*int64(time.Microsecond)
}

func (m *postgres) renewRow(op *pgm.Op) bool {
	row := m.rows[op.Key]
	if row == nil || row.lockedBy != op.LockedBy {
		return false
	}
	_, row.lockedUntil = m.times(op)
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

// advisoryKey is the advisory lock a key pair names: Locker::Advisory's
// CRC-32 of the key (locks/postgres.Advisory.LockKey), so two keys with
// the same CRC share one lock.
func advisoryKey(space, hash int32) int64 { return int64(space)<<32 | int64(uint32(hash)) }

// take grants key to conn if nobody holds it.
func (m *postgres) take(conn *pgConn, key int64) bool {
	if m.holders[key] != nil {
		return false
	}
	m.holders[key] = conn
	conn.keys = append(conn.keys, key)
	return true
}

// lockAdvisory is pg_advisory_lock of q's key on q's connection: granted
// at once (answered) or queued, until lock_timeout if the session set one.
func (m *postgres) lockAdvisory(q *pgOp, key int64) {
	if m.take(q.conn, key) {
		q.answer(pgm.Reply{Outcome: pgm.Row})
		return
	}
	m.queues[key] = append(m.queues[key], q)
	if t := q.conn.lockTimeout; t > 0 {
		m.n.after(t, func() {
			if i := slices.Index(m.queues[key], q); i >= 0 {
				m.queues[key] = slices.Delete(m.queues[key], i, i+1)
				q.answer(pgm.Reply{Outcome: pgm.LockTimeout})
			}
		})
	}
}

func (m *postgres) unlockAdvisory(conn *pgConn, key int64) bool {
	if m.holders[key] != conn {
		return false
	}
	delete(m.holders, key)
	if i := slices.Index(conn.keys, key); i >= 0 {
		conn.keys = append(conn.keys[:i:i], conn.keys[i+1:]...)
	}
	for len(m.queues[key]) > 0 {
		q := m.queues[key][0]
		m.queues[key] = m.queues[key][1:]
		if q.conn.alive {
			m.lockAdvisory(q, key)
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
	for _, k := range append([]int64(nil), conn.keys...) {
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

// pgClient is the simulator's driver of locks/postgres's client machines
// (package locks/postgres/machine) for one proc: Table (the lease table)
// or Advisory. It sends the statements the machine asks for as calls to
// the model, sets its poll timer on the proc's clock and gives it the
// answers; it decides nothing of the algorithm. Beside the machine it
// does what the harness's locks.Run does in real runs (a renewal bounded
// by renew_every, a release by the TTL, on the client's clock) and what
// pgx does (a statement cut short leaves the connection closed; its
// socket closes pgxCloseAfter later).
type pgClient struct {
	m     *postgres
	p     *proc
	table *pgm.Table
	adv   *pgm.Advisory
	n     int        // leases asked for: the guid of locked_by
	lease *pgm.Lease // the last grant
	conn  *pgConn    // the advisory lease's connection, until its release
	slots [3]pgSlot
	buf   []pgm.Output // the machine's outputs, reused

	// link counts the resets of the client's link to the server; cut is
	// whether it was cut at the last fault change.
	link uint32
	cut  bool
	// calls are the statements sent since the last reset, answered or
	// not (pruned now and then).
	calls []*pgOp
}

// The requests a proc can have in progress at once: one of each.
const (
	pgAcquire uint8 = iota
	pgRenewal
	pgRelease
)

// pgSlot is one request in progress.
type pgSlot struct {
	c     pgm.Call
	gen   uint32 // bumped at every request: stale answers check it
	busy  bool
	bound int64   // each statement's timeout on the client's clock; 0: none
	conn  *pgConn // the request's connection (advisory)
	// acqDone, relDone and renDone are told how a request ended.
	acqDone acquireWaiter
	relDone releaseWaiter
	renDone func(lm.Result)
}

// pgOp is one statement in flight, from the run's arena: the call is
// embedded, so a statement is one allocation from the arena and no
// closures.
type pgOp struct {
	call
	c    *pgClient
	slot uint8
	gen  uint32
	link uint32 // the link's resets when it was sent
	over bool   // answered or failed
	op   pgm.Op
	conn *pgConn
	rep  pgm.Reply
}

// pgTimer is a machine's poll timer, from the run's arena.
type pgTimer struct {
	c    *pgClient
	slot uint8
	gen  uint32
}

func (c *pgClient) request(i uint8, r pgm.Request, out []pgm.Output) []pgm.Output {
	s := &c.slots[i]
	if c.table != nil {
		return c.table.Request(&s.c, r, c.p.n.now(), out)
	}
	return c.adv.Request(&s.c, r, c.p.n.now(), out)
}

func (c *pgClient) acquire(key string, done acquireWaiter) {
	s := c.start(pgAcquire, 0)
	s.acqDone = done
	s.conn = nil
	c.n++
	c.drive(pgAcquire, c.request(pgAcquire, pgm.Request{Kind: pgm.Acquire, Key: key, Guid: itoa(int64(c.n)), Lease: c.m.leases.alloc()}, c.buf[:0]))
}

// renew is one tick of locks.Run's renewer, which bounds a renewal by
// renew_every.
func (c *pgClient) renew() {
	c.renewWithin(c.m.r.opts.renewEvery, func(r lm.Result) {})
}

// renewWithin is a renewal bounded by timeout on the client's clock (0:
// none); done is told how it ended. A renewal still running is left to
// finish (locks.Run waits for it).
func (c *pgClient) renewWithin(timeout int64, done func(lm.Result)) {
	if c.lease == nil || c.slots[pgRenewal].busy {
		return
	}
	s := c.start(pgRenewal, timeout)
	s.renDone = done
	s.conn = c.conn
	c.drive(pgRenewal, c.request(pgRenewal, pgm.Request{Kind: pgm.Renew, Lease: c.lease}, c.buf[:0]))
}

// release is the end of locks.Run, which bounds a release by the TTL.
func (c *pgClient) release(done releaseWaiter) {
	c.slots[pgAcquire].gen++ // an acquire's or renewal's late answers are stale
	c.slots[pgRenewal].gen++
	c.slots[pgRenewal].busy = false
	if c.lease == nil {
		done.released(history.Fail)
		return
	}
	s := c.start(pgRelease, c.m.r.opts.ttl)
	s.relDone = done
	s.conn = c.conn
	c.conn = nil
	c.drive(pgRelease, c.request(pgRelease, pgm.Request{Kind: pgm.Release, Lease: c.lease}, c.buf[:0]))
}

// start begins a request in slot i, each statement bounded by bound on
// the client's clock (0: no bound).
func (c *pgClient) start(i uint8, bound int64) *pgSlot {
	s := &c.slots[i]
	s.gen++
	s.busy = true
	s.bound = bound
	return s
}

// drive carries out the outputs of slot i's machine call. out is c.buf:
// OutDone is always the last output, so a request that finish starts
// (from a proc's callback) may reuse the buffer.
func (c *pgClient) drive(i uint8, out []pgm.Output) {
	s := &c.slots[i]
	for k := range out {
		o := &out[k]
		switch o.Kind {
		case pgm.OutSend:
			c.send(i, s, &o.Op)
		case pgm.OutTimer:
			t := c.m.timers.alloc()
			t.c, t.slot, t.gen = c, i, s.gen
			c.p.n.afterH(int64(o.D), t)
		case pgm.OutClose:
			if conn := s.conn; conn != nil && !conn.gaveUp {
				c.hangUp(conn)
			}
		case pgm.OutGrant:
			c.lease = o.Lease
			c.conn = s.conn
		case pgm.OutLost:
			c.p.onLost(o.Text)
		case pgm.OutDone:
			c.finish(i, o.Result)
			return
		}
	}
}

// send is one statement of slot i on c's link. It runs on the server
// unless the link was reset since (what was sent into a cut is lost).
func (c *pgClient) send(i uint8, s *pgSlot, op *pgm.Op) {
	w := c.m.r.w
	q := c.m.ops.alloc()
	q.c, q.slot, q.gen, q.link, q.op, q.conn = c, i, s.gen, c.link, *op, s.conn
	q.call.w, q.call.c, q.call.s, q.call.h = w, c.p.n, c.m.n, q // the rest is zero, from the arena
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
	w.start(&q.call, s.bound)
}

// finish ends slot i's request with res.
func (c *pgClient) finish(i uint8, res lm.Result) {
	s := &c.slots[i]
	s.busy = false
	switch i {
	case pgAcquire:
		tok := int64(0)
		if res == lm.OK {
			tok = c.lease.Token
		}
		endAcquire(s.acqDone, res, tok)
	case pgRenewal:
		s.renDone(res)
	case pgRelease:
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

func (t *pgTimer) stopped() bool {
	s := &t.c.slots[t.slot]
	return s.gen != t.gen || !s.busy
}

// handle is the poll timer firing.
func (t *pgTimer) handle() {
	if t.stopped() {
		return
	}
	c := t.c
	s := &c.slots[t.slot]
	c.drive(t.slot, c.table.Fire(&s.c, c.p.n.now(), c.buf[:0]))
}

// serve runs the statement on the server, unless the link was reset
// since it was sent.
func (q *pgOp) serve(*call) {
	c := q.c
	if q.link != c.link {
		return
	}
	m := c.m
	op := &q.op
	row := pgm.Reply{Outcome: pgm.Row, N: 1}
	none := pgm.Reply{Outcome: pgm.NoRow}
	switch op.Kind {
	case pgm.OpEnsure:
		if m.rows[op.Key] == nil {
			m.rows[op.Key] = &pgRow{}
		}
		q.answer(row)
	case pgm.OpGet:
		if tok, ok := m.get(op); ok {
			q.answer(pgm.Reply{Outcome: pgm.Row, N: tok})
		} else {
			q.answer(none)
		}
	case pgm.OpRenew:
		if m.renewRow(op) {
			q.answer(row)
		} else {
			q.answer(none)
		}
	case pgm.OpRelease:
		if m.releaseRow(op.Key, op.LockedBy) {
			q.answer(row)
		} else {
			q.answer(none)
		}
	case pgm.OpConnect:
		q.conn = m.openConn(c)
		q.answer(row)
	default: // on the advisory lease's connection
		conn := q.conn
		if conn == nil || !conn.alive {
			// The server's side is gone: the client reads a reset.
			q.answer(pgm.Reply{Outcome: pgm.Failed, Closed: true})
			return
		}
		key := advisoryKey(op.Space, op.Hash)
		switch op.Kind {
		case pgm.OpSetLockTimeout:
			conn.lockTimeout = m.r.opts.waitTimeout // the statement's value: the machine sets the wait timeout
			q.answer(row)
		case pgm.OpLock:
			m.lockAdvisory(q, key)
		case pgm.OpTryLock:
			if !m.take(conn, key) {
				q.answer(none)
				return
			}
			m.seq++
			q.answer(pgm.Reply{Outcome: pgm.Row, N: m.seq})
		case pgm.OpNextval:
			m.seq++
			q.answer(pgm.Reply{Outcome: pgm.Row, N: m.seq})
		case pgm.OpPing:
			q.answer(row)
		case pgm.OpUnlock:
			if m.unlockAdvisory(conn, key) {
				q.answer(row)
			} else {
				q.answer(none)
			}
		}
	}
}

// answer sends r back to the client.
func (q *pgOp) answer(r pgm.Reply) {
	q.rep = r
	q.call.replyH()
}

// answerFailed answers a statement the server dropped with its
// connection (a crash): the client reads a reset.
func (q *pgOp) answerFailed() { q.answer(pgm.Reply{Outcome: pgm.Failed, Closed: true}) }

// replied runs on the client with the answer, unless the statement ended
// first (a reset of the link in between).
func (q *pgOp) replied() {
	if q.over || q.link != q.c.link {
		return
	}
	q.over = true
	if s := &q.c.slots[q.slot]; q.op.Kind == pgm.OpConnect && q.rep.Outcome == pgm.Row && s.gen == q.gen && s.busy {
		s.conn = q.conn
	}
	if q.rep.Outcome == pgm.Failed && q.rep.Closed && q.conn != nil {
		q.conn.gaveUp = true
	}
	q.deliver(q.rep)
}

// failed is a statement that got no answer: the server down or the link
// reset (the connection is closed), or locks.Run's bound passed (pgx gives
// the connection up, and closes its socket pgxCloseAfter later).
func (q *pgOp) failed(e rpcErr) { q.fail(e) }

func (q *pgOp) fail(e rpcErr) {
	if q.over {
		return
	}
	q.over = true
	c := q.c
	if conn := q.conn; conn != nil && !conn.gaveUp && !conn.hungUp {
		conn.gaveUp = true
		if e == errTimeout {
			c.p.n.afterTrue(pgxCloseAfter, func() { c.hangUp(conn) })
		}
	}
	q.deliver(pgm.Reply{Outcome: pgm.Failed, Closed: true})
}

// deliver gives the machine r, unless the request is over or superseded.
func (q *pgOp) deliver(r pgm.Reply) {
	c := q.c
	s := &c.slots[q.slot]
	if s.gen != q.gen || !s.busy {
		return
	}
	now := c.p.n.now()
	if c.table != nil {
		c.drive(q.slot, c.table.Reply(&s.c, r, now, c.buf[:0]))
		return
	}
	c.drive(q.slot, c.adv.Reply(&s.c, r, now, c.buf[:0]))
}

func itoa(v int64) string { return string(num(v)) }
