package report

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/locksim/locksim/checker"
)

func TestBaselineCheck(t *testing.T) {
	me, dmg := checker.MutualExclusion, checker.Damage
	s := handSummary(ModeSim)
	b := &Baseline{Sim: &ModeBaseline{Seeds: 100, Cells: map[string][]checker.Kind{
		"control/etcd":                  {},
		"control/postgres":              {me},                  // disappeared
		"control/memcache":              {},                    // error
		"holder-paused-past-lease/etcd": {me},                  // new damage
		"other/etcd":                    {checker.FencingLock}, // not run: not checked
	}}}
	changes, err := b.Check(s)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range changes {
		got = append(got, c.String())
	}
	want := []string{
		"control/postgres: mutual-exclusion disappeared (baseline: mutual-exclusion; now: safe)",
		"control/memcache: could not run (start memcache: no such file); baseline: safe",
		"holder-paused-past-lease/etcd: new damage (baseline: mutual-exclusion; now: mutual-exclusion, damage)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A simulator cell the baseline lacks is a change.
	delete(b.Sim.Cells, "control/etcd")
	changes, _ = b.Check(s)
	if len(changes) != 4 || !changes[0].NoBaseline || changes[0].Cell != "control/etcd" {
		t.Errorf("missing sim cell: %v", changes)
	}

	// Another number of seeds: the baseline does not apply.
	s.Seeds = 50
	if _, err := b.Check(s); err == nil {
		t.Error("Check with other seeds: no error")
	}

	// A real baseline lists only stable cells; others are not checked.
	r := handSummary(ModeReal)
	rb := &Baseline{Real: &ModeBaseline{Cells: map[string][]checker.Kind{"holder-paused-past-lease/etcd": {me, dmg}}}}
	changes, err = rb.Check(r)
	if err != nil || len(changes) != 0 {
		t.Errorf("real: %v, %v", changes, err)
	}
	if _, err := rb.Check(s); err == nil {
		t.Error("a baseline without a sim section checked a sim comparison")
	}
}

func TestBaselineRecordSaveLoad(t *testing.T) {
	s := handSummary(ModeSim)
	b := &Baseline{Note: "n"}
	b.Record(s)
	if b.Sim.Seeds != 100 || len(b.Sim.Cells) != 3 { // the error cell is not recorded
		t.Fatalf("recorded %+v", b.Sim)
	}
	path := filepath.Join(t.TempDir(), BaselineFile)
	if err := b.Save(path); err != nil {
		t.Fatal(err)
	}
	b2, err := LoadBaseline(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Cells = slices.DeleteFunc(s.Cells, func(c Cell) bool { return c.Error != "" })
	if changes, err := b2.Check(s); err != nil || len(changes) != 0 {
		t.Errorf("a recorded baseline does not match its own comparison: %v %v", changes, err)
	}
	if b2.Sim.Cells["control/etcd"] == nil {
		t.Error("a safe cell is saved as null, want []")
	}
}
