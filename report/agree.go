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

// Almost is the share of seeds above which the simulator says a kind
// (almost) always occurs, so one real run must show it too.
const Almost = 0.95

// Agrees reports whether the two verdicts agree. A real run is one sample
// and the simulator many: they agree when every kind the real run saw is
// one the simulator saw in some seed, and every kind the simulator saw in
// at least Almost of its seeds the real run saw too. A kind the simulator
// sees only sometimes may or may not show in one real run.
func (a *Agreement) Agrees() bool {
	for _, k := range a.Real {
		if !slices.Contains(a.Sim, k) {
			return false
		}
	}
	for _, k := range a.Sim {
		if a.always(k) && !slices.Contains(a.Real, k) {
			return false
		}
	}
	return true
}

// always reports whether the simulator saw k in at least Almost of its
// seeds (all of them, when it does not say how many).
func (a *Agreement) always(k checker.Kind) bool {
	if a.Seeds == 0 || a.SimSeeds == nil {
		return true
	}
	return float64(a.SimSeeds[k]) >= Almost*float64(a.Seeds)
}

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
