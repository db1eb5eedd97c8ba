package sim

import (
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/locksim/locksim/history"
	lockConsul "github.com/locksim/locksim/locks/consul"
)

// sessionID is a session's ID as Consul would show it ("" for none).
func sessionID(id int) string {
	if id == 0 {
		return ""
	}
	return "session-" + strconv.Itoa(id)
}

// consul models Consul's sessions and KV locks (v1.20, as cluster/ runs
// it, with session_ttl_min 1 s) under locks/consul, which is seed 003's
// Consul::Mutex.
//
// Reproduced:
//   - Sessions with a TTL, enforced as Consul enforces it: the leader arms
//     a timer of twice the TTL (Consul's SessionTTLMultiplier) at create
//     and at every renew, on its own clock; when it fires the session is
//     invalidated through a commit. A new leader re-arms every session's
//     timer at the full 2×TTL. A TTL under session_ttl_min is raised to it.
//   - Behavior release: an invalidated (expired or destroyed) session's
//     locks are released (the key's Session cleared) and each key gets the
//     session's lock-delay: no acquire succeeds on it until the delay has
//     passed on the leader's clock. A plain ?release has no lock-delay.
//   - KV acquire fails while another session holds the key or a lock-delay
//     runs; it needs a live session; it bumps LockIndex and ModifyIndex.
//     The token is the ModifyIndex read back with a consistent GET, as
//     locks/consul does.
//   - Blocking queries: a GET with an index waits until the key's
//     ModifyIndex passes it or the wait time (plus Consul's jitter of up to
//     1/16) is over.
//   - The client: create a session, acquire, else a blocking GET of at
//     most PollInterval and a session renew, and again (a session found
//     expired is made anew); once held, a watcher follows the key with
//     5-minute blocking queries and the lease is lost when the key's
//     session is no longer ours (locks/consul.LossReason, shared: "no
//     active session", "taken by session …") or the watch fails; Run's renewer renews the session every
//     RenewEvery and a renew answered "no session" loses the lease. The
//     lost session is destroyed. Release is ?release then session destroy.
//
// Simplified: the leader and its elections (see quorum); blocking queries
// are answered from the one logical state (no stale follower reads); the
// HTTP client has no timeout, as the api client has none, so only the
// server's RPC hold timeout (7 s) turns a stuck request into an error.
type consul struct {
	r        *run
	q        *quorum
	index    uint64
	sessions []*consulSession
	kv       map[string]*consulKey
	ttl      int64
}

type consulSession struct {
	id     int
	alive  bool
	delay  int64
	timer  int   // generation of the TTL timer: bumped by a new leader
	expiry int64 // on the leader's clock
	armed  bool  // a timer event is pending for this generation
	keys   []string
}

type consulKey struct {
	session     int // 0: none
	lockIndex   uint64
	modifyIndex uint64
	delayUntil  int64 // lock-delay, on the leader's clock
	watchers    []*consulWatch
}

type consulWatch struct {
	index uint64
	c     *call
	done  bool
	fire  func(session int, index uint64)
}

// consulTTLMin is cluster/'s session_ttl_min.
const consulTTLMin = int64(time.Second)

func newConsul(r *run, size int) *consul {
	m := &consul{r: r, kv: make(map[string]*consulKey), ttl: max(r.opts.ttl, consulTTLMin)}
	m.q = newQuorum(r, "consul", size, time.Second, time.Millisecond, 7*time.Second)
	m.q.onLeader = m.promote
	return m
}

func (m *consul) leader() *node { return m.q.leaderNode() }
func (m *consul) faultChanged() { m.q.faultChanged() }
func (m *consul) evict(n *node) {}
func (m *consul) client(p *proc) lockClient {
	return &consulClient{m: m, p: p, ep: p.idx % len(m.q.servers)}
}

// destroySession is `consul session destroy` of p's session.
func (m *consul) destroySession(p *proc) {
	if c, ok := p.lc.(*consulClient); ok && c.sid > 0 {
		m.invalidate(m.sessions[c.sid-1])
	}
}

func (m *consul) key(k string) *consulKey {
	ck := m.kv[k]
	if ck == nil {
		ck = &consulKey{}
		m.kv[k] = ck
	}
	return ck
}

// promote is a new leader: every session's timer starts again at 2×TTL.
func (m *consul) promote() {
	for _, s := range m.sessions {
		if s.alive {
			s.timer++
			s.armed = false
			m.arm(s)
		}
	}
}

// arm (re)starts the session's TTL timer on the leader: 2×TTL from now.
// One timer event is pending at a time; when it fires early (the session
// was renewed since), it waits again for the new expiry.
func (m *consul) arm(s *consulSession) {
	l := m.q.leaderNode()
	if l == nil {
		return
	}
	s.expiry = l.now() + 2*m.ttl
	if !s.armed {
		s.armed = true
		m.wait(s, l, s.timer, m.q.term)
	}
}

func (m *consul) wait(s *consulSession, l *node, gen, term int) {
	l.after(s.expiry-l.now(), func() {
		if !s.alive || s.timer != gen || !m.q.isLeader(l, term) {
			return
		}
		if left := s.expiry - l.now(); left > 0 {
			m.wait(s, l, gen, term)
			return
		}
		s.armed = false
		l.after(m.q.commitDelay, func() {
			if s.timer == gen && m.q.isLeader(l, term) && s.expiry <= l.now() {
				m.invalidate(s)
			}
		})
	})
}

func (m *consul) create() int {
	s := &consulSession{id: len(m.sessions) + 1, alive: true, delay: m.r.opts.lockDelay}
	m.sessions = append(m.sessions, s)
	m.index++
	m.arm(s)
	return s.id
}

func (m *consul) session(id int) *consulSession {
	if id <= 0 || id > len(m.sessions) || !m.sessions[id-1].alive {
		return nil
	}
	return m.sessions[id-1]
}

func (m *consul) renewSession(id int) bool {
	s := m.session(id)
	if s != nil {
		m.arm(s)
	}
	return s != nil
}

// invalidate is a session's end: its locks released, with lock-delay.
func (m *consul) invalidate(s *consulSession) {
	if !s.alive {
		return
	}
	s.alive = false
	now := int64(0)
	if l := m.q.leaderNode(); l != nil {
		now = l.now()
	}
	for _, k := range s.keys {
		ck := m.key(k)
		if ck.session == s.id {
			ck.session = 0
			m.index++
			ck.modifyIndex = m.index
			if s.delay > 0 {
				ck.delayUntil = now + s.delay
			}
			m.fire(ck)
		}
	}
	s.keys = nil
}

func (m *consul) fire(ck *consulKey) {
	ws := ck.watchers
	ck.watchers = nil
	for _, w := range ws {
		if !w.done {
			w.done = true
			w.fire(ck.session, ck.modifyIndex)
		}
	}
}

func (m *consul) acquireKV(k string, sid int) bool {
	s := m.session(sid)
	if s == nil {
		return false
	}
	ck := m.key(k)
	if ck.session == sid {
		return true
	}
	if ck.session != 0 || ck.delayUntil > m.q.leaderNode().now() {
		return false
	}
	ck.session = sid
	ck.lockIndex++
	m.index++
	ck.modifyIndex = m.index
	s.keys = append(s.keys, k)
	m.fire(ck)
	return true
}

func (m *consul) releaseKV(k string, sid int) bool {
	ck := m.key(k)
	if ck.session != sid || sid == 0 {
		return false
	}
	ck.session = 0
	m.index++
	ck.modifyIndex = m.index
	m.fire(ck)
	return true
}

// consulClient is locks/consul's client side for one proc.
type consulClient struct {
	m   *consul
	p   *proc
	ep  int
	gen uint32
	sid int
	key string
	tok int64

	waiting  func(bool, int64)
	deadline int64
	index    uint64 // the last index a GET returned
}

func (c *consulClient) server() *node { return c.m.q.servers[c.ep] }

// op is one HTTP request through the quorum; errors (refused, or the
// server's timeout) go to failed.
func (c *consulClient) op(write bool, apply func() func(), failed func()) {
	c.m.r.w.rpc(c.p.n, c.server(), 0, func(r *call) {
		c.m.q.do(r, write, apply, failed)
	}, func(rpcErr) {
		c.ep = (c.ep + 1) % len(c.m.q.servers)
		failed()
	})
}

// blockingGet is GET ?index=&wait= served by the client's server.
func (c *consulClient) blockingGet(key string, index uint64, wait int64, got func(session int, index uint64), failed func()) {
	w := c.m.r.w
	w.rpc(c.p.n, c.server(), 0, func(r *call) {
		ck := c.m.key(key)
		if index == 0 || ck.modifyIndex > index || c.m.q.leader < 0 {
			s, i := ck.session, ck.modifyIndex
			r.reply(func() { got(s, i) })
			return
		}
		cw := &consulWatch{index: index, c: r}
		cw.fire = func(s int, i uint64) { r.reply(func() { got(s, i) }) }
		ck.watchers = append(ck.watchers, cw)
		r.s.after(wait+w.int64n(wait/16+1), func() {
			if !cw.done {
				cw.done = true
				s, i := ck.session, ck.modifyIndex
				r.reply(func() { got(s, i) })
			}
		})
	}, func(rpcErr) {
		c.ep = (c.ep + 1) % len(c.m.q.servers)
		failed()
	})
}

func (c *consulClient) acquire(key string, done func(bool, int64)) {
	c.gen++
	c.key, c.waiting, c.sid, c.index = key, done, 0, 0
	if wt := c.m.r.opts.waitTimeout; wt > 0 {
		c.deadline = c.p.n.now() + wt
	} else {
		c.deadline = 0
	}
	c.createSession(c.gen, c.try)
}

func (c *consulClient) give(ok bool, tok int64) {
	done := c.waiting
	c.waiting = nil
	if !ok && c.sid > 0 {
		c.destroy(c.sid)
		c.sid = 0
	}
	if done != nil {
		done(ok, tok)
	}
}

func (c *consulClient) createSession(gen uint32, then func(uint32)) {
	c.op(true, func() func() {
		id := c.m.create()
		return func() {
			if c.gen != gen {
				return
			}
			c.sid = id
			then(gen)
		}
	}, func() {
		if c.gen == gen {
			c.give(false, 0)
		}
	})
}

// try is one turn of locks/consul's acquire loop.
func (c *consulClient) try(gen uint32) {
	sid, key := c.sid, c.key
	fail := func() {
		if c.gen == gen {
			c.give(false, 0)
		}
	}
	c.op(true, func() func() {
		ok := c.m.acquireKV(key, sid)
		return func() {
			if c.gen != gen {
				return
			}
			if ok {
				c.readToken(gen)
				return
			}
			c.wait(gen)
		}
	}, fail)
}

// readToken is the consistent GET after a successful acquire.
func (c *consulClient) readToken(gen uint32) {
	sid, key := c.sid, c.key
	c.op(false, func() func() {
		ck := c.m.key(key)
		s, idx := ck.session, ck.modifyIndex
		return func() {
			if c.gen != gen {
				return
			}
			if s != sid {
				c.try(gen) // lost between the acquire and the read
				return
			}
			c.tok = int64(idx)
			c.give(true, c.tok)
			c.watch(gen, idx)
		}
	}, func() {
		if c.gen == gen {
			c.give(false, 0)
		}
	})
}

// wait is the blocking GET of at most PollInterval, then a session renew.
func (c *consulClient) wait(gen uint32) {
	waitFor := c.m.r.opts.poll
	if c.deadline != 0 {
		left := c.deadline - c.p.n.now()
		if left <= 0 {
			c.give(false, 0)
			return
		}
		waitFor = min(waitFor, left)
	}
	renew := func() {
		if c.gen != gen {
			return
		}
		sid := c.sid
		c.op(false, func() func() {
			ok := c.m.renewSession(sid)
			return func() {
				if c.gen != gen {
					return
				}
				if ok {
					c.try(gen)
				} else {
					c.createSession(gen, c.try)
				}
			}
		}, func() {
			if c.gen == gen {
				c.give(false, 0)
			}
		})
	}
	c.blockingGet(c.key, c.index, waitFor, func(_ int, i uint64) {
		if c.gen == gen {
			c.index = i
		}
		renew()
	}, func() {
		if c.gen == gen {
			c.p.n.after(waitFor, renew)
		}
	})
}

// watch is the lease's watcher: 5-minute blocking queries on the key.
func (c *consulClient) watch(gen uint32, index uint64) {
	sid := c.sid
	c.blockingGet(c.key, index, int64(5*time.Minute), func(s int, i uint64) {
		if c.gen != gen {
			return
		}
		if reason := lockConsul.LossReason(&api.KVPair{Key: c.key, Session: sessionID(s)}, sessionID(sid)); reason != "" {
			c.lose(reason)
			return
		}
		c.watch(gen, max(i, index))
	}, func() {
		if c.gen == gen {
			c.lose("watch failed")
		}
	})
}

func (c *consulClient) lose(reason string) {
	c.gen++
	c.destroy(c.sid)
	c.sid = 0
	c.p.onLost(reason)
}

func (c *consulClient) destroy(sid int) {
	if sid <= 0 {
		return
	}
	c.op(true, func() func() {
		if s := c.m.session(sid); s != nil {
			c.m.invalidate(s)
		}
		return func() {}
	}, func() {})
}

// renew is Run's renewer: a session renew.
func (c *consulClient) renew() {
	gen, sid := c.gen, c.sid
	c.op(false, func() func() {
		ok := c.m.renewSession(sid)
		return func() {
			if c.gen == gen && !ok {
				c.lose("no active session")
			}
		}
	}, func() {})
}

// release is ?release then session destroy.
func (c *consulClient) release(done func(history.Type)) {
	c.gen++
	sid, key := c.sid, c.key
	c.sid = 0
	if sid == 0 {
		done(history.Fail)
		return
	}
	c.op(true, func() func() {
		ok := c.m.releaseKV(key, sid)
		return func() {
			c.destroy(sid)
			if ok {
				done(history.OK)
			} else {
				done(history.Fail)
			}
		}
	}, func() { done(history.Info) })
}
