package sim

import (
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/scenario"
)

// resource is the fenced resource every critical section reads and writes:
// one counter per key on its own node, in the scenario's fencing mode
// (resource/ is its real counterpart). With fencing writes it is the
// sequencer of Chubby and Kleppmann's storage service: it remembers the
// greatest token it accepted per key and rejects a write carrying a lower
// one (an equal token is the same holder writing again). With fencing all
// reads count too: the greatest token of any request served, and a read
// with a lower one is refused. With fencing none it accepts every write.
// With fencing guarded the counter lives in the lock service's store: each
// read and write goes to the service model, which decides it in one step
// with its lock check (guardedClient), and this node only keeps the
// values. It reports each decision on a write as a lone info event of proc
// "resource" (f accept or reject, with the token and the value).
type resource struct {
	r       *run
	n       *node
	mode    scenario.Fencing
	fencing bool // writes are checked
	value   map[string]int64
	maxTok  map[string]int64
	calls   *arena[resCall]
}

func newResource(r *run) *resource {
	mode := r.sc.Workload.Fencing.Mode()
	res := &resource{
		r:       r,
		n:       r.w.addNode(history.ProcResource),
		mode:    mode,
		fencing: mode == scenario.FenceWrites || mode == scenario.FenceAll,
		value:   make(map[string]int64),
		maxTok:  make(map[string]int64),
		calls:   resCalls.get(r),
	}
	res.n.direct = true // real clients reach it without a proxy
	return res
}

// resCall is one read or write of a proc's cycle gen: the call and what
// it asks and answers, from the run's arena (no closures).
type resCall struct {
	call
	s     *resource
	p     *proc
	gen   uint32
	write bool
	key   string
	tok   int64
	v     int64 // the value written, or read
	ok    bool  // the write was accepted
}

// resCalls keeps the memory of resCalls from one run to the next.
var resCalls arenaPool[resCall]

// read reads key with p's token for p's cycle gen: p.readDone,
// p.readRefused or p.resourceFailed.
func (s *resource) read(p *proc, key string, gen uint32) {
	if s.mode == scenario.FenceGuarded {
		s.guardedRead(p, key, gen)
		return
	}
	s.start(&resCall{s: s, p: p, gen: gen, key: key, tok: p.token})
}

// write writes v with tok to key for p's cycle gen: p.writeDone or
// p.resourceFailed.
func (s *resource) write(p *proc, key string, tok, v int64, gen uint32) {
	if s.mode == scenario.FenceGuarded {
		s.guardedWrite(p, key, tok, v, gen)
		return
	}
	s.start(&resCall{s: s, p: p, gen: gen, write: true, key: key, tok: tok, v: v})
}

func (s *resource) start(c *resCall) {
	rc := s.calls.alloc()
	*rc = *c
	w := s.r.w
	rc.call = call{w: w, c: rc.p.n, s: s.n, h: rc}
	w.start(&rc.call, resourceTimeout)
}

func (c *resCall) serve(*call) {
	s := c.s
	if !c.write {
		c.ok = s.mode != scenario.FenceAll || c.tok >= s.maxTok[c.key]
		if c.ok {
			c.v = s.value[c.key]
			if s.mode == scenario.FenceAll {
				s.maxTok[c.key] = max(s.maxTok[c.key], c.tok)
			}
		}
		c.call.replyH()
		return
	}
	key, tok, v := c.key, c.tok, c.v
	c.ok = !s.fencing || tok >= s.maxTok[key]
	if c.ok {
		s.value[key] = v
		s.maxTok[key] = max(s.maxTok[key], tok)
		s.r.emit(history.ProcResource, history.Info, history.FAccept, key, tok, s.r.tokens, num(v))
	} else {
		s.r.emit(history.ProcResource, history.Info, history.FReject, key, tok, s.r.tokens, num(v))
	}
	c.call.replyH()
}

func (c *resCall) replied() {
	switch {
	case c.write:
		c.p.writeDone(c.gen, c.ok)
	case c.ok:
		c.p.readDone(c.gen, c.v)
	default:
		c.p.readRefused(c.gen)
	}
}

func (c *resCall) failed(rpcErr) { c.p.resourceFailed(c.gen) }
