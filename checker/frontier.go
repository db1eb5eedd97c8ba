package checker

import (
	"math"
	"math/bits"
	"time"
)

// The linearizability check streams: one frontier per key and model,
// advanced at each return, in the spirit of Lowe's just-in-time
// linearization ("Testing for linearizability", 2017). A configuration is a
// model state and the set of operations already linearized but not yet
// returned; the frontier is every configuration a valid linearization of
// the history so far can be in. At the return of an operation o, each
// configuration linearizes operations that were called by then, one at a
// time, until o is linearized: only then, never ahead of need, which keeps
// the frontier small. A configuration is dropped when another one with the
// same state reaches it by linearizing operations that leave that state
// unchanged and are of unknown outcome (an unknown operation can always take
// no effect, later, so a frontier never holds one that took none). The frontier empty at a return means no
// linearization exists: illegal. At the end of the history every operation
// still open has an unknown outcome and can take no effect, so a frontier
// not empty means ok.
//
// Memory is the operations open at once plus the frontier, whatever the
// history's length. The answer is porcupine's on the same operations
// (equivalence_test.go checks it); porcupine itself only draws failures.

// linSlots bounds the operations of one key and model open at once (and
// unknown operations that stay open to the end): beyond it the verdict is
// unknown.
const linSlots = 256

// linMaxConfigs bounds the configurations of one return's search; beyond it
// the verdict is unknown.
const linMaxConfigs = 1 << 16

// linUntimed is how much work (operations tried, configurations compared) a
// return's search may do before its time starts to count against the
// budget, and then between two looks at the clock: most returns cost far
// less, untimed, and their cost is linear in the history.
const linUntimed = 1 << 14

// linPending marks an operation whose return is not known yet.
const linPending = math.MaxInt64 - 1

// linForever marks an operation that returns only with the history.
const linForever = math.MaxInt64

type linBits [linSlots / 64]uint64

func (b *linBits) has(i int) bool { return b[i>>6]&(1<<(i&63)) != 0 }
func (b *linBits) set(i int)      { b[i>>6] |= 1 << (i & 63) }
func (b *linBits) clear(i int)    { b[i>>6] &^= 1 << (i & 63) }

// subset reports whether b ⊆ c.
func (b *linBits) subset(c *linBits) bool {
	for i := range b {
		if b[i]&^c[i] != 0 {
			return false
		}
	}
	return true
}

// linOp is one operation of a key and model, as the frontier sees it.
type linOp struct {
	call    int64
	ret     int64 // linPending, linForever, or the time of its return
	value   string
	proc    int32
	kind    uint8 // lockKind for the lock; 0 read, 1 write for the register
	unknown bool  // its outcome is unknown: it may have taken no effect
}

type linConfig[S comparable] struct {
	s S
	l linBits
}

// linStream is the frontier of one key and model.
type linStream[S comparable] struct {
	step func(S, *linOp) (S, bool) // the model, ignoring unknown outcomes
	// help says what operation p can do towards making target legal, as
	// bits that viable takes; viable reports whether target is legal in s
	// or may become so by operations that help as h says.
	help     func(target, p *linOp) uint8
	viable   func(s S, target *linOp, h uint8) bool
	budget   time.Duration
	spent    time.Duration
	verdict  LinVerdict // "" while it can still go either way
	ops      []linOp    // by slot
	active   []int      // the slots in use
	free     []int
	returns  []int // slots whose return is known, in time order, not yet taken
	frontier []linConfig[S]
	done     int64 // the time of the last return taken
	// scratch, kept between returns
	queue, next []linConfig[S]
	cand        []int
}

func newLinStream[S comparable](init S, step func(S, *linOp) (S, bool), help func(target, p *linOp) uint8, viable func(S, *linOp, uint8) bool, budget time.Duration) *linStream[S] {
	return &linStream[S]{step: step, help: help, viable: viable, budget: budget, frontier: []linConfig[S]{{s: init}}, done: math.MinInt64}
}

// stop settles the verdict and drops the frontier's memory.
func (st *linStream[S]) stop(v LinVerdict) {
	st.verdict = v
	st.ops, st.active, st.free, st.returns = nil, nil, nil, nil
	st.frontier, st.queue, st.next, st.cand = nil, nil, nil, nil
}

// add opens an operation and returns its slot (-1 once the verdict is
// settled). Its return, if known, must come after every return added.
func (st *linStream[S]) add(op linOp) int {
	if st.verdict != "" {
		return -1
	}
	if op.call <= st.done {
		// A return already taken should have seen it: the events were not
		// in time order. Never guess.
		st.stop(LinUnknown)
		return -1
	}
	var i int
	if n := len(st.free); n > 0 {
		i = st.free[n-1]
		st.free = st.free[:n-1]
		st.ops[i] = op
	} else {
		if len(st.ops) == linSlots && !st.retire() {
			st.stop(LinUnknown)
			return -1
		}
		if n := len(st.free); n > 0 {
			i = st.free[n-1]
			st.free = st.free[:n-1]
			st.ops[i] = op
		} else {
			i = len(st.ops)
			st.ops = append(st.ops, op)
		}
	}
	st.active = append(st.active, i)
	if op.ret != linPending && op.ret != linForever {
		st.returns = append(st.returns, i)
	}
	return i
}

// retire frees the slots of operations that stay open to the end and that
// every configuration has linearized: none can take them again.
func (st *linStream[S]) retire() bool {
	freed := false
	for k := 0; k < len(st.active); k++ {
		i := st.active[k]
		if st.ops[i].ret != linForever {
			continue
		}
		all := true
		for c := range st.frontier {
			if !st.frontier[c].l.has(i) {
				all = false
				break
			}
		}
		if !all {
			continue
		}
		for c := range st.frontier {
			st.frontier[c].l.clear(i)
		}
		st.release(k)
		k--
		freed = true
	}
	return freed
}

// release frees the slot at active[k].
func (st *linStream[S]) release(k int) {
	i := st.active[k]
	last := len(st.active) - 1
	st.active[k] = st.active[last]
	st.active = st.active[:last]
	st.ops[i] = linOp{}
	st.free = append(st.free, i)
}

// setReturn gives the return of the operation in slot i (from add), which
// must come after every return added.
func (st *linStream[S]) setReturn(i int, ret int64) {
	if st.verdict != "" || i < 0 {
		return
	}
	st.ops[i].ret = ret
	if ret != linForever {
		st.returns = append(st.returns, i)
	}
}

// recall moves the call of the operation in slot i later, to call: a lease
// renewed. Configurations that linearized it before are no longer valid.
func (st *linStream[S]) recall(i int, call int64) {
	if st.verdict != "" || i < 0 {
		return
	}
	if call <= st.done {
		st.stop(LinUnknown)
		return
	}
	st.ops[i].call = call
	kept := st.frontier[:0]
	for _, c := range st.frontier {
		if !c.l.has(i) {
			kept = append(kept, c)
		}
	}
	st.frontier = kept
	if len(kept) == 0 {
		st.stop(LinIllegal)
	}
}

// advance takes every known return before limit, in time order.
func (st *linStream[S]) advance(limit int64) {
	n := 0
	for n < len(st.returns) && st.verdict == "" {
		i := st.returns[n]
		r := st.ops[i].ret
		if r >= limit {
			break
		}
		n++
		st.take(i, r)
	}
	if st.verdict == "" && n > 0 {
		st.returns = st.returns[:copy(st.returns, st.returns[n:])]
	}
}

// finish takes every return left and settles the verdict.
func (st *linStream[S]) finish() LinVerdict {
	st.advance(linForever)
	if st.verdict == "" {
		st.stop(LinOK)
	}
	return st.verdict
}

// dominates reports whether a does everything b does: the same state,
// and b has linearized what a has and more, all of unknown outcome (which a
// can linearize later, at any moment, to no effect). A known operation
// that leaves a's state unchanged does not count: a would have to take it
// now, before the state changes.
func (st *linStream[S]) dominates(a, b *linConfig[S]) bool {
	if a.s != b.s || !a.l.subset(&b.l) {
		return false
	}
	for w := range a.l {
		word := b.l[w] &^ a.l[w]
		for word != 0 {
			i := bits.TrailingZeros64(word)
			word &^= 1 << i
			if !st.ops[w*64+i].unknown {
				return false
			}
		}
	}
	return true
}

// take is the return of the operation in slot o at time r.
func (st *linStream[S]) take(o int, r int64) {
	q := append(st.queue[:0], st.frontier...)
	out := st.next[:0]
	// add puts c into out unless a configuration there dominates it, and
	// drops those it dominates.
	add := func(c linConfig[S]) {
		for k := 0; k < len(out); k++ {
			if st.dominates(&out[k], &c) {
				return
			}
		}
		kept := out[:0]
		for k := range out {
			if !st.dominates(&c, &out[k]) {
				kept = append(kept, out[k])
			}
		}
		out = append(kept, c)
	}
	// The operations that may be linearized before o, and what they can do
	// to make o legal.
	target := &st.ops[o]
	cand := st.cand[:0]
	var help uint8
	for _, p := range st.active {
		if po := &st.ops[p]; p != o && po.call <= r {
			cand = append(cand, p)
			help |= st.help(target, po)
		}
	}
	st.cand = cand
	var clock time.Time
	nf := len(st.frontier)
	work, check := 0, linUntimed
	for k := 0; k < len(q); k++ {
		if work >= check {
			check += linUntimed
			now := time.Now()
			if !clock.IsZero() {
				st.spent += now.Sub(clock)
			}
			clock = now
			if st.spent > st.budget || len(q) > linMaxConfigs {
				st.queue, st.next = q[:0], out[:0]
				st.stop(LinUnknown)
				return
			}
		}
		c := q[k]
		work += len(cand)
		if c.l.has(o) {
			c.l.clear(o)
			add(c)
			continue
		}
		// Taking no effect, o commutes with whatever was linearized to
		// reach c: only the frontier's own configurations need that branch.
		if target.unknown && k < nf {
			add(c)
		}
		if n, legal := st.step(c.s, target); legal && (!target.unknown || n != c.s) {
			add(linConfig[S]{s: n, l: c.l})
		}
		for _, p := range cand {
			if c.l.has(p) {
				continue
			}
			po := &st.ops[p]
			n, legal := st.step(c.s, po)
			// An unknown operation that takes no effect need not be
			// linearized before it returns: the configuration without it
			// does everything this one would. Nor is a state worth
			// reaching from which o can never be legal.
			if !legal || po.unknown && n == c.s || !st.viable(n, target, help) {
				continue
			}
			nc := linConfig[S]{s: n, l: c.l}
			nc.l.set(p)
			work += len(q)
			seen := false
			for j := range q {
				if q[j].s == n && st.dominates(&q[j], &nc) {
					seen = true
					break
				}
			}
			if !seen {
				q = append(q, nc)
			}
		}
	}
	if !clock.IsZero() {
		st.spent += time.Since(clock)
	}
	st.queue, st.next = q[:0], st.frontier[:0]
	st.frontier = out
	st.done = r
	for k, i := range st.active {
		if i == o {
			st.release(k)
			break
		}
	}
	if len(out) == 0 {
		st.stop(LinIllegal)
	}
}
