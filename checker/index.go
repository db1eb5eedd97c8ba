package checker

import "sort"

// index maps names (procs, keys) to their state. A history has a handful
// of procs and keys, looked up at every event: the first few live in a
// slice, searched in order (the names of one producer's events are
// usually the same strings, so most comparisons end at the pointers), and
// only the rest in a map.
type index[T any] struct {
	names []string
	vals  []*T
	more  map[string]*T
}

// indexSmall is how many names an index keeps in its slice.
const indexSmall = 8

func (x *index[T]) get(name string) *T {
	for i, n := range x.names {
		if n == name {
			return x.vals[i]
		}
	}
	if x.more != nil {
		return x.more[name]
	}
	return nil
}

// put adds name, which is not in x yet.
func (x *index[T]) put(name string, v *T) {
	if len(x.names) < indexSmall {
		x.names = append(x.names, name)
		x.vals = append(x.vals, v)
		return
	}
	if x.more == nil {
		x.more = make(map[string]*T)
	}
	x.more[name] = v
}

func (x *index[T]) len() int { return len(x.names) + len(x.more) }

// all returns every value, in no particular order.
func (x *index[T]) all() []*T {
	out := append([]*T(nil), x.vals...)
	for _, v := range x.more {
		out = append(out, v)
	}
	return out
}

// sorted returns every name, sorted.
func (x *index[T]) sorted() []string {
	out := make([]string, 0, x.len())
	out = append(out, x.names...)
	for n := range x.more {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// grantIndex is every token granted on a key and its grant, for the
// fencing-lock rule and to name a token's holder. Tokens mostly come in
// increasing order: those are appended to a sorted slice and found by a
// binary search (the latest first); a token lower than the greatest so
// far goes to a map.
type grantIndex struct {
	sorted []grantRef // by token, increasing
	more   map[int64]grantRef
}

func (g *grantIndex) get(tok int64) (grantRef, bool) {
	s := g.sorted
	if n := len(s); n > 0 && s[n-1].token == tok {
		return s[n-1], true
	}
	lo, hi := 0, len(s)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s[m].token < tok {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(s) && s[lo].token == tok {
		return s[lo], true
	}
	if g.more != nil {
		r, ok := g.more[tok]
		return r, ok
	}
	return grantRef{}, false
}

// add records ref, whose token is not in g yet.
func (g *grantIndex) add(ref grantRef) {
	if n := len(g.sorted); n == 0 || ref.token > g.sorted[n-1].token {
		g.sorted = append(g.sorted, ref)
		return
	}
	if g.more == nil {
		g.more = make(map[int64]grantRef)
	}
	g.more[ref.token] = ref
}
