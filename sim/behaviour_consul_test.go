package sim

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/sim/behaviour"
)

// consulModel is the simulator's Consul (consul, its quorum and its
// servers) driven in virtual time, for the behaviour cases. Every
// operation but session info is a consulReq of the model's own kinds,
// sent from a client node through the server it talks to, the quorum and
// the leader, as the model's lock client sends them; only the answer
// goes to a probe of the test's instead of the client's logic.
type consulModel struct {
	w      *world
	m      *consul
	c      *consulClient   // the client node and the server it talks to (ep)
	agents []*consulClient // the client agents' nodes, each talking to a server
	logf   func(format string, args ...any)
}

// Logf shows a case's measurements (go test -v).
func (m *consulModel) Logf(format string, args ...any) {
	if m.logf != nil {
		m.logf(format, args...)
	}
}

func newConsulModel(seed uint64, servers, agents int) *consulModel {
	r := &run{w: newWorld(seed, 24*time.Hour)}
	m := newConsul(r, servers, false)
	r.be = m
	n := r.w.addNode("client")
	c := &consulClient{m: m, p: &proc{r: r, n: n, name: "client"}}
	cm := &consulModel{w: r.w, m: m, c: c}
	for i := range agents {
		name := fmt.Sprintf("a%d", i+1)
		cm.agents = append(cm.agents, &consulClient{m: m, p: &proc{r: r, n: r.w.addNode(name), name: name}, ep: i % servers})
	}
	// The cluster has been up a little while.
	cm.Sleep(time.Duration(1 + r.w.int64n(int64(time.Second))))
	return cm
}

func (m *consulModel) Sleep(d time.Duration)  { m.w.runUntil(m.w.now + int64(d)) }
func (m *consulModel) Elapsed() time.Duration { return time.Duration(m.w.now) }

// consulProbe takes a request's answer in place of the client's logic.
type consulProbe struct {
	q          *consulReq
	w          *world
	done, fail bool
	at         int64
	lockIndex  uint64 // the key's, when the answer came
}

func (p *consulProbe) serve(c *call)    { p.q.serve(c) }
func (p *consulProbe) replayable() bool { return p.q.replayable() }
func (p *consulProbe) replay() {
	p.q = p.q.again()
	p.q.call.h = p
	p.q.send(p.q.d)
}
func (p *consulProbe) failed(rpcErr) { p.done, p.fail, p.at = true, true, p.w.now }
func (p *consulProbe) replied() {
	p.done, p.at = true, p.w.now
	if p.q.ck != nil {
		p.lockIndex = p.q.ck.lockIndex
	}
}

// req is a request of kind on key ("" none) for session sid, answered to
// a probe; send starts it.
func (m *consulModel) req(kind uint8, write bool, key string, sid int) *consulProbe {
	return m.reqFrom(m.c, kind, write, key, sid)
}

// reqFrom is req from client c (the model's client, or an agent).
func (m *consulModel) reqFrom(c *consulClient, kind uint8, write bool, key string, sid int) *consulProbe {
	q := m.m.reqs.alloc()
	q.c = c
	q.call.w, q.call.c = m.w, c.p.n
	q.qr.q, q.qr.c, q.qr.o = m.m.q, &q.call, q
	q.kind, q.write, q.sid = kind, write, sid
	if key != "" {
		q.ck = m.m.key(key)
	}
	p := &consulProbe{q: q, w: m.w}
	q.call.h = p
	return p
}

func (m *consulModel) send(kind uint8, write bool, key string, sid int) *consulProbe {
	p := m.req(kind, write, key, sid)
	p.q.send(0)
	return p
}

// wait runs the world until the probe has its answer.
func (m *consulModel) wait(p *consulProbe) error {
	for !p.done {
		if m.w.q.len() == 0 {
			return errors.New("no answer and nothing left to happen")
		}
		m.Sleep(100 * time.Microsecond)
	}
	if p.fail {
		return errors.New("the server answered with an error")
	}
	return nil
}

func (m *consulModel) do(kind uint8, write bool, key string, sid int) (*consulReq, error) {
	p := m.send(kind, write, key, sid)
	return p.q, m.wait(p)
}

func sid(id string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(id, "session-"))
	if err != nil {
		return 0
	}
	return n
}

func (m *consulModel) CreateSession(ttl, lockDelay time.Duration) (string, error) {
	// What the request asks for: the model's sessions take the run's TTL
	// and lock-delay.
	m.m.ttl, m.m.r.opts.lockDelay = int64(ttl), int64(lockDelay)
	q, err := m.do(crCreate, true, "", 0)
	if err != nil {
		return "", err
	}
	if q.id == 0 {
		return "", fmt.Errorf("%w: %v", behaviour.ErrSessionTTL, ttl)
	}
	return sessionID(q.id), nil
}

func (m *consulModel) RenewSession(id string) (bool, error) {
	q, err := m.do(crRenew, false, "", sid(id))
	return q.ok, err
}

// SessionAlive reads the state after a round trip (session info is not
// a request of the model's client).
func (m *consulModel) SessionAlive(id string) (bool, error) {
	m.Sleep(300 * time.Microsecond)
	return m.m.session(sid(id)) != nil, nil
}

func (m *consulModel) DestroySession(id string) error {
	_, err := m.do(crDestroy, true, "", sid(id))
	return err
}

func (m *consulModel) Acquire(key, session string) (behaviour.AcquireResult, error) {
	q, err := m.do(crTry, true, key, sid(session))
	if err != nil {
		return 0, err
	}
	return acquireResult(q), nil
}

// acquireResult is an answered acquire's answer.
func acquireResult(q *consulReq) behaviour.AcquireResult {
	switch {
	case q.ok:
		return behaviour.Acquired
	case q.invalid:
		return behaviour.InvalidSession
	}
	return behaviour.NotAcquired
}

func (m *consulModel) Release(key, session string) (bool, error) {
	q, err := m.do(crRelease, true, key, sid(session))
	return q.ok, err
}

func (m *consulModel) Get(key string) (behaviour.ConsulKey, error) {
	p := m.send(crToken, false, key, 0)
	if err := m.wait(p); err != nil {
		return behaviour.ConsulKey{}, err
	}
	return probeKey(p), nil
}

func probeKey(p *consulProbe) behaviour.ConsulKey {
	q := p.q
	return behaviour.ConsulKey{Exists: q.ex, Session: sessionID(q.s), LockIndex: p.lockIndex, ModifyIndex: q.idx}
}

// Watch is the lease watcher's blocking GET.
func (m *consulModel) Watch(key string, index uint64, wait time.Duration) func() (behaviour.ConsulKey, time.Duration, error) {
	p := m.req(crGet, false, key, 0)
	p.q.index, p.q.wait = index, int64(wait)
	p.q.send(0)
	return func() (behaviour.ConsulKey, time.Duration, error) {
		if err := m.wait(p); err != nil {
			return behaviour.ConsulKey{}, time.Duration(p.at), err
		}
		return probeKey(p), time.Duration(p.at), nil
	}
}

func (m *consulModel) AgentSession(i int) (string, error) {
	p := m.reqFrom(m.agents[i], crCreate, true, "", 0)
	p.q.empty = true
	p.q.send(0)
	if err := m.wait(p); err != nil {
		return "", err
	}
	if p.q.id == 0 {
		return "", errors.New("session create refused: serfHealth critical")
	}
	return sessionID(p.q.id), nil
}

// AgentSessionInfo reads the state after a round trip, as SessionAlive.
func (m *consulModel) AgentSessionInfo(id string) (behaviour.SessionInfo, error) {
	m.Sleep(300 * time.Microsecond)
	s := m.m.session(sid(id))
	if s == nil {
		return behaviour.SessionInfo{}, fmt.Errorf("no session %s", id)
	}
	info := behaviour.SessionInfo{LockDelay: time.Duration(s.delay)}
	if s.ttl > 0 {
		info.TTL = time.Duration(s.ttl).String()
	}
	if s.agent != nil {
		info.Node, info.NodeChecks = s.agent.n.name, []string{"serfHealth"}
	}
	return info, nil
}

// CutAgent blocks every link of the agent's node, both ways, as
// faults.Network.Isolate does, or heals every cut.
// UseLink: the model's client talks to its server over the world's
// links, which CutClient blocks, always.
func (m *consulModel) UseLink() error { return nil }

func (m *consulModel) StartAcquire(key, session string) func() (behaviour.AcquireResult, time.Duration, error) {
	p := m.send(crTry, true, key, sid(session))
	return func() (behaviour.AcquireResult, time.Duration, error) {
		if err := m.wait(p); err != nil {
			return 0, time.Duration(p.at), err
		}
		return acquireResult(p.q), time.Duration(p.at), nil
	}
}

func (m *consulModel) CutClient(cut bool) error {
	c, s := m.c.p.n, m.m.q.servers[m.c.ep]
	if cut {
		m.w.block(c, s)
		m.w.block(s, c)
	} else {
		m.w.unblock(c, s)
		m.w.unblock(s, c)
	}
	m.m.faultChanged()
	return nil
}

func (m *consulModel) CutAgent(i int, cut bool) error {
	a := m.agents[i].p.n
	if cut {
		for _, n := range m.w.nodes {
			if n != a {
				m.w.block(a, n)
				m.w.block(n, a)
			}
		}
	} else {
		m.w.healAll()
	}
	m.m.faultChanged()
	return nil
}

func (m *consulModel) Delete(key string, cas uint64) (bool, error) {
	p := m.req(crDelete, true, key, 0)
	p.q.index = cas
	p.q.send(0)
	err := m.wait(p)
	return p.q.ok, err
}

func (m *consulModel) ReleaseEmpty(key, session string) (bool, error) {
	return m.Release(key, session)
}

// RaceDestroyAcquire sends the destroy, runs the world for offset, sends
// the acquire, and waits for both.
func (m *consulModel) RaceDestroyAcquire(destroy, key, acquirer string, offset time.Duration) (behaviour.AcquireResult, error) {
	d := m.send(crDestroy, true, "", sid(destroy))
	m.Sleep(offset)
	a := m.send(crTry, true, key, sid(acquirer))
	if err := m.wait(d); err != nil {
		return 0, fmt.Errorf("destroy: %v", err)
	}
	if err := m.wait(a); err != nil {
		return 0, err
	}
	switch q := a.q; {
	case q.ok:
		return behaviour.Acquired, nil
	case q.invalid:
		return behaviour.InvalidSession, nil
	}
	return behaviour.NotAcquired, nil
}

func (m *consulModel) UseLeader(leader bool) error {
	q := m.m.q
	if len(q.servers) < 2 || q.leader < 0 {
		return errors.New("no leader among several servers")
	}
	m.c.ep = q.leader
	if !leader {
		m.c.ep = (q.leader + 1) % len(q.servers)
	}
	return nil
}

func (m *consulModel) KillLeader() error {
	q := m.m.q
	if len(q.servers) < 2 || q.leader < 0 {
		return errors.New("no leader to kill among the others")
	}
	l := q.leader
	q.servers[l].crash()
	m.m.faultChanged()
	if m.c.ep == l {
		m.c.ep = (l + 1) % len(q.servers)
	}
	return nil
}

// WaitLeader polls, as cluster.Consul.WaitLeader does, for a leader that
// can commit, then creates and destroys a session.
func (m *consulModel) WaitLeader() error {
	q := m.m.q
	_, ok, _ := pollTrue(m, 100*time.Millisecond, 30*time.Second, func() bool {
		return q.leader >= 0 && q.hasMajority(q.leader)
	})
	if !ok {
		return errors.New("no leader after 30 s")
	}
	ttl, delay := m.m.ttl, m.m.r.opts.lockDelay
	id, err := m.CreateSession(10*time.Second, 0)
	m.m.ttl, m.m.r.opts.lockDelay = ttl, delay
	if err != nil {
		return err
	}
	return m.DestroySession(id)
}

func pollTrue(m *consulModel, period, limit time.Duration, done func() bool) (time.Duration, bool, error) {
	start := m.Elapsed()
	for !done() {
		if m.Elapsed()-start > limit {
			return m.Elapsed() - start, false, nil
		}
		m.Sleep(period)
	}
	return m.Elapsed() - start, true, nil
}

// The behaviour cases on the model, each from several seeds.
func TestConsulModel(t *testing.T) {
	for _, c := range behaviour.ConsulCases {
		t.Run(c.Name, func(t *testing.T) {
			for seed := uint64(1); seed <= 5; seed++ {
				m := newConsulModel(seed, c.Servers, c.Agents)
				m.logf = func(f string, a ...any) { t.Logf("seed %d: "+f, append([]any{seed}, a...)...) }
				if err := c.Run(m); err != nil {
					t.Errorf("seed %d: %v", seed, err)
				}
			}
		})
	}
}

// What the blocking queries' failure on a killed leader means for a
// holder: its lease's watcher fails at once and the lease is lost ("watch
// failed"), as locks/consul's TestThreeServers shows for a lost quorum.
func TestConsulLeaderKillLosesLease(t *testing.T) {
	sc := parse(t, `name: consul-leader-kill
backends: [consul]
cluster: {size: 3}
clients: 2
duration: 6s
lock: {ttl: 10s, renew_every: 2s, poll: 100ms}
workload: {hold_min: 4s, hold_max: 4s}
faults:
  - {at: 1500ms, fault: kill, target: leader, jitter: 0s}
`)
	for seed := uint64(1); seed <= 5; seed++ {
		res := simulate(t, sc, "consul", seed)
		k, _ := nemesisStart(t, res, "kill")
		lost := firstEvent(res, k, func(e *history.Event) bool { return e.F == history.FLost })
		if lost == nil || lost.T-k > int64(100*time.Millisecond) || !strings.Contains(string(lost.Value), "watch failed") {
			t.Errorf("seed %d: the first loss after the leader's kill: %+v, want \"watch failed\" within 100 ms", seed, lost)
		}
	}
}
