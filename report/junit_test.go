package report

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/locksim/locksim/checker"
)

// readJUnit parses a JUnit file back.
func readJUnit(t *testing.T, path string) JUnitSuites {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s JUnitSuites
	if err := xml.Unmarshal(data, &s); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, data)
	}
	return s
}

func TestJUnitCases(t *testing.T) {
	s := handSummary(ModeSim)
	path := filepath.Join(t.TempDir(), "junit.xml")
	if err := WriteJUnit(path, "locksim compare --sim", JUnitCases(s, nil, map[string]float64{"control/etcd": 1.5})); err != nil {
		t.Fatal(err)
	}
	j := readJUnit(t, path)
	if j.Tests != 5 || j.Failures != 1 || j.Errors != 1 || j.Skipped != 1 || len(j.Suites) != 1 || len(j.Suites[0].Cases) != 5 {
		t.Fatalf("totals: %d tests, %d failures, %d errors, %d skipped", j.Tests, j.Failures, j.Errors, j.Skipped)
	}
	byName := map[string]JUnitCase{}
	for _, c := range j.Suites[0].Cases {
		byName[c.Name] = c
	}
	if c := byName["control/etcd"]; c.Failure != nil || c.Error != nil || c.Time != "1.500" || c.Classname != "locksim.compare.sim" {
		t.Errorf("control/etcd: %+v", c)
	}
	hp := byName["holder-paused-past-lease/etcd"]
	if hp.Failure == nil || hp.Failure.Message != "mutual-exclusion, damage" {
		t.Fatalf("holder-paused-past-lease/etcd: %+v", hp)
	}
	for _, want := range []string{"100 of 100 seeds violating", "mutual-exclusion: 100/100 seeds, 120 violations",
		"replay: locksim sim scenarios/holder-paused-past-lease.yaml --backend etcd --seed 1", "key=\"locksim-0\" procs=c1,c2 lines=12,40,44"} {
		if !strings.Contains(hp.Failure.Text, want) {
			t.Errorf("failure text lacks %q:\n%s", want, hp.Failure.Text)
		}
	}
	if c := byName["control/memcache"]; c.Error == nil || c.Error.Message != "start memcache: no such file" {
		t.Errorf("control/memcache: %+v", c)
	}
	if c := byName["memcache-list/memcache"]; c.Skipped == nil || !strings.Contains(c.Skipped.Message, "not simulated") {
		t.Errorf("memcache-list/memcache: %+v", c)
	}

	// Against a baseline only a changed verdict fails: the expected
	// violation passes.
	b := &Baseline{Sim: &ModeBaseline{Seeds: 100, Cells: map[string][]checker.Kind{
		"control/etcd": {checker.MutualExclusion}, "control/postgres": {}, "control/memcache": {},
		"holder-paused-past-lease/etcd": {checker.MutualExclusion, checker.Damage}}}}
	changes, err := b.Check(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteJUnit(path, "locksim compare --sim", JUnitCases(s, changes, nil)); err != nil {
		t.Fatal(err)
	}
	j = readJUnit(t, path)
	byName = map[string]JUnitCase{}
	for _, c := range j.Suites[0].Cases {
		byName[c.Name] = c
	}
	if j.Failures != 1 || byName["holder-paused-past-lease/etcd"].Failure != nil {
		t.Errorf("with a baseline: %d failures; holder-paused-past-lease/etcd %+v", j.Failures, byName["holder-paused-past-lease/etcd"])
	}
	if c := byName["control/etcd"]; c.Failure == nil || c.Failure.Type != "baseline" || !strings.Contains(c.Failure.Message, "mutual-exclusion disappeared") {
		t.Errorf("control/etcd against the baseline: %+v", c)
	}
}

// Text that is not valid in XML (a control byte in a key) is replaced,
// not written raw: the file still parses.
func TestJUnitEscapes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.xml")
	cases := []JUnitCase{{Name: "a<b>&\"c\"", Classname: "x", Failure: &JUnitProblem{Message: "key \x01 ]]>", Text: "line\n<tag>\x00"}}}
	if err := WriteJUnit(path, "n", cases); err != nil {
		t.Fatal(err)
	}
	j := readJUnit(t, path)
	c := j.Suites[0].Cases[0]
	if c.Name != "a<b>&\"c\"" || c.Failure == nil || !strings.Contains(c.Failure.Text, "line\n<tag>") {
		t.Errorf("read back: %+v", c)
	}
}
