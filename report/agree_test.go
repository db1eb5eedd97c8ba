package report

import (
	"os"
	"strings"
	"testing"

	"github.com/locksim/locksim/checker"
)

func TestAgree(t *testing.T) {
	me := checker.MutualExclusion
	sim := &Summary{Cells: []Cell{
		{Scenario: "pause", Backend: "etcd", Kinds: []checker.Kind{me}, SeedsWithKind: map[checker.Kind]int{me: 9}, Seeds: 10},
		{Scenario: "control", Backend: "etcd", Seeds: 10},
		{Scenario: "cut", Backend: "etcd", Seeds: 10},
		{Scenario: "race", Backend: "etcd", Kinds: []checker.Kind{me, checker.Damage},
			SeedsWithKind: map[checker.Kind]int{me: 10, checker.Damage: 6}, Seeds: 10},
	}}
	real := &Summary{Cells: []Cell{
		{Scenario: "control", Backend: "etcd"},
		{Scenario: "pause", Backend: "etcd", Kinds: []checker.Kind{me}},
		{Scenario: "cut", Backend: "etcd", Kinds: []checker.Kind{checker.Damage}},
		{Scenario: "list", Backend: "memcache", Kinds: []checker.Kind{checker.Damage}}, // not simulated
		// Damage in 6 of 10 seeds: one real run may miss it; mutual
		// exclusion in every seed: it may not.
		{Scenario: "race", Backend: "etcd", Kinds: []checker.Kind{me}},
	}}
	rows := Agree(sim, real)
	if len(rows) != 4 || rows[0].Scenario != "control" || !rows[0].Agrees() || !rows[1].Agrees() || rows[2].Agrees() || !rows[3].Agrees() {
		t.Fatalf("rows %+v", rows)
	}
	rows[3].Real = nil
	if rows[3].Agrees() {
		t.Fatal("a kind in every seed, missing from the real run, agrees")
	}
	rows[3].Real = []checker.Kind{me}
	var b strings.Builder
	bad, err := WriteAgreement(&b, rows)
	if err != nil || bad != 1 {
		t.Fatalf("bad %d, err %v", bad, err)
	}
	out := b.String()
	for _, want := range []string{"mutual-exclusion 9/10", "DISAGREE", "4 cells, 1 disagree"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
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
