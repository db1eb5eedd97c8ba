package report

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/locksim/locksim/checker"
)

func TestParseShard(t *testing.T) {
	for _, tc := range []struct {
		in   string
		i, n int
		err  bool
	}{
		{"0/1", 0, 1, false},
		{"3/4", 3, 4, false},
		{"4/4", 0, 0, true},
		{"-1/4", 0, 0, true},
		{"1/0", 0, 0, true},
		{"1", 0, 0, true},
		{"a/4", 0, 0, true},
		{"1/4x", 0, 0, true},
		{"$(JOB_COMPLETION_INDEX)/4", 0, 0, true}, // not expanded
		{"/4", 0, 0, true},
	} {
		i, n, err := ParseShard(tc.in)
		if (err != nil) != tc.err || i != tc.i || n != tc.n {
			t.Errorf("ParseShard(%q) = %d, %d, %v", tc.in, i, n, err)
		}
	}
}

// The shards' blocks cover seeds 1..total exactly once, in order, and
// differ in size by at most one seed.
func TestSeedRange(t *testing.T) {
	for total := uint64(0); total <= 40; total++ {
		for count := 1; count <= 12; count++ {
			next := uint64(1)
			lo, hi := total, uint64(0)
			for i := range count {
				first, n := SeedRange(total, i, count)
				if first != next {
					t.Fatalf("SeedRange(%d, %d, %d) starts at %d, want %d", total, i, count, first, next)
				}
				next += n
				lo, hi = min(lo, n), max(hi, n)
			}
			if next != total+1 || hi-lo > 1 {
				t.Fatalf("total %d, %d shards: cover 1..%d, sizes %d..%d", total, count, next-1, lo, hi)
			}
		}
	}
	// Large sweeps do not overflow.
	if first, n := SeedRange(1<<62, 3, 4); first != 3<<60+1 || n != 1<<60 {
		t.Errorf("SeedRange(2^62, 3, 4) = %d, %d", first, n)
	}
}

// handShards splits a sim comparison of two cells over seeds 1..6 into
// three shards of two seeds each. In control/etcd no seed violates; in
// hp/etcd seeds 3 and 6 do (so the unsharded run would draw seed 3,
// which shard 1 holds).
func handShards() []*Shard {
	me := checker.MutualExclusion
	plan := []string{"control/etcd", "hp/etcd"}
	var out []*Shard
	for i := range 3 {
		first := uint64(2*i + 1)
		s := &Shard{Command: ShardCompare, Index: i, Count: 3, Plan: plan,
			Summary: Summary{Mode: ModeSim, Seeds: 6, Backends: []string{"etcd"},
				Scenarios: []ScenarioInfo{{Name: "control", File: "c.yaml"}, {Name: "hp", File: "hp.yaml"}}}}
		ctl := Cell{Scenario: "control", Backend: "etcd", Kinds: []checker.Kind{}, Seeds: 2}
		if first == 1 {
			ctl.Shown = &Run{Seed: 1, Dir: "runs/control/etcd", Replay: "locksim sim c.yaml --backend etcd --seed 1", Violations: []checker.Violation{}}
		}
		hp := Cell{Scenario: "hp", Backend: "etcd", Kinds: []checker.Kind{}, Seeds: 2}
		if i > 0 { // seeds 3 and 6
			bad := first
			if i == 2 {
				bad = 6
			}
			hp.Kinds = []checker.Kind{me}
			hp.Violating = 1
			hp.Counts = map[checker.Kind]int{me: 10 * i}
			hp.SeedsWithKind = map[checker.Kind]int{me: 1}
			hp.Shown = &Run{Seed: bad, Dir: "runs/hp/etcd", Replay: fmt.Sprintf("locksim sim hp.yaml --backend etcd --seed %d", bad), Violations: []checker.Violation{{Kind: me}}}
		} else {
			hp.Shown = &Run{Seed: 1, Dir: "runs/hp/etcd", Replay: "locksim sim hp.yaml --backend etcd --seed 1", Violations: []checker.Violation{}}
		}
		s.Summary.Cells = []Cell{ctl, hp}
		s.Parts = []ShardPart{{Cell: "control/etcd", First: first, Seeds: 2, Time: 1}, {Cell: "hp/etcd", First: first, Seeds: 2, Time: 2}}
		out = append(out, s)
	}
	return out
}

func TestMergeShards(t *testing.T) {
	shards := handShards()
	// Given in any order.
	names := []string{"s2", "s0", "s1"}
	m, err := MergeShards(names, []*Shard{shards[2], shards[0], shards[1]})
	if err != nil {
		t.Fatal(err)
	}
	s := m.Summary
	if s.Seeds != 6 || len(s.Cells) != 2 {
		t.Fatalf("merged: %+v", s)
	}
	ctl, hp := s.Cell("control", "etcd"), s.Cell("hp", "etcd")
	if ctl.Seeds != 6 || ctl.Violating != 0 || len(ctl.Kinds) != 0 || ctl.Shown == nil || ctl.Shown.Seed != 1 || m.From["control/etcd"] != 1 {
		t.Errorf("control/etcd: %+v (from %d)", ctl, m.From["control/etcd"])
	}
	me := checker.MutualExclusion
	if hp.Seeds != 6 || hp.Violating != 2 || hp.Counts[me] != 30 || hp.SeedsWithKind[me] != 2 || len(hp.Kinds) != 1 {
		t.Errorf("hp/etcd figures: %+v", hp)
	}
	// The first violating seed is drawn, from the shard that ran it.
	if hp.Shown == nil || hp.Shown.Seed != 3 || names[m.From["hp/etcd"]] != "s1" {
		t.Errorf("hp/etcd shows %+v from %d, want seed 3 from s1", hp.Shown, m.From["hp/etcd"])
	}
	if m.Parts[1].Time != 6 || m.Parts[1].Seeds != 6 {
		t.Errorf("hp/etcd part: %+v", m.Parts[1])
	}

	fails := []struct {
		what   string
		mutate func([]*Shard) []*Shard
		err    string
	}{
		{"missing", func(s []*Shard) []*Shard { return s[:2] }, "shard 2 of 3 is missing"},
		{"twice", func(s []*Shard) []*Shard { s[2] = s[1]; return s }, "both shard 1 of 3"},
		{"other count", func(s []*Shard) []*Shard { s[1].Count = 4; return s }, "shard 1 of 4"},
		{"other seeds", func(s []*Shard) []*Shard { s[1].Summary.Seeds = 7; return s }, "not a shard of the same sweep"},
		{"other command", func(s []*Shard) []*Shard { s[1].Command = ShardSim; return s }, "locksim sim"},
		{"gap", func(s []*Shard) []*Shard { s[1].Parts[0].First = 4; return s }, "seeds from 4, want 3"},
	}
	for _, f := range fails {
		sh := f.mutate(handShards())
		_, err := MergeShards([]string{"s0", "s1", "s2"}[:len(sh)], sh)
		if err == nil || !strings.Contains(err.Error(), f.err) {
			t.Errorf("%s: error %v, want %q", f.what, err, f.err)
		}
	}
}

// A shard survives its file: what merges after Save and LoadShard is
// what merges before.
func TestShardSaveLoad(t *testing.T) {
	var dirs []string
	shards := handShards()
	for _, s := range shards {
		d := t.TempDir()
		if err := s.Save(d); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	found, err := FindShards(dirs)
	if err != nil || len(found) != 3 {
		t.Fatalf("FindShards: %v, %v", found, err)
	}
	var loaded []*Shard
	for _, d := range found {
		s, err := LoadShard(d)
		if err != nil {
			t.Fatal(err)
		}
		loaded = append(loaded, s)
	}
	a, err := MergeShards(found, loaded)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := MergeShards(found, shards)
	ja, _ := json.Marshal(a.Summary)
	jb, _ := json.Marshal(b.Summary)
	if string(ja) != string(jb) {
		t.Errorf("after a round trip:\n%s\nbefore:\n%s", ja, jb)
	}
	if _, err := FindShards([]string{t.TempDir()}); err == nil || !strings.Contains(err.Error(), ShardFile) {
		t.Errorf("a directory without shards: %v", err)
	}
}

// With more shards than seeds the first shards are empty: the run of
// seed 1 comes from the shard that ran it.
func TestMergeShardsEmptyFirst(t *testing.T) {
	var shards []*Shard
	var names []string
	for i := range 3 {
		first, n := SeedRange(1, i, 3)
		c := Cell{Scenario: "control", Backend: "etcd", Kinds: []checker.Kind{}, Seeds: n}
		if n > 0 {
			c.Shown = &Run{Seed: 1, Dir: "runs/control/etcd", Violations: []checker.Violation{}}
		}
		shards = append(shards, &Shard{Command: ShardCompare, Index: i, Count: 3, Plan: []string{"control/etcd"},
			Summary: Summary{Mode: ModeSim, Seeds: 1, Backends: []string{"etcd"}, Scenarios: []ScenarioInfo{{Name: "control"}}, Cells: []Cell{c}},
			Parts:   []ShardPart{{Cell: "control/etcd", First: first, Seeds: n}}})
		names = append(names, fmt.Sprint(i))
	}
	if _, n := SeedRange(1, 0, 3); n != 0 {
		t.Fatalf("shard 0 of 3 runs %d of 1 seed", n)
	}
	m, err := MergeShards(names, shards)
	if err != nil {
		t.Fatal(err)
	}
	if c := m.Summary.Cells[0]; c.Shown == nil || c.Seeds != 1 || m.From["control/etcd"] != 2 {
		t.Errorf("control/etcd: %+v from shard %d, want seed 1 from shard 2", c, m.From["control/etcd"])
	}
}
