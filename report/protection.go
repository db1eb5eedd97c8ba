package report

import (
	"fmt"
	"slices"
	"strings"

	"github.com/locksim/locksim/checker"
	"github.com/locksim/locksim/scenario"
)

// Protection is the view "what protected the resource": the scenarios of
// one family — the same scenario under different fencing modes (the same
// file but for its name, description, backends and workload.fencing) —
// side by side, per backend: which modes kept damage and fencing-resource
// away while the lock itself failed.
type Protection struct {
	// Family is the family's name (ScenarioInfo.Family).
	Family string
	// Modes are the family's fencing modes, weakest first
	// (scenario.FencingModes order).
	Modes []string
	// Rows is one row per backend of the comparison that ran any member.
	Rows []ProtectionRow
}

// ProtectionRow is one backend across a family's modes.
type ProtectionRow struct {
	Backend string
	// Lock is what the lock did in this family: the lock-side kinds
	// (mutual-exclusion, fencing-lock) seen under any mode, with figures;
	// "held" if none.
	Lock string
	// Cells are per mode (Protection.Modes).
	Cells []ProtectionCell
}

// ProtectionCell is one backend under one fencing mode.
type ProtectionCell struct {
	// Text: "protected" (no damage, no fencing-resource), the resource-side
	// kinds with figures, "not supported" (guarded on a backend whose lock
	// service has no guarded write), "error", or "" (not run).
	Text string
	// Class is safe, bad, error or "" (for the HTML page).
	Class string
	// Cell is the cell, nil if it did not run.
	Cell *Cell
}

// resourceKinds are the kinds a fencing mode is there to keep away.
var resourceKinds = []checker.Kind{checker.FencingResource, checker.Damage}

// Protections groups s's scenarios into families of fencing modes and
// returns one Protection per family of two modes or more, in the order
// of the scenarios.
func Protections(s *Summary) []Protection {
	var out []Protection
	seen := map[string]bool{}
	for _, sc := range s.Scenarios {
		if sc.Family == "" || seen[sc.Family] {
			continue
		}
		seen[sc.Family] = true
		members := map[string]string{} // mode -> scenario name
		for _, o := range s.Scenarios {
			if o.Family == sc.Family {
				members[string(scenario.Fencing(o.Fencing).Mode())] = o.Name
			}
		}
		if len(members) < 2 {
			continue
		}
		p := Protection{Family: sc.Family}
		for _, m := range scenario.FencingModes {
			if _, ok := members[string(m)]; ok {
				p.Modes = append(p.Modes, string(m))
			}
		}
		for _, be := range s.Backends {
			row := ProtectionRow{Backend: be}
			lock := map[checker.Kind]bool{}
			ran := false
			for _, m := range p.Modes {
				c := s.Cell(members[m], be)
				pc := ProtectionCell{Cell: c}
				switch {
				case c == nil && m == string(scenario.FenceGuarded) && !slices.Contains(scenario.GuardedBackends, be):
					pc.Text, pc.Class = "not supported", "error"
				case c == nil:
				case c.Error != "":
					pc.Text, pc.Class = "error", "error"
					ran = true
				default:
					ran = true
					var parts []string
					for _, k := range c.Kinds {
						if slices.Contains(resourceKinds, k) {
							parts = append(parts, kindFigure(s, c, k))
						} else {
							lock[k] = true
						}
					}
					pc.Text, pc.Class = "protected", "safe"
					if len(parts) > 0 {
						pc.Text, pc.Class = strings.Join(parts, ", "), "bad"
					}
				}
				row.Cells = append(row.Cells, pc)
			}
			if !ran {
				continue
			}
			row.Lock = "held"
			var ks []string
			for _, k := range checker.Kinds {
				if lock[k] {
					ks = append(ks, string(k))
				}
			}
			if len(ks) > 0 {
				row.Lock = "failed: " + strings.Join(ks, ", ")
			}
			p.Rows = append(p.Rows, row)
		}
		out = append(out, p)
	}
	return out
}

// kindFigure is one kind of a cell with its figures.
func kindFigure(s *Summary, c *Cell, k checker.Kind) string {
	if s.Mode == ModeSim {
		return fmt.Sprintf("%s %d/%d seeds", k, c.SeedsWithKind[k], c.Seeds)
	}
	return fmt.Sprintf("%s ×%d", k, c.Counts[k])
}

// protectionIntro says what the view shows, for both pages.
const protectionIntro = "The same scenario under each fencing mode (`workload.fencing`), per backend: " +
	"`protected` means neither `damage` nor `fencing-resource` in any run, while the lock column says whether the lock itself failed. " +
	"`none` checks nothing; `writes` rejects a write with a token lower than one accepted (a read is not checked, so a holder that " +
	"read before a newer holder wrote can still write a value based on its stale read); `all` fences reads too (the highest token of any request); " +
	"`guarded` keeps the data in the lock service and makes each write conditional on the lock in one atomic step " +
	"(etcd: a transaction If(IsOwner()); Consul: a KV transaction with check-session; PostgreSQL: the write in the statement that checks " +
	"the lock row, or on the advisory lock's own connection). memcached has no such operation: `guarded` is not supported there."

// writeProtectionMarkdown writes the view's section of README.md.
func writeProtectionMarkdown(b *strings.Builder, s *Summary) {
	ps := Protections(s)
	if len(ps) == 0 {
		return
	}
	b.WriteString("\n## What protected the resource\n\n" + protectionIntro + "\n")
	for _, p := range ps {
		fmt.Fprintf(b, "\n### %s\n\n| backend | the lock |", p.Family)
		for _, m := range p.Modes {
			fmt.Fprintf(b, " %s |", m)
		}
		b.WriteString("\n|---|---|")
		for range p.Modes {
			b.WriteString("---|")
		}
		b.WriteString("\n")
		for _, r := range p.Rows {
			fmt.Fprintf(b, "| %s | %s |", r.Backend, r.Lock)
			for _, c := range r.Cells {
				if c.Cell != nil {
					fmt.Fprintf(b, " [%s](index.html#%s) |", c.Text, c.Cell.Anchor())
				} else {
					fmt.Fprintf(b, " %s |", c.Text)
				}
			}
			b.WriteString("\n")
		}
	}
}
