package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/locksim/locksim/checker"
)

// ShardFile is the name of a shard's result inside its directory (the
// --out of locksim sim or compare run with --shard).
const ShardFile = "shard.json"

// The commands that write shards.
const (
	ShardSim     = "sim"     // locksim sim --shard
	ShardCompare = "compare" // locksim compare --shard
)

// Shard is one shard's result of a sweep split over several processes or
// machines (shard.json). Every shard of one sweep plans the same cells
// (Plan, Summary's scenarios, backends and skipped cells); each runs its
// part: in the simulator a block of every cell's seeds (SeedRange), on
// real servers every Count-th cell (RealCells). MergeShards combines the
// shards into what one unsharded run would have written.
type Shard struct {
	// Command is ShardSim or ShardCompare.
	Command string `json:"command"`
	// Index is this shard's index, 0..Count-1.
	Index int `json:"index"`
	Count int `json:"count"`
	// KeepGoing is locksim sim's --keep-going (ShardSim only).
	KeepGoing bool `json:"keep_going,omitempty"`
	// Plan is every cell of the sweep (SCENARIO/BACKEND), in run order.
	Plan []string `json:"plan"`
	// Summary is the sweep's plan (mode, seeds: the total per cell,
	// scenarios, backends, skipped cells) and this shard's cells, their
	// figures counting this shard's seeds only.
	Summary Summary `json:"summary"`
	// Parts says what this shard ran of each of its cells, in the order of
	// Summary.Cells.
	Parts []ShardPart `json:"parts"`
}

// ShardPart is what one shard ran of one cell.
type ShardPart struct {
	// Cell is SCENARIO/BACKEND.
	Cell string `json:"cell"`
	// First and Seeds are the seeds given to the shard: First..First+Seeds-1
	// (real: the one run's seed, Seeds 1).
	First uint64 `json:"first"`
	Seeds uint64 `json:"seeds"`
	// Time is the wall time the shard spent on the cell, in seconds.
	Time float64 `json:"time"`
	// Bad is, for ShardSim, every violating seed the shard reports, in
	// seed order, with its violation counts.
	Bad []SeedVerdict `json:"bad,omitempty"`
	// Stopped is set (ShardSim without --keep-going) when the shard stopped
	// handing out seeds at its first violation.
	Stopped bool `json:"stopped,omitempty"`
}

// SeedVerdict is the verdict of one violating seed.
type SeedVerdict struct {
	Seed   uint64               `json:"seed"`
	Counts map[checker.Kind]int `json:"counts"`
}

// ParseShard parses a --shard value, "I/N": shard I (0-based, as a
// Kubernetes Indexed Job's JOB_COMPLETION_INDEX) of N.
func ParseShard(s string) (index, count int, err error) {
	i, n, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, fmt.Errorf("want I/N (shard I of N, I from 0), got %q", s)
	}
	if _, err := fmt.Sscan(n, &count); err != nil || count < 1 || fmt.Sprint(count) != strings.TrimSpace(n) {
		return 0, 0, fmt.Errorf("want I/N with N a whole number from 1, got %q", s)
	}
	if _, err := fmt.Sscan(i, &index); err != nil || index < 0 || index >= count || fmt.Sprint(index) != strings.TrimSpace(i) {
		return 0, 0, fmt.Errorf("want I/N with I a whole number from 0 to N-1, got %q", s)
	}
	return index, count, nil
}

// SeedRange is the block of seeds 1..total that shard index of count runs:
// seeds first..first+n-1. The blocks of shards 0..count-1 are in order,
// cover 1..total exactly, and differ in size by at most one seed.
func SeedRange(total uint64, index, count int) (first, n uint64) {
	at := func(i int) uint64 {
		hi, lo := bits.Mul64(total, uint64(i))
		q, _ := bits.Div64(hi, lo, uint64(count))
		return q
	}
	a, b := at(index), at(index+1)
	return 1 + a, b - a
}

// RealCell reports whether shard index of count runs the i-th cell of a
// real comparison's plan (every count-th cell from index).
func RealCell(i, index, count int) bool { return i%count == index }

// Save writes the shard to dir/shard.json.
func (s *Shard) Save(dir string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ShardFile), append(b, '\n'), 0o644)
}

// LoadShard reads dir/shard.json.
func LoadShard(dir string) (*Shard, error) {
	path := filepath.Join(dir, ShardFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Shard
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, jsonError(path, data, err)
	}
	switch {
	case s.Command != ShardSim && s.Command != ShardCompare:
		return nil, fmt.Errorf("%s: field \"command\": want %q or %q, got %q", path, ShardSim, ShardCompare, s.Command)
	case s.Count < 1 || s.Index < 0 || s.Index >= s.Count:
		return nil, fmt.Errorf("%s: field \"index\": shard %d of %d", path, s.Index, s.Count)
	case s.Summary.Mode != ModeSim && s.Summary.Mode != ModeReal:
		return nil, fmt.Errorf("%s: field \"summary.mode\": want %q or %q, got %q", path, ModeSim, ModeReal, s.Summary.Mode)
	case len(s.Parts) != len(s.Summary.Cells):
		return nil, fmt.Errorf("%s: field \"parts\": %d parts for %d cells", path, len(s.Parts), len(s.Summary.Cells))
	}
	for i := range s.Parts {
		if s.Parts[i].Cell != s.Summary.Cells[i].Name() {
			return nil, fmt.Errorf("%s: field \"parts[%d].cell\": %q, but the cell is %q", path, i, s.Parts[i].Cell, s.Summary.Cells[i].Name())
		}
	}
	return &s, nil
}

// FindShards lists the shard directories among dirs: a directory holding
// shard.json, or, if it holds none, each of its subdirectories that does.
func FindShards(dirs []string) ([]string, error) {
	var out []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, ShardFile)); err == nil {
			out = append(out, d)
			continue
		}
		st, err := os.Stat(d)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("%s: not a directory", d)
		}
		m, err := filepath.Glob(filepath.Join(d, "*", ShardFile))
		if err != nil {
			return nil, err
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("%s: no %s in it or in its subdirectories", d, ShardFile)
		}
		for _, f := range m {
			out = append(out, filepath.Dir(f))
		}
	}
	return out, nil
}

// Merged is the result of MergeShards.
type Merged struct {
	// Command, KeepGoing and Count are the shards'.
	Command   string
	KeepGoing bool
	Count     int
	// Summary is what the unsharded run would have found: every cell with
	// the figures of all its seeds, Shown the run it would have drawn.
	Summary *Summary
	// Parts are the merged parts, in the order of Summary.Cells (Bad
	// holding the seeds the unsharded run would report).
	Parts []ShardPart
	// From is, per cell (SCENARIO/BACKEND), the index into the shards
	// given to MergeShards of the shard that holds the run Shown draws
	// (absent when there is none).
	From map[string]int
}

// MergeShards combines the shards of one sweep, given in any order (names
// label them in errors: their directories). Every shard 0..N-1 must be
// there once, all planning the same cells, and together they must cover
// every seed (or real cell) exactly once.
func MergeShards(names []string, shards []*Shard) (*Merged, error) {
	if len(shards) == 0 {
		return nil, errors.New("no shards")
	}
	s0 := shards[0]
	byIndex := make([]int, s0.Count)
	for i := range byIndex {
		byIndex[i] = -1
	}
	plan := planOf(s0)
	for i, s := range shards {
		switch {
		case s.Command != s0.Command:
			return nil, fmt.Errorf("%s: a shard of locksim %s, %s one of locksim %s", names[i], s.Command, names[0], s0.Command)
		case s.Count != s0.Count:
			return nil, fmt.Errorf("%s: shard %d of %d, but %s is of %d", names[i], s.Index, s.Count, names[0], s0.Count)
		case s.KeepGoing != s0.KeepGoing:
			return nil, fmt.Errorf("%s: --keep-going differs from %s's", names[i], names[0])
		case byIndex[s.Index] >= 0:
			return nil, fmt.Errorf("%s and %s are both shard %d of %d", names[byIndex[s.Index]], names[i], s.Index, s.Count)
		}
		if p := planOf(s); p != plan {
			return nil, fmt.Errorf("%s: not a shard of the same sweep as %s (another plan of cells, scenarios or seeds)", names[i], names[0])
		}
		byIndex[s.Index] = i
	}
	for idx, i := range byIndex {
		if i < 0 {
			return nil, fmt.Errorf("shard %d of %d is missing", idx, s0.Count)
		}
	}

	sum := &Summary{Mode: s0.Summary.Mode, Seeds: s0.Summary.Seeds, Seed: s0.Summary.Seed,
		Backends: s0.Summary.Backends, Scenarios: s0.Summary.Scenarios, Skipped: s0.Summary.Skipped}
	m := &Merged{Command: s0.Command, KeepGoing: s0.KeepGoing, Count: s0.Count, Summary: sum, From: map[string]int{}}
	type piece struct {
		shard int
		cell  *Cell
		part  *ShardPart
	}
	pieces := map[string][]piece{}
	for _, i := range byIndex { // in shard order
		s := shards[i]
		for j := range s.Summary.Cells {
			c := &s.Summary.Cells[j]
			if !slices.Contains(s0.Plan, c.Name()) {
				return nil, fmt.Errorf("%s: cell %s is not in the plan", names[i], c.Name())
			}
			pieces[c.Name()] = append(pieces[c.Name()], piece{i, c, &s.Parts[j]})
		}
	}
	for _, name := range s0.Plan {
		ps := pieces[name]
		if len(ps) == 0 {
			return nil, fmt.Errorf("cell %s: no shard ran it", name)
		}
		// The shards' seeds must tile 1..Seeds (sim) or the cell be one
		// shard's (real).
		if sum.Mode == ModeReal {
			if len(ps) != 1 {
				return nil, fmt.Errorf("cell %s: run by %s and %s", name, names[ps[0].shard], names[ps[1].shard])
			}
		} else {
			next := uint64(1)
			for _, p := range ps {
				if p.part.First != next {
					return nil, fmt.Errorf("%s: cell %s: seeds from %d, want %d", names[p.shard], name, p.part.First, next)
				}
				next += p.part.Seeds
			}
			if next-1 != sum.Seeds {
				return nil, fmt.Errorf("cell %s: the shards ran seeds 1..%d, want 1..%d", name, next-1, sum.Seeds)
			}
		}
		c := Cell{Scenario: ps[0].cell.Scenario, Backend: ps[0].cell.Backend, Counts: map[checker.Kind]int{}}
		part := ShardPart{Cell: name, First: ps[0].part.First}
		if sum.Mode == ModeSim {
			c.SeedsWithKind = map[checker.Kind]int{}
		}
		for _, p := range ps {
			pc := p.cell
			c.Seeds += pc.Seeds
			c.Violating += pc.Violating
			for k, v := range pc.Counts {
				c.Counts[k] += v
			}
			for k, v := range pc.SeedsWithKind {
				c.SeedsWithKind[k] += v
			}
			for _, n := range pc.Notes { // every shard of a cell has its notes
				if !slices.Contains(c.Notes, n) {
					c.Notes = append(c.Notes, n)
				}
			}
			c.Liveness = MergeLiveness(c.Liveness, pc.Liveness)
			if c.Error == "" && pc.Error != "" {
				c.Error = pc.Error
			}
			part.Seeds += p.part.Seeds
			part.Time += p.part.Time
			part.Bad = append(part.Bad, p.part.Bad...)
			part.Stopped = part.Stopped || p.part.Stopped
		}
		// The run the unsharded sweep draws (compare): its first violating
		// seed, which the first shard in seed order with a violating seed
		// shows, else seed 1, which the shard that ran it shows (not
		// always shard 0: with more shards than seeds the first are
		// empty).
		from := slices.IndexFunc(ps, func(p piece) bool { return p.cell.Violating > 0 && p.cell.Shown != nil })
		if from < 0 {
			from = slices.IndexFunc(ps, func(p piece) bool { return p.cell.Shown != nil })
		}
		if from >= 0 {
			c.Shown = ps[from].cell.Shown
			m.From[name] = ps[from].shard
		}
		if !m.KeepGoing && s0.Command == ShardSim && len(part.Bad) > 1 {
			part.Bad = part.Bad[:1]
		}
		if s0.Command == ShardSim {
			c.Violating = uint64(len(part.Bad))
		}
		c.Kinds = []checker.Kind{}
		for _, k := range checker.Kinds {
			if c.Counts[k] > 0 {
				c.Kinds = append(c.Kinds, k)
			}
		}
		sum.Cells = append(sum.Cells, c)
		m.Parts = append(m.Parts, part)
	}
	if s0.Command == ShardCompare {
		// compare's matrix order; sim keeps its backends' order, which the
		// plan has.
		order := map[string]int{}
		for i := range sum.Cells {
			order[sum.Cells[i].Name()] = i
		}
		sum.Sort()
		parts := make([]ShardPart, len(m.Parts))
		for i := range sum.Cells {
			parts[i] = m.Parts[order[sum.Cells[i].Name()]]
		}
		m.Parts = parts
	}
	return m, nil
}

// planOf is what every shard of one sweep shares, as a comparable string.
func planOf(s *Shard) string {
	p := struct {
		Plan      []string
		Mode      string
		Seeds     uint64
		Seed      uint64
		Backends  []string
		Scenarios []ScenarioInfo
		Skipped   []Skip
	}{s.Plan, s.Summary.Mode, s.Summary.Seeds, s.Summary.Seed, s.Summary.Backends, s.Summary.Scenarios, s.Summary.Skipped}
	b, _ := json.Marshal(p)
	return string(b)
}
