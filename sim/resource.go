package sim

import "github.com/locksim/locksim/history"

// resource is the fenced resource every critical section writes to: one
// counter per key on its own node. With fencing on it is the sequencer of
// Chubby and Kleppmann's storage service: it remembers the greatest token it
// accepted per key and rejects a write carrying a lower one (an equal token
// is the same holder writing again). With fencing off it accepts every
// write. It reports each decision as a lone info event of proc "resource"
// (f accept or reject, with the token and the value).
type resource struct {
	r       *run
	n       *node
	fencing bool
	value   map[string]int64
	maxTok  map[string]int64
	calls   *arena[resCall]
}

func newResource(r *run) *resource {
	return &resource{
		r:       r,
		n:       r.w.addNode(history.ProcResource),
		fencing: r.sc.Workload.Fencing,
		value:   make(map[string]int64),
		maxTok:  make(map[string]int64),
		calls:   resCalls.get(r),
	}
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

// read reads key for p's cycle gen: p.readDone or p.resourceFailed.
func (s *resource) read(p *proc, key string, gen uint32) {
	s.start(&resCall{s: s, p: p, gen: gen, key: key})
}

// write writes v with tok to key for p's cycle gen: p.writeDone or
// p.resourceFailed.
func (s *resource) write(p *proc, key string, tok, v int64, gen uint32) {
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
		c.v = s.value[c.key]
		c.call.replyH()
		return
	}
	key, tok, v := c.key, c.tok, c.v
	c.ok = !s.fencing || tok >= s.maxTok[key]
	if c.ok {
		s.value[key] = v
		s.maxTok[key] = max(s.maxTok[key], tok)
		s.r.emit(history.ProcResource, history.Info, history.FAccept, key, tok, true, num(v))
	} else {
		s.r.emit(history.ProcResource, history.Info, history.FReject, key, tok, true, num(v))
	}
	c.call.replyH()
}

func (c *resCall) replied() {
	if c.write {
		c.p.writeDone(c.gen, c.ok)
	} else {
		c.p.readDone(c.gen, c.v)
	}
}

func (c *resCall) failed(rpcErr) { c.p.resourceFailed(c.gen) }
