package sim

import (
	"time"

	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/locks"
	lm "github.com/locksim/locksim/locks/machine"
	lockMega "github.com/locksim/locksim/locks/megamutex"
	mmm "github.com/locksim/locksim/locks/megamutex/machine"
)

// megamutex models backend megamutex: MegaMutex's DistributedMutex over
// memcache-client (package locks/megamutex), on the memcached servers of
// the memcache model (memcache.go: the same servers, expiry, LRU and
// restarts, unchanged; only the client differs).
//
// The client is not a copy: it is locks/megamutex's own machine (package
// locks/megamutex/machine), driven here by mmClient, with the
// configuration real runs use (locks/megamutex.RunConfig:
// memcache-client's defaults, a dead server skipped for 30 s, the 0.5 s
// socket timeout on true time; lock.failover: off is :failover => false).
// The continuum hashes the servers' names as "memcachedN:11211", in real
// runs too (where each client reaches the servers through proxies of its
// own, at addresses of its own): a key is placed alike in both.
//
// A connect is one round trip to the server (refused when it is down, no
// answer when cut off); a connection is not modelled beyond the client's
// belief that it has one: an operation to a server that restarted is
// answered (a real client would see a reset and reconnect first).
// lock.ttl has no effect on the lock: the add has no expiry (it bounds
// locks.Run's release only, as in real runs).
type megamutex struct {
	*memcache
	mcfg   lockMega.Config
	pids   int
	ops    *arena[mmOp]
	timers *arena[mmTimer]
}

func newMegamutex(r *run, size int) *megamutex {
	m := &megamutex{memcache: newMemcache(r, size), ops: mmOps.get(r), timers: mmTimers.get(r)}
	names := make([]string, size)
	for i, s := range m.servers {
		names[i] = s.n.name
	}
	m.mcfg = lockMega.RunConfig(names, r.sc.Lock.NoFailover())
	return m
}

// destroySession deletes the holder's item (an operator's delete) on
// every server that holds its id.
func (m *megamutex) destroySession(p *proc) {
	c, ok := p.lc.(*mmClient)
	if !ok || c.lease == nil {
		return
	}
	for _, s := range m.servers {
		if it := s.get(c.lease.CacheKey); it != nil && it.value == c.lease.ID {
			s.remove(c.lease.CacheKey)
		}
	}
}

func (m *megamutex) client(p *proc) lockClient {
	o := locks.Options{
		PollInterval: time.Duration(m.r.opts.poll),
		WaitTimeout:  time.Duration(m.r.opts.waitTimeout),
	}
	// A process id per client process (a restart is a new process).
	m.pids++
	return &mmClient{m: m, p: p, mc: mmm.New(lockMega.MachineConfig(m.mcfg, o, 1000+m.pids)), buf: make([]mmm.Output, 0, 4)}
}

// mmClient is the simulator's driver of locks/megamutex's machine for
// one proc, as mcClient is of locks/memcache's: it sends the operations
// the machine asks for to the memcached models, sets its poll timer on the
// proc's clock, and gives it the answers. It decides nothing of the
// algorithm. Beside the machine it applies locks.Run's bound on a release
// (one Options.TTL on the client's clock); MegaMutex has no renewal.
type mmClient struct {
	m        *megamutex
	p        *proc
	mc       *mmm.Machine
	objectID uint64
	lease    *mmm.Lease // the current grant, until its release starts
	slots    [2]mmSlot
	buf      []mmm.Output
}

// mmSlot is one request in progress (slotAcquire or slotRelease-1).
type mmSlot struct {
	c        mmm.Call
	gen      uint32
	busy     bool
	deadline int64
	acqDone  acquireWaiter
	relDone  releaseWaiter
}

const (
	mmAcquire uint8 = iota
	mmRelease
)

type mmOp struct {
	call
	c      *mmClient
	slot   uint8
	gen    uint32
	server int
	op     mmm.Op
	rep    mmm.Reply
}

type mmTimer struct {
	c    *mmClient
	slot uint8
	gen  uint32
}

var (
	mmOps    arenaPool[mmOp]
	mmTimers arenaPool[mmTimer]
)

// unix is the client clock's Unix seconds: a fixed epoch plus the proc's
// clock.
func (c *mmClient) unix() int64 { return 1_265_500_000 + c.p.n.now()/int64(time.Second) }

func (c *mmClient) acquire(key string, done acquireWaiter) {
	s := c.start(mmAcquire, 0)
	s.acqDone = done
	c.objectID += 8
	c.drive(mmAcquire, c.mc.Request(&s.c, mmm.Request{Kind: mmm.Acquire, Key: key, Unix: c.unix(), ObjectID: c.objectID}, c.p.n.now(), c.buf[:0]))
}

// renew is locks.Run's renewer tick: MegaMutex has no renewal.
func (c *mmClient) renew() {}

func (c *mmClient) release(done releaseWaiter) {
	c.slots[mmAcquire].gen++ // an acquire's late answers are stale
	if c.lease == nil {
		done.released(history.Fail)
		return
	}
	lease := c.lease
	c.lease = nil
	s := c.start(mmRelease, c.m.r.opts.ttl)
	s.relDone = done
	c.drive(mmRelease, c.mc.Request(&s.c, mmm.Request{Kind: mmm.Release, Lease: lease}, c.p.n.now(), c.buf[:0]))
}

func (c *mmClient) start(i uint8, bound int64) *mmSlot {
	s := &c.slots[i]
	s.gen++
	s.busy = true
	s.deadline = 0
	if bound > 0 {
		s.deadline = c.m.r.w.now + c.p.n.clk.real(bound)
	}
	return s
}

func (c *mmClient) drive(i uint8, out []mmm.Output) {
	s := &c.slots[i]
	for {
		var next *mmm.Output
		for k := range out {
			o := &out[k]
			switch o.Kind {
			case mmm.OutSend, mmm.OutTimer:
				next = o
			case mmm.OutGrant:
				c.lease = o.Lease
			case mmm.OutDone:
				c.finish(i, o.Result)
				return
			}
		}
		if next == nil {
			return
		}
		w := c.m.r.w
		if next.Kind == mmm.OutTimer {
			t := c.m.timers.alloc()
			t.c, t.slot, t.gen = c, i, s.gen
			c.p.n.afterH(int64(next.D), t)
			return
		}
		if !next.Detached && s.deadline != 0 && w.now >= s.deadline {
			out = c.mc.Cancel(&s.c, c.p.n.now(), c.buf[:0])
			continue
		}
		q := c.m.ops.alloc()
		q.c, q.slot, q.gen, q.server, q.op = c, i, s.gen, int(next.Server), next.Op
		q.call.w, q.call.c, q.call.s, q.call.h = w, c.p.n, c.m.servers[next.Server].n, q
		w.startTrue(&q.call, int64(next.D))
		return
	}
}

func (c *mmClient) finish(i uint8, res lm.Result) {
	s := &c.slots[i]
	s.busy = false
	switch i {
	case mmAcquire:
		endAcquire(s.acqDone, res, 0)
	case mmRelease:
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

func (t *mmTimer) stopped() bool {
	s := &t.c.slots[t.slot]
	return s.gen != t.gen || !s.busy
}

func (t *mmTimer) handle() {
	if t.stopped() {
		return
	}
	c := t.c
	s := &c.slots[t.slot]
	c.drive(t.slot, c.mc.Fire(&s.c, c.p.n.now(), c.buf[:0]))
}

// serve runs the operation on the memcached model.
func (q *mmOp) serve(*call) {
	s := q.c.m.servers[q.server]
	op := &q.op
	q.rep = mmm.Reply{Outcome: mmm.OK}
	switch op.Kind {
	case mmm.OpGet:
		q.rep.Outcome = mmm.Miss
		if it := s.get(op.Key); it != nil {
			q.rep = mmm.Reply{Outcome: mmm.Hit, Value: it.value}
		}
	case mmm.OpAdd:
		if !s.add(op.Key, op.Value, int64(op.Exp)) {
			q.rep.Outcome = mmm.NotStored
		}
	case mmm.OpDelete:
		if !s.remove(op.Key) {
			q.rep.Outcome = mmm.Miss
		}
	}
	q.call.replyH()
}

func (q *mmOp) replied() { q.answer(q.rep) }

func (q *mmOp) failed(e rpcErr) {
	switch e {
	case errServer:
		q.answer(mmm.Reply{Outcome: mmm.ServerError})
	case errTimeout:
		q.answer(mmm.Reply{Outcome: mmm.TimedOut})
	default:
		q.answer(mmm.Reply{Outcome: mmm.Broken})
	}
}

func (q *mmOp) answer(r mmm.Reply) {
	c := q.c
	s := &c.slots[q.slot]
	if s.gen != q.gen || !s.busy {
		return
	}
	c.drive(q.slot, c.mc.Reply(&s.c, r, c.p.n.now(), c.buf[:0]))
}
