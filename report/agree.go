package report

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/locksim/locksim/checker"
)

// Agreement is one cell compared between the simulator and real servers.
type Agreement struct {
	Scenario, Backend string
	// Sim and Real are the violation kinds each saw.
	Sim, Real []checker.Kind
	// SimSeeds is, per kind, how many of the simulator's seeds showed it;
	// Seeds how many ran.
	SimSeeds map[checker.Kind]int
	Seeds    uint64
}

// Agrees reports whether both saw the same kinds.
func (a *Agreement) Agrees() bool { return slices.Equal(a.Sim, a.Real) }

// Agree pairs the cells that both comparisons ran, in the order of the
// real one. Cells that either could not run are left out.
func Agree(sim, real *Summary) []Agreement {
	var out []Agreement
	for _, rc := range real.Cells {
		sc := sim.Cell(rc.Scenario, rc.Backend)
		if sc == nil || sc.Error != "" || rc.Error != "" {
			continue
		}
		a := Agreement{Scenario: rc.Scenario, Backend: rc.Backend,
			Sim: sorted(sc.Kinds), Real: sorted(rc.Kinds), SimSeeds: sc.SeedsWithKind, Seeds: sc.Seeds}
		out = append(out, a)
	}
	return out
}

func sorted(k []checker.Kind) []checker.Kind {
	k = slices.Clone(k)
	slices.Sort(k)
	return k
}

// WriteAgreement prints both verdicts side by side, one cell a line, and a
// closing count; it returns how many cells disagree.
func WriteAgreement(w io.Writer, rows []Agreement) (int, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "%-36s %-18s %-44s %-36s %s\n", "scenario", "backend", "simulator (seeds with kind / seeds)", "real", "")
	bad := 0
	for _, a := range rows {
		var sim []string
		for _, k := range a.Sim {
			sim = append(sim, fmt.Sprintf("%s %d/%d", k, a.SimSeeds[k], a.Seeds))
		}
		mark := "agree"
		if !a.Agrees() {
			mark, bad = "DISAGREE", bad+1
		}
		fmt.Fprintf(&b, "%-36s %-18s %-44s %-36s %s\n", a.Scenario, a.Backend, orSafe(sim), orSafe(kindNames(a.Real)), mark)
	}
	fmt.Fprintf(&b, "%d cells, %d disagree\n", len(rows), bad)
	_, err := io.WriteString(w, b.String())
	return bad, err
}

func kindNames(k []checker.Kind) []string {
	out := make([]string, len(k))
	for i, x := range k {
		out[i] = string(x)
	}
	return out
}

func orSafe(s []string) string {
	if len(s) == 0 {
		return "safe"
	}
	return strings.Join(s, ", ")
}
