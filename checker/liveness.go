package checker

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Liveness is what one key's history says about progress, beside the
// safety verdict: how much of the run the key had a holder, and the
// longest time some proc waited for it while nobody held it. It is never a
// violation: a lock that is slow to hand over, or never frees a dead
// holder's key, is safe and shows here.
//
// Holds are those of mutual exclusion: a proc holds a key from its acquire
// ok until its release invoke, its lost notice or the end of the history;
// the key is held while any proc holds it. A proc waits for a key from its
// acquire invoke until that acquire's ok, fail or info, or the end of the
// history.
type Liveness struct {
	// File is the history file, when several were checked.
	File string `json:"file,omitempty"`
	Key  string `json:"key"`
	// HeldShare is HeldNs / SpanNs, from 0 to 1 (0 when SpanNs is 0).
	HeldShare float64 `json:"held_share"`
	// HeldNs is the time some proc held the key: the measure of the union
	// of the holds.
	HeldNs int64 `json:"held_ns"`
	// SpanNs is the history's span, from its first event to its last (of
	// any proc and key).
	SpanNs int64 `json:"span_ns"`
	// LongestIdleWaitNs is the longest interval, From..To (ns), in which at
	// least one proc waited for the key and none held it; Procs are the
	// procs that waited in it, by name. 0, with no procs, if there was
	// none. Of intervals of equal length, the first.
	LongestIdleWaitNs int64    `json:"longest_idle_wait_ns"`
	From              int64    `json:"from"`
	To                int64    `json:"to"`
	Procs             []string `json:"procs"`
	// UntilEnd is set when that interval lasted until the end of the
	// history: someone was still waiting, and nobody held the key.
	UntilEnd bool `json:"until_end,omitempty"`
}

// liveness follows every key's holds and waits for Liveness, in memory
// per key and per proc.
type liveness struct {
	keys index[liveKey]
}

// liveWait is one proc's open acquire, if any: kept with the proc's state.
type liveWait struct {
	key  *liveKey
	open bool
}

// liveKey is one key's liveness so far.
type liveKey struct {
	holders   int   // procs holding the key now
	heldSince int64 // when holders last went from 0 to 1
	heldNs    int64 // closed held time

	waiting   []string // procs waiting for the key now
	idleSince int64    // while idle (waiting, nobody holding): since when
	idleProcs []string // the procs that waited in the current idle interval

	best      int64 // the longest idle interval closed so far
	bestFrom  int64
	bestTo    int64
	bestProcs []string
	bestEnd   bool
}

func newLiveness() *liveness { return &liveness{} }

func (l *liveness) key(k string) *liveKey {
	lk := l.keys.get(k)
	if lk == nil {
		lk = &liveKey{}
		l.keys.put(k, lk)
	}
	return lk
}

func (lk *liveKey) idle() bool { return lk.holders == 0 && len(lk.waiting) > 0 }

// changed opens or closes an idle interval at t if whether the key is idle
// changed from was.
func (lk *liveKey) changed(t int64, was bool) {
	switch now := lk.idle(); {
	case was && !now:
		lk.closeIdle(t, false)
	case !was && now:
		lk.idleSince = t
		lk.idleProcs = append(lk.idleProcs[:0], lk.waiting...)
	}
}

// closeIdle ends the idle interval open since lk.idleSince at t.
func (lk *liveKey) closeIdle(t int64, end bool) {
	if d := t - lk.idleSince; d > lk.best {
		lk.best, lk.bestFrom, lk.bestTo, lk.bestEnd = d, lk.idleSince, t, end
		lk.bestProcs = append(lk.bestProcs[:0], lk.idleProcs...)
		sort.Strings(lk.bestProcs)
	}
	lk.idleProcs = lk.idleProcs[:0]
}

// addName adds name to the set s.
func addName(s []string, name string) []string {
	for _, n := range s {
		if n == name {
			return s
		}
	}
	return append(s, name)
}

// waitStart: proc, whose wait is w, invoked an acquire of key at t.
func (l *liveness) waitStart(w *liveWait, proc, key string, t int64) {
	l.waitEnd(w, proc, t) // the reader allows one open invoke per proc: none is open
	lk := l.key(key)
	w.key, w.open = lk, true
	was := lk.idle()
	lk.waiting = addName(lk.waiting, proc)
	lk.changed(t, was)
	if lk.idle() {
		lk.idleProcs = addName(lk.idleProcs, proc)
	}
}

// waitEnd: proc's acquire completed (ok, fail or info) at t.
func (l *liveness) waitEnd(w *liveWait, proc string, t int64) {
	if !w.open {
		return
	}
	lk := w.key
	w.key, w.open = nil, false
	was := lk.idle()
	if i := slices.Index(lk.waiting, proc); i >= 0 {
		lk.waiting = slices.Delete(lk.waiting, i, i+1)
	}
	lk.changed(t, was)
}

// holdStart: a proc began to hold key at t.
func (l *liveness) holdStart(key string, t int64) {
	lk := l.key(key)
	was := lk.idle()
	if lk.holders == 0 {
		lk.heldSince = t
	}
	lk.holders++
	lk.changed(t, was)
}

// holdEnd: a proc stopped holding key at t.
func (l *liveness) holdEnd(key string, t int64) {
	lk := l.keys.get(key)
	if lk == nil || lk.holders == 0 {
		return
	}
	was := lk.idle()
	lk.holders--
	if lk.holders == 0 {
		lk.heldNs += t - lk.heldSince
	}
	lk.changed(t, was)
}

// finish ends every wait and hold still open at end (the holds the
// checker has already closed) and returns one Liveness per key, by key,
// over a history that spans span ns.
func (l *liveness) finish(end, span int64) []Liveness {
	keys := l.keys.sorted()
	out := make([]Liveness, 0, len(keys))
	for _, k := range keys {
		lk := l.keys.get(k)
		if lk.idle() {
			lk.closeIdle(end, true)
		}
		held := lk.heldNs
		if lk.holders > 0 {
			held += end - lk.heldSince
		}
		lv := Liveness{Key: k, HeldNs: held, SpanNs: span, Procs: []string{}}
		if span > 0 {
			lv.HeldShare = float64(held) / float64(span)
		}
		if lk.best > 0 {
			lv.LongestIdleWaitNs, lv.From, lv.To, lv.UntilEnd = lk.best, lk.bestFrom, lk.bestTo, lk.bestEnd
			lv.Procs = append(lv.Procs, lk.bestProcs...)
		}
		out = append(out, lv)
	}
	return out
}

// LivenessText is l in words, for the text verdict and the report:
// "held 62.0% of 8s, longest idle wait 2.01s (t=3s..5.01s, c2,c3)".
func LivenessText(l Liveness) string {
	s := fmt.Sprintf("held %s of %s, longest idle wait %s", Percent(l.HeldShare), Round(l.SpanNs), Round(l.LongestIdleWaitNs))
	if l.LongestIdleWaitNs > 0 {
		res := resolution(l.LongestIdleWaitNs)
		end := roundTo(l.To, res)
		if l.UntilEnd {
			end += ", the end: still waiting"
		}
		s += fmt.Sprintf(" (t=%s..%s, %s)", roundTo(l.From, res), end, strings.Join(l.Procs, ","))
	}
	return s
}

// Round formats ns as a duration to the millisecond (to the microsecond
// below a millisecond, exact below a microsecond), for figures read by
// people.
func Round(ns int64) string { return roundTo(ns, resolution(ns)) }

func resolution(ns int64) time.Duration {
	switch d := time.Duration(ns).Abs(); {
	case d < time.Microsecond:
		return 1
	case d < time.Millisecond:
		return time.Microsecond
	}
	return time.Millisecond
}

func roundTo(ns int64, res time.Duration) string { return time.Duration(ns).Round(res).String() }

// Percent formats a share from 0 to 1 as a percentage with one decimal,
// never rounding a share below 1 up to 100% nor one above 0 down to 0%.
func Percent(share float64) string {
	p := share * 100
	switch {
	case share < 1 && p > 99.95:
		return ">99.9%"
	case share > 0 && p < 0.05:
		return "<0.1%"
	}
	return fmt.Sprintf("%.1f%%", p)
}
