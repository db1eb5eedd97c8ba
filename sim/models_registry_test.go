package sim

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/locksim/locksim/backend"
)

// Every backend of the registry has a model, and the simulator has no
// model the registry does not list: adding a backend without its model
// (or the reverse) fails here.
func TestModelsMatchRegistry(t *testing.T) {
	for _, b := range backend.Names() {
		if _, ok := models[b]; !ok {
			t.Errorf("backend %q is registered (package backend) but sim has no model of it (sim/models.go)", b)
		}
	}
	for name := range models {
		if backend.Lookup(name) == nil {
			t.Errorf("sim/models.go has a model of %q, which the registry does not list", name)
		}
	}
	if !slices.Equal(Backends, backend.Names()) {
		t.Errorf("sim.Backends = %v, want the registry's %v", Backends, backend.Names())
	}
}

// A fault kind the registry says does nothing on a backend is recorded as
// skipped with the registry's why, changes nothing, and the verdict's
// notes carry the why; real runs do the same (harness's
// TestNoFaultsSkipped).
func TestNoFaultsSkipped(t *testing.T) {
	for _, c := range []struct{ backend, fault string }{
		{"etcd", "server-clock"}, {"consul-ttl", "server-clock"}, {"postgres", "session-destroy"}, {"etcd", "evict"},
	} {
		why := backend.Lookup(c.backend).NoFaults[c.fault]
		if why == "" {
			t.Fatalf("the registry has %s doing %s: this test wants a kind it lacks", c.backend, c.fault)
		}
		base := `name: t
backends: [` + c.backend + `]
cluster: {size: 3}
clients: 3
duration: 6s
lock: {ttl: 2s, renew_every: 500ms}
workload: {kind: counter, hold_min: 200ms, hold_max: 400ms, fencing: true}
`
		withFault := base + "faults:\n  - {at: 1s, fault: " + c.fault + ", target: " + map[bool]string{true: "servers", false: "holder"}[c.fault != "session-destroy"] +
			map[bool]string{true: ", offset: 30s", false: ""}[c.fault == "server-clock"] + ", jitter: 0s}\n"
		sc := parse(t, withFault)
		res, err := Run(Config{Scenario: sc, Backend: c.backend, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		plain, err := Run(Config{Scenario: parse(t, base), Backend: c.backend, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		var others []string
		skipped := false
		for _, e := range res.Events {
			if e.Proc == "nemesis" {
				skipped = e.F == c.fault && strings.Contains(string(e.Value), `"skipped":"`+why+`"`)
				continue
			}
			others = append(others, fmt.Sprint(e))
		}
		var want []string
		for _, e := range plain.Events {
			want = append(want, fmt.Sprint(e))
		}
		if !skipped {
			t.Errorf("%s on %s: no nemesis event saying it was skipped for %q", c.fault, c.backend, why)
		}
		if !slices.Equal(others, want) {
			t.Errorf("%s on %s: the skipped fault changed the history", c.fault, c.backend)
		}
		if !slices.Contains(Notes(sc, c.backend), why) {
			t.Errorf("%s on %s: notes %q lack %q", c.fault, c.backend, Notes(sc, c.backend), why)
		}
	}
}

// A client clock fault aimed at servers changes nothing, as in real runs
// (a clock fault is a command to a client process; server clocks take
// server-clock).
func TestClientClockFaultsSkipServers(t *testing.T) {
	base := `name: t
backends: [consul-ttl]
cluster: {size: 3}
clients: 3
duration: 8s
lock: {ttl: 2s, renew_every: 500ms}
workload: {kind: counter, hold_min: 200ms, hold_max: 400ms, fencing: true}
`
	plain, err := Run(Config{Scenario: parse(t, base), Backend: "consul-ttl", Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"{at: 1s, fault: clock-offset, target: servers, offset: 30s, for: 3s, jitter: 0s}",
		"{at: 1s, fault: clock-drift, target: servers, drift: 2, for: 3s, jitter: 0s}",
		"{at: 1s, fault: clock-step, target: servers, offset: 30s, jitter: 0s}"} {
		res, err := Run(Config{Scenario: parse(t, base+"faults:\n  - "+f+"\n"), Backend: "consul-ttl", Seed: 5})
		if err != nil {
			t.Fatal(err)
		}
		var got, want []string
		for _, e := range res.Events {
			if e.Proc != "nemesis" {
				got = append(got, fmt.Sprint(e))
			}
		}
		for _, e := range plain.Events {
			want = append(want, fmt.Sprint(e))
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s changed the history: a client clock fault on servers must do nothing", f)
		}
	}
}
