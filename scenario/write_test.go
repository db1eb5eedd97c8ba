package scenario_test

import (
	"path/filepath"
	"reflect"
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
			{At: 1e9, Fault: "slow", Target: "servers", Latency: 5e6, Jitter: 1e6},
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
