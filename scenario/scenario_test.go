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
		{"unknown fault", "fault: pause", "fault: explode", 19, "faults[0].fault", "not one of"},
		{"bad target", "target: holder", "target: 10.0.0.1", 20, "faults[0].target", "not a target"},
		{"fault after the end", "at: 4s", "at: 40s", 22, "faults[1].at", "not before the end"},
		{"fencing not a mode", "fencing: true", "fencing: yes please", 16, "workload.fencing", "not one of none, writes, all, guarded"},
		{"fencing a number", "fencing: true", "fencing: 1", 16, "workload.fencing", "not one of none, writes, all, guarded"},
		{"renew not below ttl", "renew_every: 500ms", "renew_every: 5s", 1, "lock.renew_every", "shorter than lock.ttl"},
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
