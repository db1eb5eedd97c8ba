package report

import (
	"math"
	"os"
	"strings"
	"testing"

	"github.com/locksim/locksim/checker"
)

func TestAgree(t *testing.T) {
	me, dmg := checker.MutualExclusion, checker.Damage
	sim := &Summary{Cells: []Cell{
		{Scenario: "pause", Backend: "etcd", Kinds: []checker.Kind{me}, SeedsWithKind: map[checker.Kind]int{me: 90}, Seeds: 100},
		{Scenario: "control", Backend: "etcd", Seeds: 100},
		{Scenario: "cut", Backend: "etcd", Seeds: 100},
		{Scenario: "race", Backend: "etcd", Kinds: []checker.Kind{me, dmg},
			SeedsWithKind: map[checker.Kind]int{me: 100, dmg: 46}, Seeds: 100},
		{Scenario: "rare", Backend: "etcd", Kinds: []checker.Kind{me}, SeedsWithKind: map[checker.Kind]int{me: 2}, Seeds: 100},
	}}
	real := &Summary{Cells: []Cell{
		// One run: a kind counts once.
		{Scenario: "control", Backend: "etcd", Seeds: 1},
		{Scenario: "pause", Backend: "etcd", Kinds: []checker.Kind{me}, Seeds: 1},
		// The real run saw a kind the simulator never does.
		{Scenario: "cut", Backend: "etcd", Kinds: []checker.Kind{dmg}, Seeds: 1},
		{Scenario: "list", Backend: "memcache", Kinds: []checker.Kind{dmg}}, // not simulated
		// Five runs: damage in 3 (46% is inside [23%, 88%]), mutual
		// exclusion in all.
		{Scenario: "race", Backend: "etcd", Kinds: []checker.Kind{me, dmg}, Seeds: 5,
			SeedsWithKind: map[checker.Kind]int{me: 5, dmg: 3}},
		// 5 of 5 runs where the simulator says 2%: outside.
		{Scenario: "rare", Backend: "etcd", Kinds: []checker.Kind{me}, Seeds: 5, SeedsWithKind: map[checker.Kind]int{me: 5}},
	}}
	rows := Agree(sim, real)
	want := []bool{true, true, false, true, false}
	if len(rows) != len(want) || rows[0].Scenario != "control" {
		t.Fatalf("rows %+v", rows)
	}
	for i, w := range want {
		if rows[i].Agrees() != w {
			t.Errorf("%s: agrees %v, want %v (%+v)", rows[i].Scenario, !w, w, rows[i])
		}
	}
	var b strings.Builder
	bad, err := WriteAgreement(&b, rows)
	if err != nil || bad != 2 {
		t.Fatalf("bad %d, err %v", bad, err)
	}
	out := b.String()
	for _, want := range []string{"damage: sim 46/100 = 46%, real 3/5 [23%, 88%]", "(outside)", "DISAGREE", "5 cells, 2 disagree"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// The Wilson score interval, against figures computed by hand.
func TestWilson(t *testing.T) {
	for _, c := range []struct {
		k, n   uint64
		lo, hi float64
	}{
		{0, 1, 0, 0.7935},
		{1, 1, 0.2065, 1},
		{3, 5, 0.2307, 0.8824},
		{0, 5, 0, 0.4345},
		{50, 100, 0.4038, 0.5962},
	} {
		lo, hi := Wilson(c.k, c.n)
		if math.Abs(lo-c.lo) > 1e-3 || math.Abs(hi-c.hi) > 1e-3 {
			t.Errorf("Wilson(%d, %d) = [%.4f, %.4f], want [%.4f, %.4f]", c.k, c.n, lo, hi, c.lo, c.hi)
		}
	}
}

func TestLoadBaselineNamesLine(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/baseline.json"
	for _, tc := range []struct{ body, want string }{
		{"{\n  \"sim\": {\n    \"seeds\": \"many\"\n  }\n}\n", `baseline.json:3: field "sim.seeds"`},
		{"{\n  \"sim\": {\n    \"seeds\": 5,\n  }\n}\n", "baseline.json:4: bad JSON"},
	} {
		if err := os.WriteFile(path, []byte(tc.body), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadBaseline(path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.body, err, tc.want)
		}
	}
}
