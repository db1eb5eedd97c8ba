package checker

import (
	"fmt"
	"slices"

	"github.com/locksim/locksim/history"
)

// hold is one proc's belief that it holds a key: from its acquire ok until
// the earliest of its release invoke, its lost info, or the end of the
// history.
type hold struct {
	proc     string
	key      string
	start    int64
	line     int // the acquire ok
	token    int64
	hasToken bool
	overlaps []*overlap
}

// overlap is a pair of holds on one key that were both open at from. It is
// a violation if neither ended at from: intervals that only touch do not
// overlap. It is settled when the first of the two ends.
type overlap struct {
	a, b *hold // a began first
	from int64
	done bool
}

// beginHold starts ps's belief in key at acquire ok e, pairing it with
// every hold open on the key.
func (c *Checker) beginHold(ps *procState, ks *keyState, key string, e *history.Event) {
	if ps.hold(key) != nil {
		// A new grant while still believing: the old belief ends here.
		c.closeHold(ps, key, e.T, e.Line)
	}
	h := c.newHold()
	h.proc, h.key, h.start, h.line = e.Proc, key, e.T, e.Line
	h.token, h.hasToken = token(&ps.inv, e)
	for _, other := range ks.holders {
		ov := c.newOverlap()
		ov.a, ov.b, ov.from = other, h, e.T
		other.overlaps = append(other.overlaps, ov)
		h.overlaps = append(h.overlaps, ov)
	}
	ks.holders = append(ks.holders, h)
	ps.holds = append(ps.holds, h)
	c.live.holdStart(key, e.T)
}

// newHold returns a zeroed hold from the checker's chunks: one allocation
// per chunkLen grants instead of one each.
func (c *Checker) newHold() *hold { return c.holds.alloc() }

// newOverlap is newHold for overlaps.
func (c *Checker) newOverlap() *overlap { return c.overlaps.alloc() }

// chunks hands out zeroed Ts, chunkLen at a time. The first chunksKept
// chunks are kept for Reset to hand out again; the later ones go once
// nothing points into them (a long history keeps only the chunks of its
// open holds).
type chunks[T any] struct {
	cur  []T   // the chunk handed out from
	kept [][]T // the first chunks
	at   int   // kept[at] is cur, if at < len(kept)
}

const (
	chunkLen   = 32
	chunksKept = 16
)

func (c *chunks[T]) alloc() *T {
	if len(c.cur) == cap(c.cur) {
		switch {
		case c.at+1 < len(c.kept):
			c.at++
			c.cur = c.kept[c.at][:0]
		case len(c.kept) < chunksKept:
			c.cur = make([]T, 0, chunkLen)
			c.kept = append(c.kept, c.cur)
			c.at = len(c.kept) - 1
		default:
			c.cur = make([]T, 0, chunkLen)
			c.at = len(c.kept)
		}
	}
	c.cur = c.cur[:len(c.cur)+1]
	return &c.cur[len(c.cur)-1]
}

// reset zeroes the kept chunks and hands them out again from the first.
func (c *chunks[T]) reset() {
	for _, k := range c.kept {
		clear(k[:cap(k)])
	}
	c.cur, c.at = nil, 0
	if len(c.kept) > 0 {
		c.cur = c.kept[0][:0]
	}
}

// endHold ends ps's belief in key at release invoke e.
func (c *Checker) endHold(ps *procState, key string, e *history.Event) {
	if ps.hold(key) != nil {
		c.closeHold(ps, key, e.T, e.Line)
	}
}

// endLost ends ps's belief in key at lost info e, unless the notice names a
// token of an earlier grant than the one now held.
func (c *Checker) endLost(ps *procState, key string, e *history.Event) {
	h := ps.hold(key)
	if h == nil || (e.HasToken && h.hasToken && e.Token != h.token) {
		return
	}
	c.closeHold(ps, key, e.T, e.Line)
}

// closeHold ends ps's hold on key at time t (line 0: the end of the
// history) and settles its overlaps.
func (c *Checker) closeHold(ps *procState, key string, t int64, line int) {
	h := ps.hold(key)
	if i := slices.Index(ps.holds, h); i >= 0 {
		ps.holds = slices.Delete(ps.holds, i, i+1)
	}
	c.live.holdEnd(key, t)
	ks := c.keys.get(key)
	if i := slices.Index(ks.holders, h); i >= 0 {
		ks.holders = slices.Delete(ks.holders, i, i+1)
	}
	for _, ov := range h.overlaps {
		if ov.done {
			continue
		}
		ov.done = true
		if t > ov.from {
			c.report(meViolation(ov, h, t, line))
		}
	}
	h.overlaps = nil
}

func meViolation(ov *overlap, ended *hold, t int64, line int) Violation {
	v := Violation{
		Kind:   MutualExclusion,
		Key:    ov.a.key,
		Procs:  []string{ov.a.proc, ov.b.proc},
		Tokens: []int64{},
		From:   ov.from,
		To:     t,
		Lines:  []int{ov.a.line, ov.b.line},
	}
	if ov.a.hasToken && ov.b.hasToken {
		v.Tokens = []int64{ov.a.token, ov.b.token}
	}
	end := "the end of the history"
	if line > 0 {
		v.Lines = append(v.Lines, line)
		end = fmt.Sprintf("line %d", line)
	}
	v.Detail = fmt.Sprintf("%s (acquired at line %d%s) and %s (acquired at line %d%s) both held %q for %s, until %s's belief ended at %s",
		ov.a.proc, ov.a.line, tokenNote(ov.a), ov.b.proc, ov.b.line, tokenNote(ov.b), ov.a.key,
		fmtDuration(t-ov.from), ended.proc, end)
	return v
}

func tokenNote(h *hold) string {
	if !h.hasToken {
		return ""
	}
	return fmt.Sprintf(", token %d", h.token)
}
