package report

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/locksim/locksim/checker"
)

// Agreement is one cell compared between the simulator and real servers.
type Agreement struct {
	Scenario, Backend string
	// Kinds compares, for every kind either side saw, the share of the
	// simulator's seeds that showed it with the share of the real runs.
	Kinds []KindAgreement
	// Seeds and Runs are how many seeds and real runs the cell had.
	Seeds, Runs uint64
}

// KindAgreement is one violation kind of a cell on both sides.
type KindAgreement struct {
	Kind checker.Kind
	// SimSeeds of the simulator's seeds showed it, RealRuns of the real
	// runs.
	SimSeeds int
	RealRuns int
	// Lo and Hi bound the real share: its 95% Wilson score interval.
	Lo, Hi float64
}

// Z is the normal quantile of the intervals: 95% two-sided.
const Z = 1.959964

// Wilson is the Wilson score interval of k successes in n trials at Z.
func Wilson(k, n uint64) (lo, hi float64) {
	if n == 0 {
		return 0, 1
	}
	p := float64(k) / float64(n)
	nf := float64(n)
	z2 := Z * Z
	den := 1 + z2/nf
	center := (p + z2/(2*nf)) / den
	half := Z * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf)) / den
	return max(0, center-half), min(1, center+half)
}

// SimShare is the share of the simulator's seeds that showed the kind.
func (k *KindAgreement) SimShare(seeds uint64) float64 {
	if seeds == 0 {
		return 0
	}
	return float64(k.SimSeeds) / float64(seeds)
}

// Agrees reports whether the simulator's share lies within the real
// share's 95% interval. The simulator's share is taken as exact (its
// seeds are many; the real runs few).
func (a *Agreement) Agrees() bool {
	for i := range a.Kinds {
		if !a.kindAgrees(&a.Kinds[i]) {
			return false
		}
	}
	return true
}

func (a *Agreement) kindAgrees(k *KindAgreement) bool {
	const eps = 1e-9
	s := k.SimShare(a.Seeds)
	return s >= k.Lo-eps && s <= k.Hi+eps
}

// Agree pairs the cells that both comparisons ran, in the order of the
// real one. Cells that either could not run are left out. A real cell of
// one run counts each of its kinds once.
func Agree(sim, real *Summary) []Agreement {
	var out []Agreement
	for _, rc := range real.Cells {
		sc := sim.Cell(rc.Scenario, rc.Backend)
		if sc == nil || sc.Error != "" || rc.Error != "" {
			continue
		}
		runs := max(rc.Seeds, 1)
		a := Agreement{Scenario: rc.Scenario, Backend: rc.Backend, Seeds: sc.Seeds, Runs: runs}
		for _, k := range checker.Kinds {
			if !slices.Contains(sc.Kinds, k) && !slices.Contains(rc.Kinds, k) {
				continue
			}
			ka := KindAgreement{Kind: k, SimSeeds: sc.SeedsWithKind[k], RealRuns: rc.SeedsWithKind[k]}
			if sc.SeedsWithKind == nil && slices.Contains(sc.Kinds, k) {
				ka.SimSeeds = int(sc.Seeds) // no counts kept: every seed
			}
			if rc.SeedsWithKind == nil && slices.Contains(rc.Kinds, k) {
				ka.RealRuns = int(runs)
			}
			ka.Lo, ka.Hi = Wilson(uint64(ka.RealRuns), runs)
			a.Kinds = append(a.Kinds, ka)
		}
		out = append(out, a)
	}
	return out
}

// WriteAgreement prints, one cell a line, each kind's share on both sides
// with the real share's 95% interval, and a closing count; it returns how
// many cells disagree.
func WriteAgreement(w io.Writer, rows []Agreement) (int, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "%-36s %-18s %-70s %s\n", "scenario", "backend", "kind: simulator seeds, real runs [95% interval of the real share]", "")
	bad := 0
	for _, a := range rows {
		var parts []string
		for i := range a.Kinds {
			k := &a.Kinds[i]
			mark := ""
			if !a.kindAgrees(k) {
				mark = " (outside)"
			}
			parts = append(parts, fmt.Sprintf("%s: sim %d/%d = %.0f%%, real %d/%d [%.0f%%, %.0f%%]%s",
				k.Kind, k.SimSeeds, a.Seeds, 100*k.SimShare(a.Seeds), k.RealRuns, a.Runs, 100*k.Lo, 100*k.Hi, mark))
		}
		verdict := "agree"
		if !a.Agrees() {
			verdict, bad = "DISAGREE", bad+1
		}
		fmt.Fprintf(&b, "%-36s %-18s %-70s %s\n", a.Scenario, a.Backend, orSafe(parts), verdict)
	}
	fmt.Fprintf(&b, "%d cells, %d disagree\n", len(rows), bad)
	_, err := io.WriteString(w, b.String())
	return bad, err
}

func orSafe(s []string) string {
	if len(s) == 0 {
		return "safe"
	}
	return strings.Join(s, ", ")
}
