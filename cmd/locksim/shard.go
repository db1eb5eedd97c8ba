package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/locksim/locksim/checker"
	"github.com/locksim/locksim/report"
	"github.com/locksim/locksim/sim"
)

// shardFlag is --shard I/N.
type shardFlag struct {
	set          bool
	index, count int
}

func (f *shardFlag) String() string {
	if f == nil || !f.set {
		return ""
	}
	return fmt.Sprintf("%d/%d", f.index, f.count)
}

func (f *shardFlag) Set(s string) error {
	i, n, err := report.ParseShard(s)
	if err != nil {
		return err
	}
	f.set, f.index, f.count = true, i, n
	return nil
}

// startShard makes the shard's directory and removes the result of an
// earlier shard there, so that a shard that fails or is interrupted
// leaves none for locksim merge to take.
func startShard(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(dir, report.ShardFile)); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// simResult is what locksim sim found, backend by backend: what it prints,
// what a shard of it saves and what locksim merge prints again.
type simResult struct {
	name, path string // the scenario's name and file
	backends   []string
	cells      []report.Cell
	parts      []report.ShardPart
}

// add records one backend's sweep: seeds first..first+n-1 given, ran of
// them run, the violating ones reported.
func (r *simResult) add(backend string, first, n, ran uint64, seconds float64, bad []*sim.Result, stopped bool) int {
	c := report.Cell{Scenario: r.name, Backend: backend, Seeds: ran, Violating: uint64(len(bad)),
		Counts: map[checker.Kind]int{}, SeedsWithKind: map[checker.Kind]int{}}
	p := report.ShardPart{Cell: c.Name(), First: first, Seeds: n, Time: seconds, Stopped: stopped}
	for _, res := range bad {
		counts := res.Verdict.Counts()
		for k, v := range counts {
			c.Counts[k] += v
			c.SeedsWithKind[k]++
		}
		p.Bad = append(p.Bad, report.SeedVerdict{Seed: res.Seed, Counts: counts})
	}
	c.Kinds = kindsOf(c.Counts)
	r.backends = append(r.backends, backend)
	r.cells = append(r.cells, c)
	r.parts = append(r.parts, p)
	return len(r.parts) - 1
}

// print writes backend i's lines as locksim sim prints them; timing
// follows the counts on the first line.
func (r *simResult) print(w io.Writer, i int, timing string) {
	c, p := &r.cells[i], &r.parts[i]
	fmt.Fprintf(w, "%s on %s: %d seeds, %d violating%s\n", r.name, c.Backend, c.Seeds, len(p.Bad), timing)
	for _, b := range p.Bad {
		fmt.Fprintf(w, "  seed %d: %s\n", b.Seed, countsList(b.Counts))
		fmt.Fprintf(w, "    replay: %s\n", r.replay(c.Backend, b.Seed))
	}
}

func (r *simResult) replay(backend string, seed uint64) string {
	return fmt.Sprintf("locksim sim %s --backend %s --seed %d", shellQuote(r.path), backend, seed)
}

// shard is the result as a shard of a sweep of seeds 1..total.
func (r *simResult) shard(f shardFlag, total uint64, keepGoing bool) *report.Shard {
	s := &report.Shard{Command: report.ShardSim, Index: f.index, Count: f.count, KeepGoing: keepGoing,
		Summary: report.Summary{Mode: report.ModeSim, Seeds: total, Backends: r.backends,
			Scenarios: []report.ScenarioInfo{{Name: r.name, File: r.path}}, Cells: r.cells},
		Parts: r.parts}
	for _, c := range r.cells {
		s.Plan = append(s.Plan, c.Name())
	}
	return s
}

// maxJUnitSeeds bounds the violating seeds a test case of locksim sim
// lists; all of them are on stdout.
const maxJUnitSeeds = 20

// writeJUnit writes one test case per backend: it fails if a seed
// violated, naming the kinds and each seed's replay command.
func (r *simResult) writeJUnit(path string) error {
	var cases []report.JUnitCase
	for i := range r.cells {
		c, p := &r.cells[i], &r.parts[i]
		tc := report.JUnitCase{Name: c.Name(), Classname: "locksim.sim", Time: report.JUnitTime(p.Time)}
		var b strings.Builder
		fmt.Fprintf(&b, "%s on %s: %d seeds, %d violating\n", r.name, c.Backend, c.Seeds, len(p.Bad))
		for j, bad := range p.Bad {
			if j == maxJUnitSeeds {
				fmt.Fprintf(&b, "... and %d more violating seeds\n", len(p.Bad)-j)
				break
			}
			fmt.Fprintf(&b, "seed %d: %s\n  replay: %s\n", bad.Seed, countsList(bad.Counts), r.replay(c.Backend, bad.Seed))
		}
		if len(p.Bad) > 0 {
			seen := map[checker.Kind]int{}
			for _, bad := range p.Bad {
				for k, v := range bad.Counts {
					seen[k] += v
				}
			}
			var kinds []string
			for _, k := range kindsOf(seen) {
				kinds = append(kinds, string(k))
			}
			tc.Failure = &report.JUnitProblem{Message: strings.Join(kinds, ", "), Type: "violation", Text: b.String()}
		} else {
			tc.SystemOut = b.String()
		}
		cases = append(cases, tc)
	}
	return report.WriteJUnit(path, "locksim sim", cases)
}

// seedsText names seeds first..first+n-1.
func seedsText(first, n uint64) string {
	switch n {
	case 0:
		return "no seeds (more shards than seeds)"
	case 1:
		return fmt.Sprintf("seed %d", first)
	}
	return fmt.Sprintf("seeds %d..%d", first, first+n-1)
}
