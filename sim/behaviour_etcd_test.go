package sim

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/sim/behaviour"
)

// etcdModel is the simulator's etcd (etcd, its quorum and its clients'
// etcdClient) driven in virtual time, for the behaviour cases. Every
// operation goes through an etcdClient's op, as the simulated lock
// clients' do, and runs the world until it is answered.
type etcdModel struct {
	logf    func(string, ...any)
	w       *world
	m       *etcd
	clients []*etcdClient
}

func newEtcdModel(seed uint64) *etcdModel {
	r := &run{w: newWorld(seed, 24*time.Hour), opts: options{ttl: int64(time.Second)}}
	return &etcdModel{w: r.w, m: newEtcd(r, 3)}
}

func (e *etcdModel) Logf(format string, args ...any) { e.logf(format, args...) }

func (e *etcdModel) Sleep(d time.Duration)  { e.w.runUntil(e.w.now + int64(d)) }
func (e *etcdModel) Elapsed() time.Duration { return time.Duration(e.w.now) }

// client returns client c, made on first use as the simulator makes its
// clients' (a node with a client's timer lateness, its own loop phases).
func (e *etcdModel) client(c int) *etcdClient {
	for len(e.clients) <= c {
		i := len(e.clients)
		p := &proc{r: e.m.r, idx: i, name: "c" + strconv.Itoa(i+1)}
		p.n = e.w.addNode(p.name)
		p.n.late = timerLateness
		e.clients = append(e.clients, e.m.client(p).(*etcdClient))
	}
	return e.clients[c]
}

// do sends one request of client c through the quorum and runs the world
// until it is answered (or fails: a write whose connection was reset).
func (e *etcdModel) do(c int, write bool, apply func()) error {
	return e.wait(e.start(c, write, apply))
}

// wait runs the world until call returns: its error.
func (e *etcdModel) wait(call *etcdModelCall) error {
	if err := e.until(&call.done); err != nil {
		return err
	}
	return call.err
}

// start sends one request of client c through the quorum: apply runs on
// the leader.
func (e *etcdModel) start(c int, write bool, apply func()) *etcdModelCall {
	call := &etcdModelCall{}
	e.client(c).op(write, func() func() {
		apply()
		return func() { call.at, call.done = e.Elapsed(), true }
	}, func() {
		call.at, call.done = e.Elapsed(), true
		call.err = errors.New("rpc error: code = Unavailable desc = error reading from server: EOF")
	})
	return call
}

// etcdModelCall is a request of etcdModel's under way.
type etcdModelCall struct {
	at   time.Duration
	done bool
	err  error
	revs []int64
}

func (c *etcdModelCall) Result() (time.Duration, bool, error) { return c.at, c.done, c.err }
func (c *etcdModelCall) Revs() []int64                        { return c.revs }

// send runs apply on the leader through op (an etcdClient's op or
// renewOp) and runs the world until it is answered.
func (e *etcdModel) send(op func(fn func() func()), apply func()) error {
	answered := false
	op(func() func() {
		apply()
		return func() { answered = true }
	})
	return e.until(&answered)
}

// until runs the world until *done, for at most 30 virtual seconds.
func (e *etcdModel) until(done *bool) error {
	limit := e.w.now + int64(30*time.Second)
	for !*done {
		if e.w.now > limit {
			return errors.New("no answer within 30 s")
		}
		e.w.runUntil(e.w.now + int64(100*time.Microsecond))
	}
	return nil
}

func (e *etcdModel) Grant(c int, ttl int64) (id, granted int64, err error) {
	err = e.do(c, true, func() {
		id = e.m.grant(ttl * int64(time.Second))
		granted = e.m.leases[id-1].ttl / int64(time.Second)
	})
	return id, granted, err
}

func (e *etcdModel) KeepAliveOnce(c int, id int64) (ttl int64, err error) {
	err = e.send(e.client(c).renewOp, func() { ttl = e.m.renew(id) / int64(time.Second) })
	return ttl, err
}

func (e *etcdModel) Revoke(c int, id int64) error {
	return e.do(c, true, func() {
		if ls := e.m.lease(id); ls != nil {
			e.m.revoke(ls)
		}
	})
}

func (e *etcdModel) TimeToLive(c int, id int64) (ttl int64, err error) {
	err = e.do(c, false, func() {
		ttl = -1
		if ls := e.m.lease(id); ls != nil {
			ttl = (ls.expiry - e.m.q.leaderNode().now()) / int64(time.Second)
		}
	})
	return ttl, err
}

func (e *etcdModel) Put(c int, name string, id int64) (rev int64, err error) {
	cl := e.client(c)
	entry := cl.server()
	err = e.do(c, true, func() { rev, _ = e.m.lock(cl, name, id, entry) })
	if err == nil && rev == 0 {
		err = errors.New("etcdserver: requested lease not found")
	}
	return rev, err
}

func (e *etcdModel) PutAsync(c int, name string, id int64) behaviour.EtcdCall {
	cl := e.client(c)
	entry := cl.server()
	return e.start(c, true, func() { e.m.lock(cl, name, id, entry) })
}

func (e *etcdModel) Queue(c int, name string) ([]int64, error) {
	call := e.queue(c, name)
	err := e.wait(call)
	return call.revs, err
}

func (e *etcdModel) QueueAsync(c int, name string) behaviour.EtcdCall { return e.queue(c, name) }

// queue starts a read of name's queue through client c.
func (e *etcdModel) queue(c int, name string) *etcdModelCall {
	var call *etcdModelCall
	call = e.start(c, false, func() {
		call.revs = call.revs[:0]
		for _, k := range e.m.queues[name] {
			call.revs = append(call.revs, k.rev)
		}
	})
	return call
}

func (e *etcdModel) Session(c int, id int64) (behaviour.EtcdSession, error) {
	cl := e.client(c)
	cl.gen++
	cl.waiting = nil
	cl.startSession(cl.gen, id)
	return &etcdModelSession{e: e, c: cl, gen: cl.gen}, nil
}

func (e *etcdModel) Cut(c int) error {
	n := e.client(c).p.n
	for _, s := range e.m.q.servers {
		e.w.block(n, s)
		e.w.block(s, n)
	}
	return nil
}

func (e *etcdModel) Heal() error {
	e.w.healAll()
	return nil
}

func (e *etcdModel) KillLeader() error {
	l := e.m.q.leaderNode()
	if l == nil {
		return errors.New("no leader")
	}
	l.crash()
	e.m.faultChanged()
	return nil
}

func (e *etcdModel) KillAll() error {
	for _, n := range e.m.q.servers {
		n.crash()
	}
	e.m.faultChanged()
	return nil
}

func (e *etcdModel) Slow(c int, d time.Duration) error {
	e.client(c).p.n.slow = int64(d)
	return nil
}

type etcdModelSession struct {
	e   *etcdModel
	c   *etcdClient
	gen uint32
}

func (s *etcdModelSession) Done() (time.Duration, bool) {
	if s.c.gen != s.gen || s.c.doneAt < 0 {
		return 0, false
	}
	return time.Duration(s.c.doneAt), true
}

func (s *etcdModelSession) Lock(name string) behaviour.EtcdLock {
	l := &etcdModelLock{}
	s.c.key = name
	s.c.waiting = acquireFunc(func(ok bool, tok int64) {
		l.done, l.rev = true, tok
		if !ok {
			l.err = errors.New("mutex: session is expired")
		}
	})
	s.c.lock(s.gen, name)
	return l
}

func (s *etcdModelSession) Release() error {
	var typ string
	answered := false
	s.c.release(releaseFunc(func(t history.Type) { typ, answered = string(t), true }))
	if err := s.e.until(&answered); err != nil {
		return err
	}
	if typ != string(history.OK) {
		return errors.New("release: " + typ)
	}
	return nil
}

type etcdModelLock struct {
	rev  int64
	done bool
	err  error
}

func (l *etcdModelLock) Held() (int64, bool, error) { return l.rev, l.done, l.err }

// The behaviour cases on the model, each from several seeds (the phases of
// the lessor and of the clients' loops are the seed's).
func TestEtcdModel(t *testing.T) {
	for _, c := range behaviour.EtcdCases {
		t.Run(c.Name, func(t *testing.T) {
			for seed := uint64(1); seed <= 8; seed++ {
				e := newEtcdModel(seed)
				e.logf = func(f string, a ...any) { t.Logf("seed %d: "+f, append([]any{seed}, a...)...) }
				if err := c.Run(e); err != nil {
					t.Errorf("seed %d: %v", seed, err)
				}
			}
		})
	}
}
