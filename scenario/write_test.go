package scenario_test

import (
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/locksim/locksim/scenario"
)

// Marshal's output parses back to the same scenario.
func TestMarshalRoundTrip(t *testing.T) {
	var all []*scenario.Scenario
	s, err := scenario.Parse("good.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	all = append(all, s)
	files, _ := filepath.Glob("../scenarios/*.yaml")
	for _, f := range files {
		s, err := scenario.Load(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, s)
	}
	s = &scenario.Scenario{Name: "drift", Backends: []string{"memcache"}, Clients: 2, Duration: 3e9,
		Faults: []scenario.Fault{
			{At: 1e9, Fault: "clock-drift", Target: "clients", Drift: -0.25},
			{At: 1e9, Fault: "slow", Target: "servers", Latency: 5e6, LatencyJitter: 1e6},
			{At: 2e9, Fault: "server-clock", Target: "servers", Offset: -3e9, For: 5e8},
		}}
	s.Cluster.Size, s.Workload.Kind, s.Workload.Keys, s.Workload.HoldMax = 1, "counter", 2, 0
	all = append(all, s)
	for _, s := range all {
		data := scenario.Marshal(s)
		back, err := scenario.Parse(s.Name+".yaml", data)
		if err != nil {
			t.Fatalf("%s: %v\n%s", s.Name, err, data)
		}
		if !reflect.DeepEqual(s, back) {
			t.Errorf("%s: round trip changed it:\n%+v\n%+v\n%s", s.Name, s, back, data)
		}
	}
}

// The catalogue's families of fencing modes: each holds the scenario
// under writes and a stronger mode, its members differ in nothing but
// name, description, backends and fencing, and a guarded member lists
// only backends that have guarded writes.
func TestCatalogueFamilies(t *testing.T) {
	files, _ := filepath.Glob("../scenarios/*.yaml")
	var ss []*scenario.Scenario
	for _, f := range files {
		s, err := scenario.Load(f)
		if err != nil {
			t.Fatal(err)
		}
		ss = append(ss, s)
	}
	fams := scenario.Families(ss)
	modes := map[string][]scenario.Fencing{}
	for i, fam := range fams {
		if fam != "" {
			modes[fam] = append(modes[fam], ss[i].Workload.Fencing.Mode())
		}
	}
	for _, want := range []string{"holder-cut-off", "postgres-client-clock"} {
		got := modes[want]
		if !slices.Contains(got, scenario.FenceWrites) || !slices.Contains(got, scenario.FenceAll) || !slices.Contains(got, scenario.FenceGuarded) {
			t.Errorf("family %s: modes %v, want writes, all and guarded", want, got)
		}
	}
	if got := modes["holder-paused-past-lease"]; len(got) < 2 {
		t.Errorf("family holder-paused-past-lease: modes %v", got)
	}
	// A changed field splits a family.
	a, b := *ss[0], *ss[0]
	b.Name, b.Workload.Fencing = b.Name+"-x", scenario.FenceAll
	if fs := scenario.Families([]*scenario.Scenario{&a, &b}); fs[0] == "" || fs[0] != fs[1] {
		t.Fatalf("same scenario, two modes: families %q", fs)
	}
	b.Clients++
	if fs := scenario.Families([]*scenario.Scenario{&a, &b}); fs[0] != "" || fs[1] != "" {
		t.Fatalf("different scenarios grouped: %q", fs)
	}
}
