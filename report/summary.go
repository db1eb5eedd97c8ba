// Package report renders locksim's safety reports from a saved comparison
// (locksim compare): the matrix of backends × scenarios in Markdown, one
// self-contained HTML page with a timeline of every counterexample and
// plots of acquire latency drawn as inline SVG, and JSON for machines; and
// it checks a comparison against a committed baseline of verdicts.
//
// A comparison directory holds summary.json (Summary) and, per cell,
// runs/SCENARIO/BACKEND/history.jsonl: the history of the run the report
// shows (for the simulator, the first violating seed, else the first seed).
// Everything the pages show is read from those files, so `locksim report
// DIR` renders the same pages again from a saved run.
package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/locksim/locksim/checker"
)

// The modes of a comparison.
const (
	ModeSim  = "sim"  // the deterministic simulator, many seeds per cell
	ModeReal = "real" // real servers, one or more runs per cell
)

// File names inside a comparison directory.
const (
	SummaryFile  = "summary.json"  // the Summary, for machines
	MarkdownFile = "README.md"     // the matrix, for people
	HTMLFile     = "index.html"    // the matrix, timelines and plots
	BaselineFile = "baseline.json" // the expected verdicts (reports/ only)
	RunsDir      = "runs"          // runs/SCENARIO/BACKEND: each cell's drawn run
	HistoryFile  = "history.jsonl" // a run's history inside its directory
)

// Summary is a whole comparison: every backend through every scenario.
// It is summary.json.
type Summary struct {
	// Mode is ModeSim or ModeReal.
	Mode string `json:"mode"`
	// Seeds is the number of seeds run per cell (sim: seeds 1..Seeds).
	Seeds uint64 `json:"seeds,omitempty"`
	// Seed is the seed of every real run (workload and nemesis).
	Seed uint64 `json:"seed,omitempty"`
	// Backends and Scenarios are the matrix's columns and rows, in order.
	Backends  []string       `json:"backends"`
	Scenarios []ScenarioInfo `json:"scenarios"`
	// Cells are the runs, one per scenario and backend the scenario lists.
	Cells []Cell `json:"cells"`
	// Skipped are the cells the mode cannot run (a workload the simulator
	// does not model); they have no verdict.
	Skipped []Skip `json:"skipped,omitempty"`
}

// Skip is a cell left out of a comparison, and why.
type Skip struct {
	Scenario string `json:"scenario"`
	Backend  string `json:"backend"`
	Reason   string `json:"reason"`
}

// ScenarioInfo names a scenario of the comparison.
type ScenarioInfo struct {
	Name        string `json:"name"`
	File        string `json:"file"`
	Description string `json:"description,omitempty"`
	// Fencing is the scenario's workload.fencing (scenario.Fencing).
	Fencing string `json:"fencing,omitempty"`
	// Family names the scenarios of the comparison that are this one
	// under other fencing modes (the same file but for name, description,
	// backends and fencing): the name of its shortest member. Empty when
	// no other scenario is.
	Family string `json:"family,omitempty"`
}

// Cell is the verdict of one backend on one scenario.
type Cell struct {
	Scenario string `json:"scenario"`
	Backend  string `json:"backend"`
	// Kinds is the verdict: the violation kinds seen in any run of the
	// cell, in checker.Kinds order. Empty means safe.
	Kinds []checker.Kind `json:"kinds"`
	// Counts is the number of violations of each kind, summed over seeds.
	Counts map[checker.Kind]int `json:"counts,omitempty"`
	// SeedsWithKind is, per kind, how many seeds showed it (sim), or how
	// many runs (real, with more than one run per cell).
	SeedsWithKind map[checker.Kind]int `json:"seeds_with_kind,omitempty"`
	// Seeds is how many seeds ran, Violating how many of them violated
	// (real: the runs, each with its own seed).
	Seeds     uint64 `json:"seeds"`
	Violating uint64 `json:"violating"`
	// Shown is the run the report draws.
	Shown *Run `json:"shown,omitempty"`
	// Liveness is per key acquired, by key: figures beside the verdict
	// over every run of the cell, never part of it.
	Liveness []KeyLiveness `json:"liveness,omitempty"`
	// Notes are what the run could not apply (real runs).
	Notes []string `json:"notes,omitempty"`
	// Error is set when the cell could not run; it then has no verdict.
	Error string `json:"error,omitempty"`
}

// Run is one run of a cell, kept with its history for the report.
type Run struct {
	// Seed is the run's seed.
	Seed uint64 `json:"seed"`
	// Dir is the directory of history.jsonl, relative to the comparison.
	Dir string `json:"dir"`
	// Replay is the command that runs it again.
	Replay string `json:"replay"`
	// TTL is the lease the scenario asks for, in ns (0: the backend's
	// default, not drawn).
	TTL int64 `json:"ttl,omitempty"`
	// Violations and Linearizability are the checker's verdict on it.
	Violations      []checker.Violation `json:"violations"`
	Linearizability []checker.LinResult `json:"linearizability,omitempty"`
}

// Name is the cell's name in baselines and messages: SCENARIO/BACKEND.
func (c *Cell) Name() string { return c.Scenario + "/" + c.Backend }

// Anchor is the cell's id in index.html.
func (c *Cell) Anchor() string { return anchor(c.Scenario, c.Backend) }

func anchor(scenario, backend string) string { return "cell-" + scenario + "--" + backend }

// Safe reports whether the cell ran and saw no violation.
func (c *Cell) Safe() bool { return c.Error == "" && len(c.Kinds) == 0 }

// Cell returns the cell of scenario and backend, nil if none ran.
func (s *Summary) Cell(scenario, backend string) *Cell {
	for i := range s.Cells {
		if s.Cells[i].Scenario == scenario && s.Cells[i].Backend == backend {
			return &s.Cells[i]
		}
	}
	return nil
}

// Sort puts the cells in matrix order: scenarios as listed, then backends.
func (s *Summary) Sort() {
	si := func(n string) int {
		return slices.IndexFunc(s.Scenarios, func(x ScenarioInfo) bool { return x.Name == n })
	}
	slices.SortStableFunc(s.Cells, func(a, b Cell) int {
		if d := si(a.Scenario) - si(b.Scenario); d != 0 {
			return d
		}
		return slices.Index(s.Backends, a.Backend) - slices.Index(s.Backends, b.Backend)
	})
}

// Load reads DIR/summary.json.
func Load(dir string) (*Summary, error) {
	data, err := os.ReadFile(filepath.Join(dir, SummaryFile))
	if err != nil {
		return nil, err
	}
	var s Summary
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, SummaryFile), err)
	}
	if s.Mode != ModeSim && s.Mode != ModeReal {
		return nil, fmt.Errorf("%s: field \"mode\": want %q or %q, got %q", filepath.Join(dir, SummaryFile), ModeSim, ModeReal, s.Mode)
	}
	return &s, nil
}

// WriteJSON writes s as indented JSON (summary.json).
func WriteJSON(s *Summary) ([]byte, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Render writes summary.json, README.md and index.html into dir, reading
// the histories of the shown runs from dir.
func Render(dir string, s *Summary) error {
	js, err := WriteJSON(s)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, SummaryFile), js, 0o644); err != nil {
		return err
	}
	var md strings.Builder
	WriteMarkdown(&md, s)
	if err := os.WriteFile(filepath.Join(dir, MarkdownFile), []byte(md.String()), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, HTMLFile))
	if err != nil {
		return err
	}
	if err := WriteHTML(f, dir, s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// kindsText is the cell's verdict in words.
func kindsText(ks []checker.Kind) string {
	if len(ks) == 0 {
		return "safe"
	}
	parts := make([]string, len(ks))
	for i, k := range ks {
		parts[i] = string(k)
	}
	return strings.Join(parts, ", ")
}
