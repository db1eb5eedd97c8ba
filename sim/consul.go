package sim

import (
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/locks"
	lockConsul "github.com/locksim/locksim/locks/consul"
	ccm "github.com/locksim/locksim/locks/consul/machine"
	lm "github.com/locksim/locksim/locks/machine"
)

// sessionID is a session's ID as Consul would show it ("" for none).
func sessionID(id int) string {
	if id == 0 {
		return ""
	}
	if t := sessionIDs(); id < len(t) {
		return t[id]
	}
	return "session-" + strconv.Itoa(id)
}

// sessionIDs are the first sessionIDs, made once for every run: a
// consul-ttl run makes a hundred sessions or so, a string each.
var sessionIDs = sync.OnceValue(func() []string {
	t := make([]string, 1024)
	for i := 1; i < len(t); i++ {
		t[i] = "session-" + strconv.Itoa(i)
	}
	return t
})

// consul models Consul's sessions and KV locks (v1.20, as cluster/ runs
// it, with session_ttl_min 1 s) under locks/consul: backend consul, seed
// 003's Consul::Mutex with its empty-body sessions, and consul-ttl,
// locksim's TTL session.
//
// Reproduced:
//   - Client agents (backend consul): each client process has a Consul
//     client agent on its node (consulAgent), which lives through the
//     process's pause, kill and restart and is cut off with the node. An
//     empty-body session is the agent node's: no TTL, lock-delay 15 s,
//     its serfHealth check. An agent that can reach no live server fails
//     its serfHealth on the servers 5.4-6.8 s later (as measured on real
//     servers: consulSerfDetectMin/Max), unless it is back by then; the
//     leader then invalidates its node's sessions, and no new one can be
//     made on it until it is back. Back after it failed, it rejoins only
//     seconds later (consulRejoin: nobody gossips to a member dead for
//     over 30 s), and until then a session create through it is refused.
//   - KV DELETE ?cas=index (the seed's release): deletes the key if its
//     ModifyIndex is index; a GET of a deleted key answers it missing
//     with the delete's index; the next acquire makes it again from
//     LockIndex 1.
//   - Sessions with a TTL, enforced as Consul enforces it: the leader arms
//     a timer of twice the TTL (Consul's SessionTTLMultiplier) at create
//     and at every renew, on its own clock; when it fires the session is
//     invalidated through a commit. A new leader re-arms every session's
//     timer at the full 2×TTL. A TTL under session_ttl_min is refused
//     (the create is an error, as locks/consul's Acquire returns it).
//   - Behavior release: an invalidated (expired or destroyed) session's
//     locks are released (the key's Session cleared) and each key gets the
//     session's lock-delay: no acquire succeeds on it until the delay has
//     passed on the leader's clock. A plain ?release has no lock-delay.
//     The delay is checked when an acquire reaches the leader, before its
//     commit (kvs_endpoint.go kvsPreApply), not when it is applied: an
//     acquire that passed the check just before an invalidation committed
//     takes the key the invalidation freed, lock-delay or not (seen on
//     real servers in holder-cut-off; see consulReq.preApply).
//   - KV acquire fails while another session holds the key or a lock-delay
//     runs; with a session that does not exist it is an error (Acquire
//     returns it); it bumps LockIndex and ModifyIndex, but the holder's
//     acquire again changes nothing (the same value: no write).
//     The token is the ModifyIndex read back with a consistent GET, as
//     locks/consul does.
//   - Blocking queries: a GET with an index waits until the key's
//     ModifyIndex passes it or the wait time (plus Consul's jitter of up to
//     1/16) is over. A blocking query runs on the leader: when the leader
//     is killed every pending one fails (lost connection on the leader,
//     an error from the follower that forwarded it), one pending on a
//     killed follower fails too, and until an election replaces the dead
//     leader a new one fails at once.
//
// The client is not a copy: it is locks/consul's own client machine
// (package locks/consul/machine), which real runs drive over the Consul
// API client, driven here by consulClient over this model, with the
// configuration real runs use (locks/consul.MachineConfig). Its requests
// are consulReqs: a session create, renew or destroy, a KV acquire or
// release, a consistent GET through the quorum, and a GET answered from
// the server's state, blocking when it has an index.
//
// Held to the real servers by the behaviour cases (sim/behaviour's
// ConsulCases, sim.TestConsulModel and behaviour.TestConsulReal): a TTL
// under session_ttl_min refused; a TTL session invalidated at 2×TTL after
// its last renew; acquire while another holds the key, and the holder's
// acquire again; release by a non-holder, and the holder's release without
// lock-delay; acquire with a destroyed session; destroy releasing the key
// with lock-delay; a TTL invalidation releasing it with lock-delay; a
// blocking query returning on its key's change and not on another's; one
// on an unchanged key returning after its wait plus up to 1/16; a new
// leader restarting every TTL timer at 2×TTL (3 servers); blocking
// queries failing when the leader is killed (3 servers); an empty-body
// session through a client agent: the agent node's, no TTL, lock-delay
// 15 s, serfHealth, alive with nothing renewing it; an agent cut off: its
// session invalidated after serfHealth fails (5.5-6.7 s on the real
// servers), the key released with the 15 s lock-delay; the seed's release
// sequence (?release with an empty body, destroy, GET, DELETE ?cas, a
// stale cas deleting nothing, the key made again from LockIndex 1); an
// agent back after a 40 s cut refused a session create at once and made
// one again seconds later (real 18.7-28.6 s); the
// lock-delay race: an acquire sent 0-7 ms after a destroy of the holder's
// session (lock-delay 5 s), through the leader of three servers, takes
// the key in about a quarter of 40 races (real 10/40 and 11/40, the model
// 11-14/40 on seeds 1-5; 2026-12-02), as preApply makes it; an acquire
// refused by a lock-delay answered without a commit; at the heal
// of a client's cut, its PUT in flight fails and its blocking GET is sent
// again and waits anew (Go's HTTP transport replays a GET on a fresh
// connection; the link's reset, see the package doc); a consistent GET
// answered in about 2 ms and a session renewal in about 1 ms through any
// of three servers (the leader's serveTime). Defects they found, fixed:
// both of those were answered in about 50 us (four link delays); an acquire refused by a lock-delay waited for a commit
// (real: answered from the leader at once, 0.6 ms against 2.2 ms for one
// refused after the commit); a cut link held a client's requests and answers and
// delivered them at the heal (a PUT sent into the cut was applied and
// answered; real runs: EOF at the heal); locks.Run's bound on a release
// (one TTL) was missing, so a cut-off holder's release lasted until the
// heal (real runs: cancelled after the TTL); an agent back after it failed was healthy at once (the
// rejoin case; Consul refuses its session creates for seconds); a TTL
// under session_ttl_min was raised to it (Consul refuses the create, so
// every acquire fails); an acquire with a session
// gone was answered false and the client waited, where Consul answers an
// error and Acquire returns it; blocking queries outlived the killed
// leader (and a killed entry server), and new ones waited while the
// leader was dead, where they fail at once and the lease's watcher loses
// the lease.
//
// Simplified: a forwarded read's whole time is spent on the leader (in
// Consul about half a millisecond of it is the follower's forward); the
// leader and its elections (see quorum; a leader change
// takes the one election timeout, 1 s, where three real servers took
// 2.0-2.4 s from the kill to a leader taking writes); blocking queries
// are answered from the one logical state (no stale follower reads; a
// ?consistent blocking GET is served as any other); consul-ttl's HTTP
// client has no timeout, as the api client has none, so only the
// server's RPC hold timeout (7 s) turns a stuck request into an error
// (the seed's requests have Net::HTTP's 60 s read timeout, from the
// client machine); the client agent is not a hop of its own: a client's
// requests go to the server its agent would forward them to, and a
// refused one moves to the next server, as the agent's server list does;
// serfHealth is failed when the agent can reach no server (gossip
// through other agents is not modelled); the cut-off agent's stale view
// after a heal is not modelled: in real consul-agent-cut-off runs its
// push-pull made the servers suspect and fail some other member for a
// moment in 6 of 8 runs (a server five times, harmless; once the new
// holder's agent, whose session was invalidated, so that it lost the
// lock 2.5 s after the heal and never wrote); nor is the cut-off agent's
// own refusal of requests ("No known Consul servers", or an RPC EOF at
// once through the fault proxy) once it has given the servers up: here
// its requests wait for the heal.
type consul struct {
	r        *run
	q        *quorum
	index    uint64
	sessions []*consulSession
	kv       map[string]*consulKey
	keys     []*consulKey // kv's, in the order they were made
	keys0    [1]*consulKey
	ttl      int64
	// ttlSession: locksim's TTL session (backend consul-ttl), not the
	// seed's agent session (consul).
	ttlSession bool
	reqs       *arena[consulReq]
	sess       *arena[consulSession]
	timers     *arena[sessionTimer]
	ctimers    *arena[ccTimer]
	leases     *arena[ccm.Lease]
	agents     []*consulAgent // the client agents, once one has made a session
}

// consulReqs, consulSessions, sessionTimers and ccTimers keep the memory
// of these from one run to the next.
var (
	consulReqs     arenaPool[consulReq]
	consulSessions arenaPool[consulSession]
	sessionTimers  arenaPool[sessionTimer]
	ccTimers       arenaPool[ccTimer]
	ccLeases       arenaPool[ccm.Lease]
)

type consulSession struct {
	id     int
	name   string // its ID as the client sees it (sessionID)
	alive  bool
	delay  int64
	ttl    int64
	timer  int   // generation of the TTL timer: bumped by a new leader
	expiry int64 // on the leader's clock
	armed  bool  // a timer event is pending for this generation
	keys   []*consulKey
	keys0  [1]*consulKey // keys' first array
	// agent is the client agent whose node the session belongs to (an
	// empty-body session: no TTL, its node's serfHealth check); nil for
	// a TTL session.
	agent *consulAgent
}

// consulAgent is the Consul client agent beside a client process, on the
// client's node: it lives while the process is paused, killed or
// restarted, and is cut off with the client. Its serfHealth check fails
// on the servers serfDetect after it lost every server (measured on three
// real servers: see consulSerfDetect), and then the leader invalidates
// its node's sessions.
type consulAgent struct {
	n      *node
	gen    int  // bumped when it is cut off or back: a pending detection checks it
	cut    bool // cut off from every server
	failed bool // serfHealth critical: its sessions are gone, no new ones
}

type consulKey struct {
	session     int  // 0: none
	deleted     bool // by a DELETE; an acquire makes it again
	lockIndex   uint64
	modifyIndex uint64
	delayUntil  int64        // lock-delay, on the leader's clock
	watchers    []*consulReq // blocking GETs waiting for a change
}

// consulTTLMin is cluster/'s session_ttl_min.
const consulTTLMin = int64(time.Second)

// consulCommit is the leader's commit delay (plus a uniform jitter of the
// same size): 1.6-3.2 ms, so that an acquire answers in about 2.5 ms, as
// the behaviour case "a write commits in milliseconds ..." measured on
// cluster/'s Consul (through the leader p50 2.48 ms, p90 3.30 ms; through
// a follower p50 3.20 ms; 2026-12-02; the model had 1-2 ms). It is also
// the window of the lock-delay race (consulReq.preApply).
const consulCommit = 1600 * time.Microsecond

func newConsul(r *run, size int, ttlSession bool) *consul {
	m := &consul{r: r, kv: make(map[string]*consulKey), ttl: r.opts.ttl, ttlSession: ttlSession}
	m.q = newQuorum(r, "consul", size, time.Second, consulCommit, 7*time.Second)
	for _, n := range m.q.servers {
		n.resets = true
	}
	m.q.onLeader = m.promote
	m.keys = m.keys0[:0]
	m.reqs = consulReqs.get(r)
	m.sess = consulSessions.get(r)
	m.timers = sessionTimers.get(r)
	m.ctimers = ccTimers.get(r)
	m.leases = ccLeases.get(r)
	return m
}

func (m *consul) leader() *node { return m.q.leaderNode() }
func (m *consul) faultChanged() { m.q.faultChanged(); m.crashed(); m.agentsChanged() }
func (m *consul) evict(n *node) {}
func (m *consul) client(p *proc) lockClient {
	o := locks.Options{
		TTL:          time.Duration(m.r.opts.ttl),
		PollInterval: time.Duration(m.r.opts.poll),
		WaitTimeout:  time.Duration(m.r.opts.waitTimeout),
		Owner:        p.name,
	}
	delay := time.Duration(m.r.opts.lockDelay)
	if delay == 0 {
		delay = -1 // none: locks/consul's Config says so with a negative delay
	}
	ttl := m.ttlSession
	mc := ccm.New(lockConsul.MachineConfig(lockConsul.Config{LockDelay: delay, TTLSession: ttl}, o))
	return &consulClient{m: m, p: p, ep: p.idx % len(m.q.servers), mc: mc, ttl: ttl, buf: make([]ccm.Output, 0, 4)}
}

// destroySession is `consul session destroy` of p's session.
func (m *consul) destroySession(p *proc) {
	if c, ok := p.lc.(*consulClient); ok {
		if sid := c.sid(); sid > 0 {
			m.invalidate(m.sessions[sid-1])
		}
	}
}

func (m *consul) key(k string) *consulKey {
	ck := m.kv[k]
	if ck == nil {
		ck = &consulKey{}
		m.kv[k] = ck
		m.keys = append(m.keys, ck)
	}
	return ck
}

// crashed runs after every fault (faultChanged): if a server was killed,
// the blocking GETs that were on it lose their connection, and if it was
// the leader, every other one fails too:
// a blocking query runs on the leader (the default consistency), and the
// server that forwarded it answers the lost connection with an error.
// (No GET waits on a server that was down before, nor, while the leader
// is down, at all: see serveGet.)
func (m *consul) crashed() {
	l := m.q.leaderNode()
	leader := l != nil && l.down
	for _, ck := range m.keys {
		ws := ck.watchers[:0]
		for _, q := range ck.watchers {
			switch {
			case q.call.s.down:
				q.wdone = true
				w := m.r.w
				w.schedule(w.now+w.linkDelay(), q.call.c, nil, evRefused, &q.call, nil)
			case leader:
				q.wdone = true
				q.call.failFrom(q.call.s)
			default:
				ws = append(ws, q)
			}
		}
		clear(ck.watchers[len(ws):])
		ck.watchers = ws
	}
}

// promote is a new leader: every session's timer starts again at 2×TTL.
func (m *consul) promote() {
	for _, s := range m.sessions {
		if s.alive && s.ttl > 0 {
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
	s.expiry = l.now() + 2*s.ttl
	if !s.armed {
		s.armed = true
		m.wait(s, l, s.timer, m.q.term)
	}
}

func (m *consul) wait(s *consulSession, l *node, gen, term int) {
	t := m.timers.alloc()
	t.m, t.s, t.l, t.gen, t.term = m, s, l, gen, term
	t.wait()
}

// sessionTimer is a session's TTL timer on the leader l, for the timer
// generation gen in term: it waits for the expiry (again if the session
// was renewed meanwhile), then the commit of the invalidation.
type sessionTimer struct {
	m         *consul
	s         *consulSession
	l         *node
	gen, term int
	commit    bool
}

func (t *sessionTimer) wait() { t.l.afterH(t.s.expiry-t.l.now(), t) }

func (t *sessionTimer) handle() {
	m, s, l := t.m, t.s, t.l
	if t.commit {
		if s.timer == t.gen && m.q.isLeader(l, t.term) && s.expiry <= l.now() {
			m.invalidate(s)
		}
		return
	}
	if !s.alive || s.timer != t.gen || !m.q.isLeader(l, t.term) {
		return
	}
	if left := s.expiry - l.now(); left > 0 {
		t.wait()
		return
	}
	s.armed = false
	t.commit = true
	l.afterH(m.q.commitDelay, t)
}

// create is a session create: its ID, or 0 if it is refused (a TTL
// under session_ttl_min). With agent, the body is empty (Consul::Mutex's):
// no TTL, Consul's default lock-delay (15 s), the agent node's serfHealth
// check -- refused while that check is critical.
func (m *consul) create(agent *consulAgent) int {
	ttl, delay := m.ttl, m.r.opts.lockDelay
	if agent != nil {
		if agent.failed {
			return 0
		}
		ttl, delay = 0, int64(consulDefaultLockDelay)
	} else if ttl < consulTTLMin {
		return 0
	}
	s := m.sess.alloc()
	s.id, s.alive, s.delay, s.ttl, s.agent = len(m.sessions)+1, true, delay, ttl, agent
	s.name = sessionID(s.id)
	s.keys = s.keys0[:0]
	m.sessions = append(m.sessions, s)
	m.index++
	if ttl > 0 {
		m.arm(s)
	}
	return s.id
}

// agent is the client agent on node n.
func (m *consul) agent(n *node) *consulAgent {
	for _, a := range m.agents {
		if a.n == n {
			return a
		}
	}
	a := &consulAgent{n: n}
	m.agents = append(m.agents, a)
	a.cut = !m.reachesServer(n)
	return a
}

// reachesServer says whether node n can talk with some live server both
// ways (gossip reaches a member through any other: the model asks only
// for one server).
func (m *consul) reachesServer(n *node) bool {
	for _, s := range m.q.servers {
		if !s.down && m.r.w.reachable(n, s) {
			return true
		}
	}
	return false
}

// consulSerfDetect is the time from a client agent's cut to the
// invalidation of its sessions on three real servers: serf's failure
// detection (a probe every second, then the suspicion timeout, 4 s at
// least with this few members) and the leader's reconcile: 5.44, 5.60,
// 5.65, 5.83, 6.35 s (go test ./cluster -run TestConsulClientAgents -v
// -count 5, three servers and two agents) and 6.60, 5.53, 6.72 s
// (sim/behaviour's TestConsulReal, three servers and one agent); drawn
// uniformly between 5.4 and 6.8 s.
const (
	consulSerfDetectMin = 5400 * time.Millisecond
	consulSerfDetectMax = 6800 * time.Millisecond
)

// consulRejoin is the time from the heal of a failed agent's cut (of 40
// s and more) to the servers seeing it alive again, when a session
// create through it works again: until then its serfHealth stays
// critical. Nobody gossips to a member dead for over 30 s (memberlist's
// gossip to the dead), so it takes a serf reconnect or push-pull to find
// it. Measured on cluster/'s servers (2026-12-02): consul-agent-cut-off's
// 50 s cut, eight real runs (the servers' "member joined, marking health
// alive" after the heal, less the heal's time, which is known to about
// ±0.7 s): about 4.0, 5.0, 5.0, 5.2, 5.3, 5.7, 6.1 s, and once about 28
// s. The behaviour case "an agent back after a long cut ..." (40 s cut,
// three servers and that one agent) took longer: 18.7, 18.9, 28.6, 29.3 s
// (go test ./sim/behaviour -run 'TestConsulReal/an_agent_back' -v); why
// the scenario's agent (beside two other agents, its client sending all
// along) comes back sooner is not known. Drawn as in the scenario's runs:
// uniformly between consulRejoinMin and Max, and in one heal of
// consulRejoinSlowOdds between Max and consulRejoinSlowMax instead.
const (
	consulRejoinMin      = 3500 * time.Millisecond
	consulRejoinMax      = 6500 * time.Millisecond
	consulRejoinSlowMax  = 30 * time.Second
	consulRejoinSlowOdds = 8
)

// agentsChanged runs after every fault: an agent newly cut off from every
// server is failed serfDetect later unless it is back by then; an agent
// back before that is healthy at once, and one back after it rejoins
// consulRejoin later (until then it is still failed).
func (m *consul) agentsChanged() {
	w := m.r.w
	for _, a := range m.agents {
		cut := !m.reachesServer(a.n)
		if cut == a.cut {
			continue
		}
		a.cut = cut
		a.gen++
		gen := a.gen
		if !cut {
			if a.failed {
				d := int64(consulRejoinMin) + w.int64n(int64(consulRejoinMax-consulRejoinMin))
				if w.int64n(consulRejoinSlowOdds) == 0 {
					d = int64(consulRejoinMax) + w.int64n(int64(consulRejoinSlowMax-consulRejoinMax))
				}
				w.at(w.now+d, func() {
					if a.gen == gen {
						a.failed = false
					}
				})
			}
			continue
		}
		d := int64(consulSerfDetectMin) + w.int64n(int64(consulSerfDetectMax-consulSerfDetectMin))
		w.at(w.now+d, func() { m.agentFailed(a, gen) })
	}
}

// agentFailed is serfHealth failing for a on the servers, if it is still
// cut off since the cut of generation gen: the leader invalidates its
// sessions (a commit), or, with no leader, the next one does once there
// is one.
func (m *consul) agentFailed(a *consulAgent, gen int) {
	if a.gen != gen {
		return
	}
	l := m.q.leaderNode()
	if l == nil || l.down {
		w := m.r.w
		w.at(w.now+int64(time.Second), func() { m.agentFailed(a, gen) })
		return
	}
	a.failed = true
	l.after(m.q.commitDelay, func() {
		if a.gen != gen {
			return
		}
		for _, s := range m.sessions {
			if s.alive && s.agent == a {
				m.invalidate(s)
			}
		}
	})
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
	for _, ck := range s.keys {
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

// fire answers the blocking GETs waiting on ck. Answering only sends
// messages, so nothing is added to the watchers meanwhile: the slice is
// reused.
func (m *consul) fire(ck *consulKey) {
	ws := ck.watchers
	for _, w := range ws {
		w.answerGet()
	}
	clear(ws)
	ck.watchers = ws[:0]
}

// acquireKV is a KV acquire: ok, or invalid if the session does not exist
// (an error, not false). The holder's acquire again changes nothing (the
// same value: Consul skips a write that changes nothing).
func (m *consul) acquireKV(ck *consulKey, sid int) (ok, invalid bool) {
	s := m.session(sid)
	if s == nil {
		return false, true
	}
	if ck.session == sid && !ck.deleted {
		return true, false
	}
	if ck.session != 0 {
		return false, false // the lock-delay was checked before the commit (preApply)
	}
	if ck.deleted {
		ck.deleted, ck.lockIndex = false, 0
	}
	ck.session = sid
	ck.lockIndex++
	m.index++
	ck.modifyIndex = m.index
	s.keys = append(s.keys, ck)
	m.fire(ck)
	return true, false
}

// deleteKV is DELETE ?cas=index: the key goes if its ModifyIndex is
// index (true), else nothing (false). A missing key's index, as a GET
// answers it, is the index of its delete.
func (m *consul) deleteKV(ck *consulKey, index uint64) bool {
	if ck.deleted || ck.modifyIndex == 0 || ck.modifyIndex != index {
		return false
	}
	if ck.session != 0 {
		if s := m.session(ck.session); s != nil {
			s.keys = slices.DeleteFunc(s.keys, func(k *consulKey) bool { return k == ck })
		}
	}
	ck.deleted, ck.session, ck.lockIndex = true, 0, 0
	m.index++
	ck.modifyIndex = m.index
	m.fire(ck)
	return true
}

func (m *consul) releaseKV(ck *consulKey, sid int) bool {
	if ck.session != sid || sid == 0 {
		return false
	}
	ck.session = 0
	m.index++
	ck.modifyIndex = m.index
	m.fire(ck)
	return true
}

// consulClient is the simulator's driver of locks/consul's client machine
// (package locks/consul/machine) for one proc: it sends the requests the
// machine asks for as consulReqs to the server the client talks to, sets
// its timer on the proc's clock, and gives it the answers. It decides
// nothing of the algorithm. One request of each kind may be in progress
// at once (a slot each), as in real runs: the acquire, locks.Run's
// renewal (a renewal still running when the next is due is not doubled,
// as Run's renewer waits for it), the release, and the lease's watch.
type consulClient struct {
	m     *consul
	p     *proc
	ep    int
	mc    *ccm.Machine
	ttl   bool // consul-ttl: one server's address, as in real runs
	key   string
	ck    *consulKey // m.key(key)
	lease *ccm.Lease // the current grant, until its release starts or it is lost
	slots [4]ccSlot
	buf   []ccm.Output // the machine's outputs, reused

	free []*consulReq // requests done with, to reuse (consulReq.reuse)

	// sidName and sidNum are the last session ID sessionNum parsed for
	// the client, and its number.
	sidName string
	sidNum  int
}

// sessionNum is sessionNum(id), from the last one parsed when it is that.
func (c *consulClient) sessionNum(id string) int {
	if id != c.sidName {
		c.sidName, c.sidNum = id, sessionNum(id)
	}
	return c.sidNum
}

// The requests a consulClient can have in progress at once: one of each.
const (
	ccAcquire uint8 = iota
	ccRenew
	ccRelease
	ccWatch
	ccBackground // not a slot: a session destroyed on the way out, its answer dropped
)

// ccSlot is one request in progress.
type ccSlot struct {
	c       ccm.Call
	gen     uint32 // bumped at every request: stale answers check it
	busy    bool
	acqDone acquireWaiter
	relDone releaseWaiter
}

func (c *consulClient) server() *node { return c.m.q.servers[c.ep] }

// sid is the session the client has now: its lease's, or the one its
// acquire in progress made (0: none).
func (c *consulClient) sid() int {
	if c.lease != nil && !c.lease.Lost() {
		return c.sessionNum(c.lease.Session)
	}
	if s := &c.slots[ccAcquire]; s.busy {
		return c.sessionNum(s.c.Session())
	}
	return 0
}

// consulReq is one HTTP request of a consulClient: what it asks (kind),
// its answer, and for which slot of the client. The call and its way
// through the quorum are embedded, and the GET's wait on the server is the
// request itself under another type (crTimer), so a request is one object
// from the run's arena and no closures, and once done with it is reused
// (reuse): the poll loop makes three requests every PollInterval, and this
// is most of what a Consul run does.
type consulReq struct {
	call
	qr    qreq
	c     *consulClient
	kind  uint8
	write bool
	slot  uint8
	gen   uint32
	sid   int
	ck    *consulKey // the key's state (the client's key)

	// GET: the index to wait past and the longest wait.
	index uint64
	wait  int64
	wdone bool // the blocking GET has answered
	timer bool // its wait is pending on the server (a crTimer event)

	got   bool  // the client has had the answer
	timed bool  // sent with a client timeout: never reused (a fifo timer may still hold it)
	d     int64 // that timeout (send's d)

	// crTry: the leader found the key under lock-delay when the request
	// reached it, before the commit (Consul's kvsPreApply).
	delayed bool

	empty bool // crCreate: an empty body (the session of the client's agent)

	// The answer.
	ex      bool // GETs: the key exists
	ok      bool
	invalid bool   // crTry: the session does not exist (an error)
	id      int    // crCreate: 0 if the TTL is refused (an error)
	s       int    // crToken, GETs: the key's session
	idx     uint64 // crToken, GETs: the key's ModifyIndex
}

// Kinds of consulReq: the model's HTTP requests.
const (
	crCreate  uint8 = iota // session create
	crTry                  // KV acquire
	crToken                // a consistent GET, through the quorum
	crDestroy              // session destroy
	crRenew                // session renew
	crRelease              // KV ?release
	crGet                  // a GET from the server's state, blocking with an index
	crDelete               // KV DELETE ?cas=index
)

// exists says whether a GET finds the key.
func (ck *consulKey) exists() bool { return ck.modifyIndex > 0 && !ck.deleted }

// req is a new request of kind for the client's key. A request stays its
// client's: what does not change from one request to the next (its
// client, its call's ends and handler, its quorum) is set once, and a
// reused one is reset field by field rather than cleared, so that
// pointers are written only when they change (every pointer written costs
// a write barrier while the GC marks).
func (c *consulClient) req(kind uint8, write bool, slot uint8, gen uint32) *consulReq {
	var q *consulReq
	if n := len(c.free); n > 0 {
		q = c.free[n-1]
		c.free = c.free[:n-1]
		// Left by the last request: its answer and state. The stale
		// pointers of qr (l, from) are set before they are read.
		q.call.done, q.qr.answered = false, false
		q.index, q.wait, q.wdone, q.timer, q.got = 0, 0, false, false, false
		q.ok, q.invalid, q.id, q.s, q.idx, q.delayed, q.ex, q.empty = false, false, 0, 0, 0, false, false, false
	} else {
		q = c.m.reqs.alloc()
		q.c = c
		q.call.w, q.call.c, q.call.h = c.m.r.w, c.p.n, q
		q.qr.q, q.qr.c, q.qr.o, q.qr.pre = c.m.q, &q.call, q, q
	}
	q.kind, q.write, q.slot, q.gen, q.sid = kind, write, slot, gen, 0
	if q.ck != c.ck {
		q.ck = c.ck
	}
	return q
}

// reuse gives the request back for a next one once nothing refers to it
// any more: the client has had its answer (which ends its way through the
// quorum, see qreq.answer, and takes it off the timeout list), no GET wait
// is pending on the server (the GET is then off its key's watchers too),
// and no timeout waits on a paused entry server (qreq.held). A request
// that ends otherwise (an error, a crash), or that had a client timeout
// (whose fifo timer may outlive the answer), is simply not reused.
func (q *consulReq) reuse() {
	if q.got && !q.timer && !q.qr.held && !q.timed {
		q.c.free = append(q.c.free, q)
	}
}

// send is the HTTP request to the client's server, its answer bounded by
// d of true time (0: no bound, as the api client has none: errors are
// then a refusal or the server's own, the quorum's request timeout).
func (q *consulReq) send(d int64) {
	if s := q.c.server(); q.call.s != s {
		q.call.s = s
	}
	q.timed, q.d = d > 0, d
	q.call.w.startTrue(&q.call, d)
}

// replayable says whether Go's HTTP transport sends the request again on
// a fresh connection when its connection is closed before an answer: a
// GET (net/http's isReplayable); every other request fails (EOF). Found by
// the behaviour case "a blocking query in flight when the client's cut
// heals...": the real GET did not fail at the heal, it blocked again.
func (q *consulReq) replayable() bool { return q.kind == crGet || q.kind == crToken }

// again is a copy of the request, to be sent anew.
func (q *consulReq) again() *consulReq {
	n := q.c.req(q.kind, q.write, q.slot, q.gen)
	n.index, n.wait, n.sid, n.empty, n.ck = q.index, q.wait, q.sid, q.empty, q.ck
	return n
}

// replay is the transport's resend of a GET whose connection was reset
// (the reset ended q: its late answer goes nowhere, and it is not reused).
func (q *consulReq) replay() { q.again().send(q.d) }

// serve runs on the server: a GET is answered from the state (blocking
// until the key changes or its wait is over), the rest go through the
// quorum.
func (q *consulReq) serve(*call) {
	m := q.c.m
	if q.kind == crGet {
		q.serveGet()
		return
	}
	q.qr.write = q.write
	m.q.start(&q.qr)
}

// serveTime is how long the leader takes to answer a read that goes
// through it (quorum's readServer): a consistent GET verifies its
// leadership with a round to the followers, and a session renewal resets
// the session's timer there (consulConsistentServe, consulRenewServe).
// A GET from the server's own state (crGet) is not a quorum read.
func (q *consulReq) serveTime() int64 {
	switch q.kind {
	case crToken:
		return consulConsistentServe.draw(q.c.m.r.w)
	case crRenew:
		return consulRenewServe.draw(q.c.m.r.w)
	}
	return 0
}

// preApply runs on the leader when the request reaches it, before the
// commit: Consul checks a lock's lock-delay there (kvs_endpoint.go
// kvsPreApply, "enforced before commit", on the leader's wall clock), not
// when the entry is applied. So an acquire that passed the check just
// before a session's invalidation was committed is applied after it, on
// the key the invalidation freed: the lock-delay does not stop it. One it
// stops is answered false at once, without a commit (kvsPreApply returns
// before raftApply).
func (q *consulReq) preApply() bool {
	if q.kind == crTry {
		q.delayed = q.ck.delayUntil > q.c.m.q.leaderNode().now()
	}
	return q.delayed
}

// apply runs on the leader and keeps the answer.
func (q *consulReq) apply() {
	m := q.c.m
	switch q.kind {
	case crCreate:
		var a *consulAgent
		if q.empty {
			a = m.agent(q.c.p.n)
		}
		q.id = m.create(a)
	case crTry:
		if !q.delayed { // refused before the commit: no session check
			q.ok, q.invalid = m.acquireKV(q.ck, q.sid)
		}
	case crToken:
		q.s, q.idx, q.ex = q.ck.session, q.ck.modifyIndex, q.ck.exists()
	case crDelete:
		q.ok = m.deleteKV(q.ck, q.index)
	case crRenew:
		q.ok = m.renewSession(q.sid)
	case crDestroy:
		if s := m.session(q.sid); s != nil {
			m.invalidate(s)
		}
	case crRelease:
		q.ok = m.releaseKV(q.ck, q.sid)
	}
}

// serveGet is GET ?index=&wait= on the server.
func (q *consulReq) serveGet() {
	m := q.c.m
	w := m.r.w
	ck := q.ck
	if l := m.q.leaderNode(); l != nil && l.down {
		// Forwarded to the leader, which is dead: refused (until an
		// election replaces it).
		q.wdone = true
		q.call.failFrom(q.call.s)
		return
	}
	if q.index == 0 || ck.modifyIndex > q.index || m.q.leader < 0 {
		q.answerGet()
		return
	}
	ck.watchers = append(ck.watchers, q)
	s := q.call.s
	d := q.wait + w.int64n(q.wait/16+1)
	at := w.now + s.clk.real(d)
	q.timer = at <= w.end // else push drops it
	w.schedule(at, s, nil, evHandler, (*crTimer)(q), nil)
}

// answerGet answers a GET with the key's state now, once.
func (q *consulReq) answerGet() {
	if q.wdone {
		return
	}
	q.wdone = true
	q.s, q.idx, q.ex = q.ck.session, q.ck.modifyIndex, q.ck.exists()
	q.call.replyH()
}

// crTimer is a blocking GET's wait on the server: if the key has not
// changed meanwhile, the GET leaves the key's watchers (in order: they are
// answered in order) and answers.
type crTimer consulReq

func (t *crTimer) handle() {
	q := (*consulReq)(t)
	q.timer = false
	if !q.wdone {
		ws := q.ck.watchers
		for i, w := range ws {
			if w == q {
				copy(ws[i:], ws[i+1:])
				ws[len(ws)-1] = nil
				q.ck.watchers = ws[:len(ws)-1]
				break
			}
		}
		q.answerGet()
	}
	q.reuse()
}

// replied runs on the client with the answer.
func (q *consulReq) replied() {
	q.got = true
	r := ccm.Reply{}
	m := q.c.m
	switch q.kind {
	case crCreate:
		if q.id == 0 { // refused (a TTL under session_ttl_min): an error
			r.Err = true
		} else {
			r.Session = m.sessions[q.id-1].name
		}
	case crTry:
		r.Err, r.OK = q.invalid, q.ok
	case crToken, crGet:
		r.Exists, r.ModifyIndex, r.Index = q.ex, q.idx, q.idx
		if q.s > 0 {
			r.Holder = m.sessions[q.s-1].name
		}
		r.LockIndex = q.ck.lockIndex
	default:
		r.OK = q.ok
	}
	slot, gen := q.slot, q.gen
	c := q.c
	q.reuse()
	c.answer(slot, gen, r)
}

// failed runs on the client when the request got no answer: refused,
// timed out or the server's error. Refused or timed out, a client of the
// seed's (backend consul) moves to the next server, as its agent's server
// list does; consul-ttl's client, like locks/consul's over the API client
// in real runs, has one server's address and keeps it.
func (q *consulReq) failed(e rpcErr) {
	c := q.c
	if e != errServer && !c.ttl {
		c.ep = (c.ep + 1) % len(c.m.q.servers)
	}
	c.answer(q.slot, q.gen, ccm.Reply{Err: true})
}

// answer feeds slot's call the reply of its request of generation gen.
func (c *consulClient) answer(slot uint8, gen uint32, r ccm.Reply) {
	if slot == ccBackground {
		return
	}
	s := &c.slots[slot]
	if s.gen != gen || !s.busy {
		return
	}
	c.drive(slot, c.mc.Reply(&s.c, r, c.p.n.now(), c.buf[:0]))
}

// sessionNum is the model's number of a session ID (0: none).
func sessionNum(id string) int {
	if len(id) <= len("session-") {
		return 0
	}
	n, err := strconv.Atoi(id[len("session-"):])
	if err != nil {
		return 0
	}
	return n
}

func (c *consulClient) acquire(key string, done acquireWaiter) {
	if c.key != key || c.ck == nil {
		c.key, c.ck = key, c.m.key(key)
	}
	s := c.start(ccAcquire)
	s.acqDone = done
	// The grant, if any, lives in the run's arena: no allocation, and
	// never reused within the run.
	lease := c.m.leases.alloc()
	c.drive(ccAcquire, c.mc.Request(&s.c, ccm.Request{Kind: ccm.Acquire, Key: key, Lease: lease}, c.p.n.now(), c.buf[:0]))
}

// renew is Run's renewer: the machine's renewal.
func (c *consulClient) renew() {
	if c.lease == nil || c.slots[ccRenew].busy {
		return // the last renewal is still running: locks.Run waits for it
	}
	s := c.start(ccRenew)
	c.drive(ccRenew, c.mc.Request(&s.c, ccm.Request{Kind: ccm.Renew, Lease: c.lease}, c.p.n.now(), c.buf[:0]))
}

// release stops the watch and releases the lease.
func (c *consulClient) release(done releaseWaiter) {
	// An acquire's late answers are stale; the watch stops, and so does a
	// renewal in flight (locks.Run cancels its renewer before it releases).
	for _, i := range [...]uint8{ccAcquire, ccWatch, ccRenew} {
		c.slots[i].gen++
		c.slots[i].busy = false
	}
	lease := c.lease
	c.lease = nil
	if lease == nil {
		done.released(history.Fail)
		return
	}
	s := c.start(ccRelease)
	s.relDone = done
	// locks.Run bounds the release by one TTL on the client's clock: its
	// context ends the request in flight then.
	t := c.m.ctimers.alloc()
	t.c, t.slot, t.gen, t.deadline = c, ccRelease, s.gen, true
	c.p.n.afterH(c.m.r.opts.ttl, t)
	c.drive(ccRelease, c.mc.Request(&s.c, ccm.Request{Kind: ccm.Release, Lease: lease}, c.p.n.now(), c.buf[:0]))
}

// crashed is the client process killed: it sends nothing more, and what
// it had in flight is answered to nobody. Its agent lives on, and with it
// its sessions.
func (c *consulClient) crashed() {
	for i := range c.slots {
		c.slots[i].gen++
		c.slots[i].busy = false
	}
	c.lease = nil
}

// start begins a request in slot i.
func (c *consulClient) start(i uint8) *ccSlot {
	s := &c.slots[i]
	s.gen++
	s.busy = true
	return s
}

// drive carries out the outputs of slot i's machine call. out is c.buf:
// OutDone is always the last output, so a request that finish starts
// (from a proc's callback) may reuse the buffer.
func (c *consulClient) drive(i uint8, out []ccm.Output) {
	s := &c.slots[i]
	var next *ccm.Output
	for k := range out {
		o := &out[k]
		switch o.Kind {
		case ccm.OutSend:
			if o.Background {
				c.send(ccBackground, 0, o)
				continue
			}
			next = o
		case ccm.OutTimer:
			next = o
		case ccm.OutGrant:
			c.lease = o.Lease
		case ccm.OutLost:
			c.p.onLost(o.LossText(""))
		case ccm.OutDone:
			c.finish(i, o.Result)
			return
		}
	}
	if next == nil {
		return
	}
	if next.Kind == ccm.OutTimer {
		t := c.m.ctimers.alloc()
		t.c, t.slot, t.gen, t.deadline = c, i, s.gen, false
		c.p.n.afterH(int64(next.D), t)
		return
	}
	c.send(i, s.gen, next)
}

// send is the request of output o for slot i.
func (c *consulClient) send(i uint8, gen uint32, o *ccm.Output) {
	op := &o.Op
	var q *consulReq
	switch op.Kind {
	case ccm.OpCreate:
		q = c.req(crCreate, true, i, gen) // the model's sessions take the run's TTL and lock-delay
		q.empty = op.Empty
	case ccm.OpAcquire:
		q = c.req(crTry, true, i, gen)
	case ccm.OpGet:
		if op.Consistent && op.Index == 0 {
			q = c.req(crToken, false, i, gen)
		} else {
			q = c.req(crGet, false, i, gen)
			q.index, q.wait = op.Index, int64(op.Wait)
			if q.wait == 0 {
				q.wait = int64(ccm.WatchWait) // Consul's default wait
			}
		}
	case ccm.OpRenew:
		q = c.req(crRenew, false, i, gen)
	case ccm.OpDestroy:
		q = c.req(crDestroy, true, i, gen)
	case ccm.OpRelease:
		q = c.req(crRelease, true, i, gen)
	case ccm.OpDelete:
		q = c.req(crDelete, true, i, gen)
		q.index = op.Index
	}
	q.sid = c.sessionNum(op.Session)
	q.send(int64(o.D))
}

// finish ends slot i's request with res.
func (c *consulClient) finish(i uint8, res lm.Result) {
	s := &c.slots[i]
	s.busy = false
	switch i {
	case ccAcquire:
		if res != lm.OK {
			endAcquire(s.acqDone, res, 0)
			return
		}
		lease := c.lease
		s.acqDone.acquired(true, int64(lease.Token))
		if c.lease == lease && !lease.Lost() {
			w := c.start(ccWatch)
			c.drive(ccWatch, c.mc.Request(&w.c, ccm.Request{Kind: ccm.Watch, Lease: lease}, c.p.n.now(), c.buf[:0]))
		}
	case ccRelease:
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

// lose is the lease lost for reason (a guarded operation's session check
// failed): marked lost, its session destroyed.
func (c *consulClient) lose(reason string) {
	if c.lease == nil {
		return
	}
	for _, o := range c.mc.Lose(c.lease, ccm.LossWatch, "", c.buf[:0]) {
		switch o.Kind {
		case ccm.OutLost:
			c.p.onLost(reason)
		case ccm.OutSend:
			c.send(ccBackground, 0, &o)
		}
	}
}

// ccTimer is a machine's timer (the sleep after a failed wait), from the
// run's arena.
type ccTimer struct {
	c    *consulClient
	slot uint8
	gen  uint32
	// deadline: locks.Run's bound on a release, which cancels it (the
	// answer of the request in flight is then stale), not a machine timer.
	deadline bool
}

func (t *ccTimer) stopped() bool {
	s := &t.c.slots[t.slot]
	return s.gen != t.gen || !s.busy
}

func (t *ccTimer) handle() {
	if t.stopped() {
		return
	}
	c := t.c
	s := &c.slots[t.slot]
	if t.deadline {
		s.gen++
		c.drive(t.slot, c.mc.Cancel(&s.c, c.p.n.now(), c.buf[:0]))
		return
	}
	c.drive(t.slot, c.mc.Fire(&s.c, c.p.n.now(), c.buf[:0]))
}
