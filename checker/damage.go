package checker

import (
	"fmt"
	"slices"

	"github.com/locksim/locksim/history"
)

// maxStaleLines bounds the lines a damage violation lists.
const maxStaleLines = 16

// damageState judges a key's resource as a counter: every critical section
// reads the value and writes it plus one. The counter starts from the value
// of the first read that completes before any write does, or from 0. A key
// with a write value that is not an integer is not a counter and is not
// judged.
//
// The final state is the value of the resource's last accept for the key,
// or, if the resource reported no decisions, of the last write that
// completed ok. Damage is a final value below the number of writes that
// succeeded (lost increments), or above what the succeeded and unknown
// writes could have produced.
type damageState struct {
	counter    bool
	initial    int64 // the counter's value before any write
	hasInitial bool
	okWrites   int64
	infoWrites int64

	okSeq     staleTracker // writes that completed ok, in completion order
	acceptSeq staleTracker // the resource's accepts, in order
}

// staleTracker follows a sequence of counter values and notes the ones that
// did not advance it by exactly one: each is a write based on a stale read.
type staleTracker struct {
	n       int64 // values seen
	prev    int64 // the last value (0 before any)
	stale   int64 // how many were stale
	first   int64 // time of the first stale write
	last    int64 // time of the last stale write
	lines   []int
	procs   []string
	tokens  []int64
	lastRef int // line of the last value
}

func (s *staleTracker) observe(v int64, proc string, tok int64, hasTok bool, t int64, line int) {
	if v != s.prev+1 {
		if s.stale == 0 {
			s.first = t
		}
		s.stale++
		s.last = t
		if len(s.lines) < maxStaleLines {
			s.lines = append(s.lines, line)
			if !slices.Contains(s.procs, proc) {
				s.procs = append(s.procs, proc)
			}
			if hasTok {
				s.tokens = append(s.tokens, tok)
			}
		}
	}
	s.n++
	s.prev = v
	s.lastRef = line
}

// read records a read that completed ok: before any write it gives the
// counter's initial value.
func (d *damageState) read(e *history.Event) {
	if d.hasInitial || d.okSeq.n > 0 || d.acceptSeq.n > 0 {
		return
	}
	if v, ok := parseInt(e.Value); ok {
		d.initial, d.hasInitial = v, true
		d.okSeq.prev, d.acceptSeq.prev = v, v
	}
}

// write records a completed write (inv its invoke, e its completion).
func (d *damageState) write(inv, e *history.Event) {
	if !d.counter {
		return
	}
	raw := inv.Value
	if len(raw) == 0 {
		raw = e.Value
	}
	v, ok := parseInt(raw)
	if !ok {
		d.counter = false
		return
	}
	switch e.Type {
	case history.OK:
		d.okWrites++
		tok, hasTok := token(inv, e)
		d.okSeq.observe(v, e.Proc, tok, hasTok, e.T, e.Line)
	case history.Info:
		d.infoWrites++
	}
}

// accept records the resource accepting a write.
func (d *damageState) accept(e *history.Event, ks *keyState) {
	if !d.counter {
		return
	}
	v, ok := parseInt(e.Value)
	if !ok {
		d.counter = false
		return
	}
	d.acceptSeq.observe(v, ks.holderOf(e.Token), e.Token, e.HasToken, e.T, e.Line)
}

// verdict returns the damage violation of key, if any.
func (d *damageState) verdict(key string, ks *keyState) (Violation, bool) {
	if !d.counter || d.okWrites == 0 {
		return Violation{}, false
	}
	seq, source := &d.okSeq, "the last successful write"
	if d.acceptSeq.n > 0 {
		seq, source = &d.acceptSeq, "the resource's last accepted write"
	}
	final, grew := seq.prev, seq.prev-d.initial
	var detail string
	switch {
	case grew < d.okWrites:
		detail = fmt.Sprintf("counter %q went from %d to %d (%s, line %d) in %d successful increments: %d lost, %d writes based on a stale read",
			key, d.initial, final, source, seq.lastRef, d.okWrites, d.okWrites-grew, seq.stale)
	case grew > d.okWrites+d.infoWrites:
		detail = fmt.Sprintf("counter %q went from %d to %d (%s, line %d) but at most %d increments can have happened",
			key, d.initial, final, source, seq.lastRef, d.okWrites+d.infoWrites)
	default:
		return Violation{}, false
	}
	v := Violation{
		Kind: Damage, Key: key,
		Procs: seq.procs, Tokens: seq.tokens,
		From: seq.first, To: seq.last,
		Lines:  slices.Clone(seq.lines),
		Detail: detail,
	}
	if v.Procs == nil {
		v.Procs = []string{}
	}
	if v.Tokens == nil {
		v.Tokens = []int64{}
	}
	v.Lines = append(v.Lines, seq.lastRef)
	slices.Sort(v.Lines)
	v.Lines = slices.Compact(v.Lines)
	return v, true
}

// parseInt parses a JSON integer without allocating.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	neg := false
	if b[0] == '-' {
		neg, b = true, b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	if len(b) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}
