package sim

import (
	"strconv"
	"time"

	"github.com/locksim/locksim/history"
	lm "github.com/locksim/locksim/locks/machine"
	"github.com/locksim/locksim/locks/machine/hold"
	realres "github.com/locksim/locksim/resource"
	"github.com/locksim/locksim/scenario"
	"github.com/locksim/locksim/workload"
)

// proc is one simulated client process. It decides nothing itself: it
// drives the two machines real runs drive — the scenario's workload
// (package workload: acquire, read the fenced resource, hold on true time,
// write what it read plus one with the token, release; then back off or,
// for a rotation, sleep 1 s plus a fraction), and locks.Run's hold loop
// (package locks/machine/hold: the renewer on the client's clock, the
// watcher, no release once lost) — over the backend's simulated lock
// client (lockClient), the simulated resource and virtual time.
type proc struct {
	r    *run
	n    *node
	idx  int // 0-based
	name string
	lc   lockClient

	gen   uint32 // bumped at every new cycle and crash: stale callbacks check it
	wseq  uint32 // bumped at every workload timer: only the latest counts
	key   string
	token int64
	wl    *workload.Machine
	hm    *hold.Machine // the hold of the current grant (&hmv), nil outside one
	hmv   hold.Machine
	// lostWhy is the reason of the loss the hold machine is being told.
	lostWhy []byte

	// Output buffers of the machines, one per depth of nested inputs.
	wbufs [][]workload.Output
	hbufs [][]hold.Output
	wd    int
	hd    int
}

func newProc(r *run, i int) *proc {
	p := &proc{r: r, idx: i, name: "c" + strconv.Itoa(i+1)}
	p.n = r.w.addNode(p.name)
	p.n.late = timerLateness
	p.n.onCrash = p.crashed
	p.n.onRestart = p.restarted
	p.lc = r.be.client(p)
	p.wl = workload.New(workloadConfig(r))
	return p
}

// workloadConfig is the workload of the run's clients, as harness/ gives
// it to real ones.
func workloadConfig(r *run) workload.Config {
	w := r.sc.Workload
	mode := w.Fencing.Mode()
	return workload.Config{
		Kind: w.Kind, Keys: r.keys, HoldMin: w.HoldMin, HoldMax: w.HoldMax,
		ReadToken: mode == scenario.FenceAll || mode == scenario.FenceGuarded,
		Poll:      time.Duration(r.opts.poll),
		Tokenless: !r.tokens,
	}
}

// renewNotifier is a lockClient that says when a renewal is over, as
// lease.Renew returns to locks.Run's renewer, and can cut one short, as
// the section's context does. A lockClient without it is told each
// renewal as done at once: its next renewal is due renew_every after the
// last began.
type renewNotifier interface {
	// renewThen is one renewal; done gets how it ended.
	renewThen(done renewWaiter)
	// cancelRenew sends no further operation of a renewal in progress.
	cancelRenew()
}

// start begins the first cycle after delay of true time: the client's
// start offset (scenario.Timing) at the start of the run, or a restarted
// process's start-up.
func (p *proc) start(delay int64) {
	p.wseq++
	p.n.afterTrueH(delay, p.timer(ptWork, p.wseq))
}

// procTimer is one of a proc's timers: from the run's arena, instead of a
// closure.
type procTimer struct {
	p    *proc
	gen  uint32
	kind uint8
}

// Kinds of procTimer.
const (
	ptWork  uint8 = iota // the workload's timer (gen: wseq)
	ptRenew              // the hold loop's renew timer (gen: the cycle)
)

// procTimers keeps the memory of procTimers from one run to the next.
var procTimers arenaPool[procTimer]

func (p *proc) timer(kind uint8, gen uint32) *procTimer {
	t := p.r.timers.alloc()
	t.p, t.gen, t.kind = p, gen, kind
	return t
}

// stopped reports whether the proc has moved past the timer: a later
// workload timer, or another hold (or none).
func (t *procTimer) stopped() bool {
	p := t.p
	if t.kind == ptWork {
		return p.wseq != t.gen
	}
	return p.gen != t.gen || p.hm == nil
}

func (t *procTimer) handle() {
	if t.stopped() {
		return
	}
	p := t.p
	switch t.kind {
	case ptWork:
		p.doW(p.wl.Fire(p.r.w, p.wbuf()))
	case ptRenew:
		p.doH(p.hm.Fire(p.hbuf()))
	}
}

// Int64N is the run's PRNG as the machines' workload.Rand.
func (w *world) Int64N(n int64) int64 { return w.int64n(n) }

func (p *proc) wbuf() []workload.Output {
	if p.wd == len(p.wbufs) {
		p.wbufs = append(p.wbufs, make([]workload.Output, 0, 4))
	}
	return p.wbufs[p.wd][:0]
}

func (p *proc) hbuf() []hold.Output {
	if p.hd == len(p.hbufs) {
		p.hbufs = append(p.hbufs, make([]hold.Output, 0, 4))
	}
	return p.hbufs[p.hd][:0]
}

// doW carries out the workload machine's outputs.
func (p *proc) doW(out []workload.Output) {
	d := p.wd
	p.wbufs[d] = out[:0]
	p.wd++
	defer func() { p.wd = d }()
	gen := p.gen
	for i := range out {
		if p.gen != gen {
			return // crashed while carrying them out
		}
		o := &out[i]
		switch o.Kind {
		case workload.OutEmit:
			e := &o.Event
			p.r.emit(p.name, e.Type, e.F, e.Key, e.Token, e.HasToken, e.Value)
		case workload.OutAcquire:
			p.acquire(o.Key)
		case workload.OutRead:
			p.r.res.read(p, p.key, p.gen)
		case workload.OutWrite:
			p.r.res.write(p, p.key, o.Token, o.Value, p.gen)
		case workload.OutTimer:
			p.wseq++
			p.n.afterTrueH(int64(o.D), p.timer(ptWork, p.wseq))
		case workload.OutSectionDone:
			if p.hm != nil {
				p.doH(p.hm.SectionDone(p.hbuf()))
			}
		}
	}
}

// doH carries out the hold machine's outputs.
func (p *proc) doH(out []hold.Output) {
	d := p.hd
	p.hbufs[d] = out[:0]
	p.hd++
	defer func() { p.hd = d }()
	gen := p.gen
	for i := range out {
		if p.gen != gen || p.hm == nil {
			return
		}
		o := out[i]
		switch o.Kind {
		case hold.OutTimer:
			p.n.afterH(int64(o.D), p.timer(ptRenew, gen))
		case hold.OutRenew:
			// The bound (renew_every on the client's clock) is the lock
			// client's to apply, as it applies the TTL to a release.
			if rn, ok := p.lc.(renewNotifier); ok {
				rn.renewThen(p.ticket(gen))
			} else {
				p.lc.renew()
				p.doH(p.hm.Renewed(lm.OK, p.hbuf()))
			}
		case hold.OutCancel:
			if rn, ok := p.lc.(renewNotifier); ok {
				rn.cancelRenew()
			}
			if o.Lost {
				why := p.lostWhy
				if why == nil {
					why = quote("renewal found the lock lost")
				}
				p.doW(p.wl.Lost(why, p.wbuf()))
			}
		case hold.OutRelease:
			p.lc.release(p.ticket(gen))
		case hold.OutDone:
			p.hm = nil
			p.doW(p.wl.RunDone(o.Result, nil, p.r.w, p.wbuf()))
		}
	}
}

// acquire asks the lock client for key's lock; a grant starts the hold.
func (p *proc) acquire(key string) {
	p.gen++
	gen := p.gen
	p.key, p.token, p.lostWhy = key, 0, nil
	p.lc.acquire(key, p.ticket(gen))
}

// acquireWaiter is told once how an acquire ended: ok with the token, or
// not ok. An interface rather than a func, so that a proc's waiter (a
// procTicket from the run's arena) costs no allocation per acquire.
type acquireWaiter interface{ acquired(ok bool, token int64) }

// acquireResulter is an acquireWaiter that also takes why an acquire
// that was not granted ended: NotAcquired (or Cancelled) is recorded as a
// fail, anything else (an error) as an info, as real runs record them.
type acquireResulter interface {
	acquiredResult(res lm.Result, token int64)
}

// endAcquire tells w how an acquire ended: res, and the token if granted.
func endAcquire(w acquireWaiter, res lm.Result, token int64) {
	if r, ok := w.(acquireResulter); ok {
		r.acquiredResult(res, token)
		return
	}
	w.acquired(res == lm.OK, token)
}

// releaseWaiter is told once how a release ended.
type releaseWaiter interface{ released(t history.Type) }

// renewWaiter is told once how a renewal ended.
type renewWaiter interface{ renewed(res lm.Result) }

// acquireFunc and releaseFunc are funcs as waiters (for tests).
type (
	acquireFunc func(ok bool, token int64)
	releaseFunc func(t history.Type)
)

func (f acquireFunc) acquired(ok bool, token int64) { f(ok, token) }
func (f releaseFunc) released(t history.Type)       { f(t) }

// procTicket is a lock client's answer's way back to proc p as it was at
// gen: the waiter of one acquire, release or renewal, from the run's
// arena (no closure per request). An answer to an older gen is dropped.
type procTicket struct {
	p   *proc
	gen uint32
}

var procTickets arenaPool[procTicket]

// ticket is a procTicket for p at gen.
func (p *proc) ticket(gen uint32) *procTicket {
	t := p.r.tickets.alloc()
	t.p, t.gen = p, gen
	return t
}

// acquired is the lock client's answer to acquire.
func (t *procTicket) acquired(ok bool, tok int64) {
	res := lm.NotAcquired
	if ok {
		res = lm.OK
	}
	t.acquiredResult(res, tok)
}

// acquiredResult is acquired with why an acquire not granted ended.
func (t *procTicket) acquiredResult(res lm.Result, tok int64) {
	p, gen := t.p, t.gen
	if p.gen != gen || p.hm != nil {
		return
	}
	if res != lm.OK {
		p.doW(p.wl.RunDone(res, nil, p.r.w, p.wbuf()))
		return
	}
	p.token = tok
	p.hmv.Init(hold.Config{RenewEvery: time.Duration(p.r.opts.renewEvery), TTL: time.Duration(p.r.opts.ttl)})
	p.hm = &p.hmv
	p.r.lastGrant = p
	p.doW(p.wl.Granted(tok, p.wbuf()))
	if p.gen == gen && p.hm != nil {
		p.doH(p.hm.Start(p.hbuf()))
	}
	p.r.granted()
}

// renewed is a renewNotifier's answer to renewThen.
func (t *procTicket) renewed(res lm.Result) {
	if p := t.p; p.gen == t.gen && p.hm != nil {
		p.doH(p.hm.Renewed(res, p.hbuf()))
	}
}

// released is the lock client's answer to release.
func (t *procTicket) released(typ history.Type) {
	p := t.p
	if p.gen != t.gen || p.hm == nil {
		return
	}
	res := lm.Failed
	switch typ {
	case history.OK:
		res = lm.OK
	case history.Fail:
		res = lm.Lost
	}
	p.doH(p.hm.Released(res, p.hbuf()))
}

// holds reports whether p believes it holds a lock.
func (p *proc) holds() bool { return p.wl.Holds() }

// onLost is called by the lock client when it learns the lock is gone:
// the lease's loss notice, to locks.Run's watcher and the workload's.
func (p *proc) onLost(reason string) {
	if p.hm == nil {
		return
	}
	p.lostWhy = quote(reason)
	p.doH(p.hm.Lost(p.hbuf()))
	// The workload's own watcher, if the hold did not pass it on (a loss
	// after the section's end changes nothing).
	p.doW(p.wl.Lost(p.lostWhy, p.wbuf()))
}

// resourceTimeout bounds a read or write to the fenced resource, and a
// guarded operation, as in real runs (the resource client's timeout).
const resourceTimeout = int64(realres.ClientTimeout)

// readDone is the resource's answer to the read of cycle gen.
func (p *proc) readDone(gen uint32, v int64) {
	if p.gen == gen {
		p.doW(p.wl.ReadDone(workload.Done, v, nil, p.r.w, p.wbuf()))
	}
}

// readRefused is the resource's refusal of the read of cycle gen (a stale
// token, or not held at the lock service).
func (p *proc) readRefused(gen uint32) {
	if p.gen == gen {
		p.doW(p.wl.ReadDone(workload.Refused, 0, nil, p.r.w, p.wbuf()))
	}
}

// resourceFailed is a read or write of cycle gen that got no answer: its
// outcome is unknown. (Each machine input ignores the operation that is
// not under way.)
func (p *proc) resourceFailed(gen uint32) {
	if p.gen == gen {
		p.doW(p.wl.ReadDone(workload.Unknown, 0, nil, p.r.w, p.wbuf()))
	}
	if p.gen == gen {
		p.doW(p.wl.WriteDone(workload.Unknown, p.wbuf()))
	}
}

// writeDone is the resource's answer to the write of cycle gen.
func (p *proc) writeDone(gen uint32, accepted bool) {
	if p.gen != gen {
		return
	}
	o := workload.Done
	if !accepted {
		o = workload.Refused
	}
	p.doW(p.wl.WriteDone(o, p.wbuf()))
}

// finish is the run's end: an operation still open ends unknown.
func (p *proc) finish() {
	p.doW(p.wl.Finish(p.wbuf()))
}

// crashed is the client process killed: its open operation's outcome is
// unknown, and a hold it had ends with it.
func (p *proc) crashed() {
	if cr, ok := p.lc.(interface{ crashed() }); ok {
		cr.crashed()
	}
	p.hm = nil
	p.doW(p.wl.Crash(quote("client crashed"), p.wbuf()))
	p.gen++
	p.wseq++
}

// restarted is a new client process under the same name.
func (p *proc) restarted() {
	p.lc = p.r.be.client(p)
	p.wl = workload.New(workloadConfig(p.r))
	p.start(p.r.w.int64n(int64(10 * time.Millisecond)))
}
