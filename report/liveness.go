package report

import (
	"fmt"
	"slices"
	"strings"

	"github.com/locksim/locksim/checker"
)

// KeyLiveness is one key's liveness over the runs of a cell (every seed of
// a simulator cell; the one run of a real cell), beside the verdict and
// never part of it: the share of the time with a holder, over all the
// runs together and in the run with the lowest; and the longest time some
// client waited while nobody held the key, in any run, with that run's
// seed and window. See checker.Liveness for what one run's figures mean.
//
// Every figure combines runs in any order to the same result, so that the
// shards of a sweep merge into what the unsharded sweep finds.
type KeyLiveness struct {
	Key string `json:"key"`
	// Runs is the number of runs (seeds) that acquired the key.
	Runs uint64 `json:"runs"`
	// HeldNs and SpanNs are the runs' held time and span, summed: their
	// ratio is the cell's held share (HeldShare).
	HeldNs int64 `json:"held_ns"`
	SpanNs int64 `json:"span_ns"`
	// LowestHeldShare is the lowest held share of one run, LowestSeed its
	// seed (the lowest seed of equal shares).
	LowestHeldShare float64 `json:"lowest_held_share"`
	LowestSeed      uint64  `json:"lowest_seed"`
	// LongestIdleWaitNs is the longest idle wait of any run, IdleSeed its
	// seed (the lowest seed of equal waits); From, To, Procs and UntilEnd
	// are that run's (checker.Liveness). Zero if no run had one.
	LongestIdleWaitNs int64    `json:"longest_idle_wait_ns"`
	IdleSeed          uint64   `json:"idle_seed,omitempty"`
	From              int64    `json:"from,omitempty"`
	To                int64    `json:"to,omitempty"`
	Procs             []string `json:"procs,omitempty"`
	UntilEnd          bool     `json:"until_end,omitempty"`
}

// HeldShare is the share of the runs' time with a holder, from 0 to 1:
// every run's held time over every run's span.
func (k *KeyLiveness) HeldShare() float64 {
	if k.SpanNs <= 0 {
		return 0
	}
	return float64(k.HeldNs) / float64(k.SpanNs)
}

// AddLiveness folds one run's liveness (a checker.Result's, seed seed)
// into a cell's, keeping the keys in order.
func AddLiveness(cell []KeyLiveness, seed uint64, run []checker.Liveness) []KeyLiveness {
	for _, l := range run {
		one := KeyLiveness{Key: l.Key, Runs: 1, HeldNs: l.HeldNs, SpanNs: l.SpanNs, LowestHeldShare: l.HeldShare, LowestSeed: seed}
		if l.LongestIdleWaitNs > 0 {
			one.LongestIdleWaitNs, one.IdleSeed, one.From, one.To, one.UntilEnd = l.LongestIdleWaitNs, seed, l.From, l.To, l.UntilEnd
			one.Procs = slices.Clone(l.Procs)
		}
		cell = mergeKey(cell, one)
	}
	return cell
}

// MergeLiveness combines the liveness of two parts of a cell (two shards'
// seeds) into what one sweep over both finds.
func MergeLiveness(a, b []KeyLiveness) []KeyLiveness {
	out := slices.Clone(a)
	for _, k := range b {
		out = mergeKey(out, k)
	}
	return out
}

// mergeKey merges k into the key of the same name in ls, or inserts it.
func mergeKey(ls []KeyLiveness, k KeyLiveness) []KeyLiveness {
	i, found := slices.BinarySearchFunc(ls, k.Key, func(x KeyLiveness, key string) int { return strings.Compare(x.Key, key) })
	if !found {
		return slices.Insert(ls, i, k)
	}
	m := &ls[i]
	m.Runs += k.Runs
	m.HeldNs += k.HeldNs
	m.SpanNs += k.SpanNs
	if k.LowestHeldShare < m.LowestHeldShare || (k.LowestHeldShare == m.LowestHeldShare && k.LowestSeed < m.LowestSeed) {
		m.LowestHeldShare, m.LowestSeed = k.LowestHeldShare, k.LowestSeed
	}
	if k.LongestIdleWaitNs > m.LongestIdleWaitNs || (k.LongestIdleWaitNs == m.LongestIdleWaitNs && k.LongestIdleWaitNs > 0 && k.IdleSeed < m.IdleSeed) {
		m.LongestIdleWaitNs, m.IdleSeed, m.From, m.To, m.Procs, m.UntilEnd = k.LongestIdleWaitNs, k.IdleSeed, k.From, k.To, k.Procs, k.UntilEnd
	}
	return ls
}

// cellLiveness is the cell's liveness over all its keys: the held share
// of all keys' time together and the longest idle wait of any key (the
// first key of equal waits); ok is false when the cell has none.
func cellLiveness(c *Cell) (all KeyLiveness, ok bool) {
	for i, k := range c.Liveness {
		if i == 0 {
			all = k
			continue
		}
		all.Runs = max(all.Runs, k.Runs)
		all.HeldNs += k.HeldNs
		all.SpanNs += k.SpanNs
		if k.LowestHeldShare < all.LowestHeldShare {
			all.LowestHeldShare, all.LowestSeed = k.LowestHeldShare, k.LowestSeed
		}
		if k.LongestIdleWaitNs > all.LongestIdleWaitNs {
			all.Key, all.LongestIdleWaitNs, all.IdleSeed, all.From, all.To, all.Procs, all.UntilEnd = k.Key, k.LongestIdleWaitNs, k.IdleSeed, k.From, k.To, k.Procs, k.UntilEnd
		}
	}
	return all, len(c.Liveness) > 0
}

// livenessText is a cell's liveness in a few words for the matrices:
// "held 62.0%, longest idle wait 15.2s" (and, for the simulator, the seed
// of that wait); "" if the cell has none.
func livenessText(s *Summary, c *Cell) string {
	all, ok := cellLiveness(c)
	if !ok {
		return ""
	}
	t := fmt.Sprintf("held %s, longest idle wait %s", checker.Percent(all.HeldShare()), checker.Round(all.LongestIdleWaitNs))
	if all.LongestIdleWaitNs > 0 {
		if all.UntilEnd {
			t += " to the end"
		}
		if s.Mode == ModeSim {
			t += fmt.Sprintf(" (seed %d)", all.IdleSeed)
		}
	}
	return t
}

// keyLivenessText is one key's liveness in full, for the cell's section
// of index.html.
func keyLivenessText(s *Summary, k *KeyLiveness) string {
	var b strings.Builder
	if s.Mode == ModeSim {
		fmt.Fprintf(&b, "key %s: held %s of the time over %d seeds (the lowest: %s, seed %d); ", k.Key, checker.Percent(k.HeldShare()), k.Runs, checker.Percent(k.LowestHeldShare), k.LowestSeed)
	} else {
		fmt.Fprintf(&b, "key %s: held %s of the run; ", k.Key, checker.Percent(k.HeldShare()))
	}
	if k.LongestIdleWaitNs == 0 {
		b.WriteString("no client ever waited while nobody held it")
		return b.String()
	}
	fmt.Fprintf(&b, "longest idle wait %s", checker.Round(k.LongestIdleWaitNs))
	if s.Mode == ModeSim {
		fmt.Fprintf(&b, " in seed %d", k.IdleSeed)
	}
	end := checker.Round(k.To)
	if k.UntilEnd {
		end += ", the end of the run: still waiting"
	}
	fmt.Fprintf(&b, ", t=%s..%s, by %s", checker.Round(k.From), end, strings.Join(k.Procs, ", "))
	return b.String()
}

// livenessIntro says what the liveness figures are, for both pages.
const livenessIntro = "Liveness, beside the verdicts and never part of them. `held`: the share of the time some client " +
	"believed it held the key (from an acquire's ok to its release, its lost notice or the end), each run timed from its first " +
	"event to its last. Longest idle wait: the longest time some client waited for the key (an acquire invoked, not yet answered) " +
	"while nobody held it. A lock-delay, a dead holder never freed, a lock service stalled on a minority show here. " +
	"Over a simulator cell's seeds: the held share of all the seeds' time together, and the longest idle wait of any seed, with that seed; " +
	"over several keys, likewise."
