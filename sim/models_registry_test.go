package sim

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/locksim/locksim/backend"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/scenario"
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
	for _, c := range []struct{ backend, fault, line string }{
		{"etcd", "server-clock", "{at: 1s, fault: server-clock, target: servers, offset: 30s, jitter: 0s}"},
		{"consul-ttl", "server-clock", "{at: 1s, fault: server-clock, target: servers, offset: 30s, jitter: 0s}"},
		{"postgres", "session-destroy", "{at: 1s, fault: session-destroy, target: holder, jitter: 0s}"},
		{"etcd", "evict", "{at: 1s, fault: evict, target: servers, jitter: 0s}"},
	} {
		why := backend.Lookup(c.backend).NoFaults[c.fault]
		if why == "" {
			t.Fatalf("the registry has %s doing %s: this test wants a kind it lacks", c.backend, c.fault)
		}
		sc := registrySpec(t, c.backend, "6s", c.line)
		res := simulate(t, sc, c.backend, 3)
		skipped := false
		for _, e := range res.Events {
			if e.Proc == history.ProcNemesis {
				skipped = e.F == c.fault && strings.Contains(string(e.Value), `"skipped":"`+why+`"`)
			}
		}
		if !skipped {
			t.Errorf("%s on %s: no nemesis event saying it was skipped for %q", c.fault, c.backend, why)
		}
		if !bytes.Equal(seen(res), seen(simulate(t, registrySpec(t, c.backend, "6s"), c.backend, 3))) {
			t.Errorf("%s on %s: the skipped fault changed the history", c.fault, c.backend)
		}
		if !slices.Contains(sc.Notes(c.backend), why) {
			t.Errorf("%s on %s: notes %q lack %q", c.fault, c.backend, sc.Notes(c.backend), why)
		}
	}
}

// A client clock fault aimed at servers changes nothing, as in real runs
// (a clock fault is a command to a client process; server clocks take
// server-clock).
func TestClientClockFaultsSkipServers(t *testing.T) {
	plain := seen(simulate(t, registrySpec(t, "consul-ttl", "8s"), "consul-ttl", 5))
	for _, f := range []string{"{at: 1s, fault: clock-offset, target: servers, offset: 30s, for: 3s, jitter: 0s}",
		"{at: 1s, fault: clock-drift, target: servers, drift: 2, for: 3s, jitter: 0s}",
		"{at: 1s, fault: clock-step, target: servers, offset: 30s, jitter: 0s}"} {
		if !bytes.Equal(seen(simulate(t, registrySpec(t, "consul-ttl", "8s", f), "consul-ttl", 5)), plain) {
			t.Errorf("%s changed the history: a client clock fault on servers must do nothing", f)
		}
	}
}

// registrySpec is these tests' scenario on backend b for duration d: 3
// servers, 3 clients, a 2 s lease renewed every 500 ms, short fenced
// holds, and the faults given as scenario lines.
func registrySpec(t *testing.T, b, d string, faults ...string) *scenario.Scenario {
	t.Helper()
	y := "name: t\nbackends: [" + b + "]\ncluster: {size: 3}\nclients: 3\nduration: " + d +
		"\nlock: {ttl: 2s, renew_every: 500ms}\nworkload: {kind: counter, hold_min: 200ms, hold_max: 400ms, fencing: true}\n"
	if len(faults) > 0 {
		y += "faults:\n  - " + strings.Join(faults, "\n  - ") + "\n"
	}
	return parse(t, y)
}
