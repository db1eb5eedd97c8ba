package sim

import (
	"strconv"
	"time"

	"github.com/locksim/locksim/history"
)

// proc is one simulated client process running the scenario's workload
// through locks.Run's shape: acquire (blocking), then the critical section
// with a renewer beside it every RenewEvery, then release unless the lock
// was lost. The critical section of the counter workload reads the fenced
// resource, holds for a time drawn between hold_min and hold_max, and
// writes what it read plus one with its token. It does not write once it
// has learnt that the lock is lost (it honours Run's cancelled context);
// what it does not know yet, it does — which is the point.
//
// The rotation workload is Locker's "common pattern": the same critical
// section, then a sleep of 1 s plus a random fraction of a second before
// the next acquire.
type proc struct {
	r    *run
	n    *node
	idx  int // 0-based
	name string
	lc   lockClient

	gen     uint32 // bumped at every new cycle and crash: stale callbacks check it
	key     string
	token   int64
	held    bool // between acquire ok and release invoke
	lost    bool // the current hold was lost
	open    string
	openKey string
	openTok int64
	hasTok  bool
	read    int64
}

func newProc(r *run, i int) *proc {
	p := &proc{r: r, idx: i, name: "c" + strconv.Itoa(i+1)}
	p.n = r.w.addNode(p.name)
	p.n.late = timerLateness
	p.n.onCrash = p.crashed
	p.n.onRestart = p.restarted
	p.lc = r.be.client(p)
	return p
}

// start begins the first cycle after delay: the client's start offset
// (scenario.Timing) at the start of the run, or a restarted process's
// start-up.
func (p *proc) start(delay int64) {
	p.think(delay)
}

// think waits d of true time before the next acquire: the workload's
// sleeps in real runs are time.Timer's (harness/client.go), which a fault
// on the client's locks.Clock does not reach.
func (p *proc) think(d int64) {
	p.n.afterTrueH(d, p.timer(ptThink, p.gen))
}

// procTimer is one of a proc's timers, for its cycle gen: from the run's
// arena, instead of a closure.
type procTimer struct {
	p    *proc
	gen  uint32
	kind uint8
}

// Kinds of procTimer.
const (
	ptThink uint8 = iota // the think time is over: acquire
	ptRenew              // the renewer's tick
	ptHold               // the hold is over: write
)

// procTimers keeps the memory of procTimers from one run to the next.
var procTimers arenaPool[procTimer]

func (p *proc) timer(kind uint8, gen uint32) *procTimer {
	t := p.r.timers.alloc()
	t.p, t.gen, t.kind = p, gen, kind
	return t
}

func (t *procTimer) handle() {
	p, gen := t.p, t.gen
	switch t.kind {
	case ptThink:
		if p.gen == gen {
			p.acquire()
		}
	case ptRenew:
		if p.gen != gen || !p.held || p.lost {
			return
		}
		p.lc.renew()
		p.renewer(gen)
	case ptHold:
		if p.gen == gen {
			p.write(gen)
		}
	}
}

func (p *proc) invoke(f, key string, tok int64, hasTok bool, value []byte) {
	p.open, p.openKey, p.openTok, p.hasTok = f, key, tok, hasTok
	p.r.emit(p.name, history.Invoke, f, key, tok, hasTok, value)
}

func (p *proc) complete(typ history.Type, value []byte) {
	p.r.emit(p.name, typ, p.open, p.openKey, p.openTok, p.hasTok, value)
	p.open = ""
}

func (p *proc) acquire() {
	p.gen++
	gen := p.gen
	keys := p.r.keys
	p.key = keys[0]
	if len(keys) > 1 {
		p.key = keys[p.r.w.int64n(int64(len(keys)))]
	}
	p.invoke(history.FAcquire, p.key, 0, false, nil)
	p.lc.acquire(p.key, func(ok bool, tok int64) {
		if p.gen != gen || p.open != history.FAcquire {
			return
		}
		if !ok {
			p.complete(history.Fail, nil)
			p.think(p.r.opts.poll)
			return
		}
		p.token, p.held, p.lost = tok, true, false
		p.openTok, p.hasTok = tok, true
		p.complete(history.OK, nil)
		p.r.lastGrant = p
		p.renewer(gen)
		p.readResource(gen)
		p.r.granted()
	})
}

// renewer is locks.Run's renewer goroutine: a renewal every RenewEvery
// while the critical section runs.
func (p *proc) renewer(gen uint32) {
	p.n.afterH(p.r.opts.renewEvery, p.timer(ptRenew, gen))
}

// onLost is called by the lock client when it learns the lock is gone.
func (p *proc) onLost(reason string) {
	if !p.held || p.lost {
		return
	}
	p.lost = true
	p.r.emit(p.name, history.Info, history.FLost, p.key, p.token, true, quote(reason))
}

// resourceTimeout bounds a read or write to the fenced resource.
const resourceTimeout = int64(time.Second)

func (p *proc) readResource(gen uint32) {
	p.invoke(history.FRead, p.key, p.token, p.r.res.readsToken(), nil)
	p.r.res.read(p, p.key, gen)
}

// readDone is the resource's answer to the read of cycle gen: hold, then
// write.
func (p *proc) readDone(gen uint32, v int64) {
	if p.gen != gen {
		return
	}
	p.complete(history.OK, num(v))
	p.read = v
	// The hold is a sleep on true time, as in real runs: the client's
	// clock times its lock (renewals, TTLs), not its work.
	hold := p.r.w.between(int64(p.r.sc.Workload.HoldMin), int64(p.r.sc.Workload.HoldMax))
	p.n.afterTrueH(hold, p.timer(ptHold, gen))
}

// resourceFailed is a read or write of cycle gen that got no answer: its
// outcome is unknown, and the cycle goes on to the release.
func (p *proc) resourceFailed(gen uint32) {
	if p.gen == gen {
		p.complete(history.Info, nil)
		p.release(gen)
	}
}

func (p *proc) write(gen uint32) {
	if p.lost {
		p.endCycle()
		return
	}
	v := p.read + 1
	p.invoke(history.FWrite, p.key, p.token, true, num(v))
	p.r.res.write(p, p.key, p.token, v, gen)
}

// writeDone is the resource's answer to the write of cycle gen.
func (p *proc) writeDone(gen uint32, accepted bool) {
	if p.gen != gen {
		return
	}
	if accepted {
		p.complete(history.OK, nil)
	} else {
		p.complete(history.Fail, nil)
	}
	p.release(gen)
}

// release is the end of locks.Run: a lost lock is not released.
func (p *proc) release(gen uint32) {
	if p.lost {
		p.endCycle()
		return
	}
	p.invoke(history.FRelease, p.key, p.token, true, nil)
	p.held = false
	p.lc.release(func(t history.Type) {
		if p.gen != gen || p.open != history.FRelease {
			return
		}
		p.complete(t, nil)
		p.endCycle()
	})
}

func (p *proc) endCycle() {
	p.held = false
	p.gen++
	if p.r.sc.Workload.Kind == "rotation" {
		p.think(int64(time.Second) + p.r.w.int64n(int64(time.Second)))
		return
	}
	// As harness/client.go: back off about as long as a waiter polls, so
	// that the last holder does not win every time.
	p.think(p.r.w.int64n(max(int64(20*time.Millisecond), 2*int64(p.r.sc.Lock.Poll))))
}

// crashed is the client process killed: its open operation's outcome is
// unknown, and a hold it had ends with it.
func (p *proc) crashed() {
	if cr, ok := p.lc.(interface{ crashed() }); ok {
		cr.crashed()
	}
	if p.open != "" {
		p.complete(history.Info, nil)
	}
	if p.held && !p.lost {
		p.onLost("client crashed")
	}
	p.held = false
	p.gen++
}

// restarted is a new client process under the same name.
func (p *proc) restarted() {
	p.lc = p.r.be.client(p)
	p.start(p.r.w.int64n(int64(10 * time.Millisecond)))
}
