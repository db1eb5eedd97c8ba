package sim

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/locksim/locksim/faults/kinds"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/scenario"
)

// TestEveryKindApplied: the simulator carries out every kind of the
// registry (package faults/kinds): a scenario with it records its start
// under its name, and changes what the clients and the resource see, or
// the state of the simulated nodes and links, on at least one backend,
// from the same scenario without it. A kind the
// simulator ignored would change nothing.
func TestEveryKindApplied(t *testing.T) {
	targets := map[string]string{
		"pause": "c1", "kill": "c1", "restart": "servers", "partition": "leader", "isolate": "c2",
		"halves": "servers", "bridge": "servers", "ring": "servers", "one-way": "leader", "cut-holder": "holder",
		"heal": "", "slow": "servers", "clock-offset": "c1", "clock-drift": "c1", "clock-step": "c1",
		"server-clock": "servers", "evict": "servers", "session-destroy": "holder",
	}
	params := map[string]string{"slow": ", latency: 200ms, latency_jitter: 50ms", "clock-offset": ", offset: 3s",
		"clock-step": ", offset: 3s", "clock-drift": ", drift: 2", "server-clock": ", offset: 3s"}
	const base = `name: every-kind
backends: [etcd]
cluster: {size: 3}
clients: 3
duration: 5s
lock: {ttl: 1s, renew_every: 300ms, poll: 100ms, lock_delay: 200ms}
workload: {hold_min: 50ms, hold_max: 150ms, fencing: true}
faults:
  - {at: 500ms, fault: partition, target: c3, for: 3s}
`
	without := parse(t, base)
	for _, k := range kinds.All {
		target, ok := targets[k.Name]
		if !ok {
			t.Errorf("no target for kind %s in the test", k.Name)
			continue
		}
		line := fmt.Sprintf("  - {at: 1s, fault: %s, for: 1500ms%s", k.Name, params[k.Name])
		if target != "" {
			line += ", target: " + target
		}
		with := parse(t, base+line+"}\n")
		changed := 0
		for _, b := range Backends {
			for seed := uint64(1); seed <= 2; seed++ {
				res := simulate(t, with, b, seed)
				started := false
				for _, e := range res.Events {
					if e.Proc == history.ProcNemesis && e.F == k.Name && bytes.Contains(e.Value, []byte(`"phase":"start"`)) {
						started = true
					}
				}
				if !started {
					t.Errorf("%s on %s seed %d: no nemesis %s start recorded", k.Name, b, seed, k.Name)
				}
				if !bytes.Equal(seen(res), seen(simulate(t, without, b, seed))) ||
					!bytes.Equal(states(t, with, b, seed), states(t, without, b, seed)) {
					changed++
				}
			}
		}
		if changed == 0 {
			t.Errorf("%s changed nothing on any backend: the simulator ignores it", k.Name)
		}
	}
}

// seen is the history's events but the nemesis's, as text.
func seen(res *Result) []byte {
	var b bytes.Buffer
	for _, e := range res.Events {
		if e.Proc != history.ProcNemesis {
			fmt.Fprintf(&b, "%d %s %s %s %s %d %s\n", e.T, e.Proc, e.Type, e.F, e.Key, e.Token, e.Value)
		}
	}
	return b.Bytes()
}

// states runs sc and returns the state of every node and link (paused,
// down, slowed, its clock; blocked) every 100 ms.
func states(t *testing.T, sc *scenario.Scenario, backend string, seed uint64) []byte {
	t.Helper()
	r, err := newRun(Config{Scenario: sc, Backend: backend, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, f := range r.atEnd {
			f()
		}
	}()
	var b bytes.Buffer
	for at := 100 * time.Millisecond; at <= sc.Duration; at += 100 * time.Millisecond {
		r.w.runUntil(int64(at))
		for _, n := range r.w.nodes {
			fmt.Fprintf(&b, "%s %v %v %d %d %d %d %g;", n.name, n.paused, n.down, n.slow, n.slowJitter, n.clk.base, n.clk.t0, n.clk.rate)
			for _, o := range r.w.nodes {
				if o != n && r.w.links[n.id][o.id].blocked > 0 {
					fmt.Fprintf(&b, ">%s", o.name)
				}
			}
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}
