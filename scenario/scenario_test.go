package scenario_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/locksim/locksim/scenario"
)

const good = `name: pause
description: the holder pauses
backends: [etcd, postgres]
cluster:
  size: 3
clients: 3
duration: 12s
lock:
  ttl: 2s
  renew_every: 500ms
  clock: client
workload:
  kind: counter
  hold_min: 10ms
  hold_max: 20ms
  fencing: true
faults:
  - at: 3s
    fault: pause
    target: holder
    for: 5s
  - at: 4s
    fault: clock-step
    target: c2
    offset: -1.5s
`

func TestParse(t *testing.T) {
	s, err := scenario.Parse("s.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "pause" || len(s.Backends) != 2 || s.Cluster.Size != 3 || s.Clients != 3 || s.Duration != 12*time.Second ||
		s.Lock.TTL != 2*time.Second || s.Lock.RenewEvery != 500*time.Millisecond || s.Lock.Clock != "client" ||
		s.Workload.Fencing != scenario.FenceWrites || s.Workload.Keys != 1 || len(s.Faults) != 2 ||
		s.Faults[0] != (scenario.Fault{At: 3 * time.Second, Fault: "pause", Target: "holder", For: 5 * time.Second}) ||
		s.Faults[1].Offset != -1500*time.Millisecond {
		t.Fatalf("parsed %+v", s)
	}
}

// workload.fencing: the four modes, and true and false as older files say.
func TestFencingModes(t *testing.T) {
	for in, want := range map[string]scenario.Fencing{
		"true": scenario.FenceWrites, "false": scenario.FenceNone,
		"none": scenario.FenceNone, "writes": scenario.FenceWrites, "all": scenario.FenceAll, "guarded": scenario.FenceGuarded,
	} {
		src := strings.Replace(good, "fencing: true", "fencing: "+in, 1)
		s, err := scenario.Parse("s.yaml", []byte(src))
		if err != nil {
			t.Fatalf("fencing: %s: %v", in, err)
		}
		if s.Workload.Fencing != want {
			t.Fatalf("fencing: %s: got %q, want %q", in, s.Workload.Fencing, want)
		}
		// Marshal writes the mode, which reads back the same.
		back, err := scenario.Parse("m.yaml", scenario.Marshal(s))
		if err != nil || back.Workload.Fencing != want {
			t.Fatalf("fencing: %s: marshalled back as %v (%v)", in, back, err)
		}
	}
	// Unset: none.
	s, err := scenario.Parse("s.yaml", []byte(strings.Replace(good, "  fencing: true\n", "", 1)))
	if err != nil || s.Workload.Fencing.Mode() != scenario.FenceNone || s.Workload.Fencing.Checked() {
		t.Fatalf("unset fencing: %v, %v", s, err)
	}
	// guarded on memcache is refused, at the fencing field's line.
	src := strings.Replace(strings.Replace(good, "fencing: true", "fencing: guarded", 1), "[etcd, postgres]", "[etcd, memcache]", 1)
	_, err = scenario.Parse("s.yaml", []byte(src))
	var se *scenario.Error
	if !errors.As(err, &se) || se.Line != 16 || se.Field != "workload.fencing" || !strings.Contains(se.Msg, "memcache has none (backends[1])") {
		t.Fatalf("guarded on memcache: got %v", err)
	}
	// The quoted string "true" is not the boolean.
	_, err = scenario.Parse("s.yaml", []byte(strings.Replace(good, "fencing: true", `fencing: "true"`, 1)))
	if err == nil {
		t.Fatal(`fencing: "true" (a string) accepted`)
	}
}

// Every error names the file, the line and the field.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, old, new string
		line           int
		field, msg     string
	}{
		{"bad YAML", "clients: 3", "clients: [3", 0, "", "bad YAML"},
		{"unknown field", "clients: 3", "clients: 3\nclinets: 4", 7, "clinets", "unknown field"},
		{"duplicate field", "clients: 3", "clients: 3\nclients: 4", 7, "clients", "given twice"},
		{"bad duration", "duration: 12s", "duration: twelve", 7, "duration", "want a duration"},
		{"negative duration", "  ttl: 2s", "  ttl: -2s", 9, "lock.ttl", "negative"},
		{"clients not an integer", "clients: 3", "clients: three", 6, "clients", "want an integer"},
		{"clients out of range", "clients: 3", "clients: 0", 6, "clients", "out of range"},
		{"unknown backend", "[etcd, postgres]", "[etcd, zookeeper]", 3, "backends[1]", "not one of"},
		{"unknown clock", "clock: client", "clock: wall", 11, "lock.clock", "not one of"},
		{"unknown renew_errors", "  clock: client", "  clock: client\n  renew_errors: ignore", 12, "lock.renew_errors", "not one of"},
		{"unknown fault", "fault: pause", "fault: explode", 19, "faults[0].fault", "not one of"},
		{"bad target", "target: holder", "target: 10.0.0.1", 20, "faults[0].target", "not a target"},
		{"fault after the end", "at: 4s", "at: 40s", 22, "faults[1].at", "not before the end"},
		{"fencing not a mode", "fencing: true", "fencing: yes please", 16, "workload.fencing", "not one of none, writes, all, guarded"},
		{"fencing a number", "fencing: true", "fencing: 1", 16, "workload.fencing", "not one of none, writes, all, guarded"},
		// Checks across two fields name the line of the one they blame,
		// wherever it is.
		{"renew not below ttl", "renew_every: 500ms", "renew_every: 5s", 10, "lock.renew_every", "shorter than lock.ttl"},
		{"renew not below ttl, given first", "  ttl: 2s\n  renew_every: 500ms", "  renew_every: 2s\n  ttl: 2s", 9, "lock.renew_every", "shorter than lock.ttl"},
		{"hold_max below hold_min", "hold_max: 20ms", "hold_max: 5ms", 15, "workload.hold_max", "below workload.hold_min"},
		{"hold_max below hold_min, given first", "  hold_min: 10ms\n  hold_max: 20ms", "  hold_max: 5ms\n  hold_min: 10ms", 14, "workload.hold_max", "below workload.hold_min"},
		{"fault after the end, at not first", "  - at: 4s\n    fault: clock-step\n    target: c2", "  - fault: clock-step\n    target: c2\n    at: 12s", 24, "faults[1].at", "not before the end"},
		{"duration beyond the bound", "duration: 12s", "duration: 100000h", 7, "duration", "longer than the longest run allowed, 24h"},
		{"clock running backwards", "    fault: clock-step\n    target: c2\n    offset: -1.5s", "    fault: clock-drift\n    target: c2\n    drift: -1.5", 25, "faults[1].drift", "backwards"},
		{"clock stopped", "    fault: clock-step\n    target: c2\n    offset: -1.5s", "    fault: clock-drift\n    target: c2\n    drift: -1", 25, "faults[1].drift", "above -1"},
		{"clock-drift without a drift", "    fault: clock-step\n    target: c2\n    offset: -1.5s", "    fault: clock-drift\n    target: c2", 22, "faults[1].drift", "missing"},
		{"clock-drift with a zero drift", "    fault: clock-step\n    target: c2\n    offset: -1.5s", "    fault: clock-drift\n    target: c2\n    drift: 0", 25, "faults[1].drift", "does nothing"},
		{"clock-drift with an offset", "    fault: clock-step\n    target: c2\n    offset: -1.5s", "    fault: clock-drift\n    target: c2\n    drift: 0.5\n    offset: 1s", 26, "faults[1].offset", "takes only drift"},
		{"clock-step without an offset", "    offset: -1.5s\n", "", 22, "faults[1].offset", "missing"},
		{"slow without a latency", "    fault: pause\n    target: holder", "    fault: slow\n    target: holder", 18, "faults[0].latency", "latency or latency_jitter"},
		{"drift on a pause", "    for: 5s", "    for: 5s\n    drift: 0.5", 22, "faults[0].drift", "takes no drift"},
		{"ttl too short", "  ttl: 2s", "  ttl: 3ns", 9, "lock.ttl", "below 1ms"},
		{"wait_timeout too short", "  clock: client", "  clock: client\n  wait_timeout: 10us", 12, "lock.wait_timeout", "below 1ms"},
		{"name with a slash", "name: pause", "name: ../../etc", 1, "name", "not a name"},
		{"backend twice", "[etcd, postgres]", "[etcd, postgres, etcd]", 3, "backends[2]", "listed twice"},
		{"no backends", "[etcd, postgres]", "[]", 3, "backends", "missing"},
		{"zero duration", "duration: 12s", "duration: 0s", 7, "duration", "above 0"},
		{"latency on a clock-step", "    offset: -1.5s", "    offset: -1.5s\n    latency: 1s", 26, "faults[1].latency", "takes only offset"},
		{"lock not a mapping", "lock:\n  ttl: 2s\n  renew_every: 500ms\n  clock: client", "lock: fast", 8, "lock", "want a mapping"},
		{"missing name", "name: pause\n", "", 1, "name", "missing"},
		{"missing target", "    target: holder\n", "", 18, "faults[0].target", "missing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(good, tc.old, tc.new, 1)
			if src == good {
				t.Fatalf("test case does not change the file")
			}
			_, err := scenario.Parse("s.yaml", []byte(src))
			var se *scenario.Error
			if !errors.As(err, &se) {
				t.Fatalf("want *scenario.Error, got %v", err)
			}
			if se.File != "s.yaml" || se.Field != tc.field || !strings.Contains(se.Msg, tc.msg) || (tc.line > 0 && se.Line != tc.line) {
				t.Fatalf("got %v; want line %d field %q msg %q", err, tc.line, tc.field, tc.msg)
			}
		})
	}
}

// The list workload runs on memcache only: the error names the line of
// the backend that cannot run it, not the top of the file.
func TestListWorkloadBackendLine(t *testing.T) {
	src := "name: l\nbackends:\n  - memcache\n  - etcd\nclients: 2\nduration: 5s\nworkload:\n  kind: list\n"
	_, err := scenario.Parse("l.yaml", []byte(src))
	var se *scenario.Error
	if !errors.As(err, &se) || se.Line != 4 || se.Field != "backends[1]" || !strings.Contains(se.Msg, "memcache only") {
		t.Fatalf("got %v; want l.yaml:4 field backends[1]", err)
	}
	src = "name: l\nbackends: etcd\nclients: 2\nduration: 5s\nworkload:\n  kind: list\n"
	_, err = scenario.Parse("l.yaml", []byte(src))
	if !errors.As(err, &se) || se.Line != 2 || se.Field != "backends[0]" {
		t.Fatalf("got %v; want l.yaml:2 field backends[0]", err)
	}
}

// FieldLine gives the line of a field as errors name it; hold_min alone
// is a fixed hold; a drift above -1 and a duration at the bound are
// accepted.
func TestLineAndDefaults(t *testing.T) {
	src := strings.Replace(good, "  hold_max: 20ms\n", "", 1)
	src = strings.Replace(src, "duration: 12s", "duration: 24h", 1)
	src = strings.Replace(src, "    fault: clock-step\n    target: c2\n    offset: -1.5s", "    fault: clock-drift\n    target: c2\n    drift: -0.99", 1)
	path := filepath.Join(t.TempDir(), "s.yaml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := scenario.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Workload.HoldMax != s.Workload.HoldMin || s.Duration != scenario.MaxDuration || s.Faults[1].Drift != -0.99 {
		t.Fatalf("parsed %+v", s)
	}
	for field, line := range map[string]int{"duration": 7, "lock.ttl": 9, "backends[1]": 3, "faults[1].drift": 24, "faults[0].at": 17, "workload.hold_max": 1, "nope": 1} {
		if got := scenario.FieldLine(path, field); got != line {
			t.Errorf("FieldLine(%q) = %d, want %d", field, got, line)
		}
	}
}

// Every scenario shipped in scenarios/ is valid.
func TestShippedScenarios(t *testing.T) {
	files, err := filepath.Glob("../scenarios/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	names := map[string]string{}
	for _, f := range files {
		s, err := scenario.Load(f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if prev, dup := names[s.Name]; dup {
			t.Errorf("%s and %s share the name %q", prev, f, s.Name)
		}
		names[s.Name] = f
	}
}

// FuzzParse: any input is a scenario or one *scenario.Error, never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	b, _ := os.ReadFile("../scenarios/control.yaml")
	f.Add(b)
	f.Add([]byte("name: x\nfaults: [{at: 1s}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := scenario.Parse("fuzz.yaml", data)
		if err == nil {
			return
		}
		var se *scenario.Error
		if !errors.As(err, &se) || se.Line < 0 {
			t.Fatalf("error is not a *scenario.Error: %v", err)
		}
	})
}

// lock.renew_errors: unset is "" (the backend's default, retry); retry
// and stop are read as given.
func TestRenewErrors(t *testing.T) {
	s, err := scenario.Parse("s.yaml", []byte(good))
	if err != nil || s.Lock.RenewErrors != "" {
		t.Fatalf("unset: %q, %v", s.Lock.RenewErrors, err)
	}
	for _, mode := range scenario.RenewErrorModes {
		src := strings.Replace(good, "  clock: client", "  clock: client\n  renew_errors: "+mode, 1)
		s, err := scenario.Parse("s.yaml", []byte(src))
		if err != nil || s.Lock.RenewErrors != mode {
			t.Fatalf("%s: %q, %v", mode, s.Lock.RenewErrors, err)
		}
	}
}
