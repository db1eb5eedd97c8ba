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
}

func newResource(r *run) *resource {
	return &resource{
		r:       r,
		n:       r.w.addNode(history.ProcResource),
		fencing: r.sc.Workload.Fencing,
		value:   make(map[string]int64),
		maxTok:  make(map[string]int64),
	}
}

func (s *resource) read(p *proc, key string, ok func(int64), failed func()) {
	s.r.w.rpc(p.n, s.n, resourceTimeout, func(c *call) {
		v := s.value[key]
		c.reply(func() { ok(v) })
	}, func(rpcErr) { failed() })
}

func (s *resource) write(p *proc, key string, tok, v int64, done func(accepted bool), failed func()) {
	s.r.w.rpc(p.n, s.n, resourceTimeout, func(c *call) {
		accept := !s.fencing || tok >= s.maxTok[key]
		if accept {
			s.value[key] = v
			s.maxTok[key] = max(s.maxTok[key], tok)
			s.r.emit(history.ProcResource, history.Info, history.FAccept, key, tok, true, num(v))
		} else {
			s.r.emit(history.ProcResource, history.Info, history.FReject, key, tok, true, num(v))
		}
		c.reply(func() { done(accept) })
	}, func(rpcErr) { failed() })
}
