package checker_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"pgregory.net/rapid"

	"github.com/locksim/locksim/checker"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/internal/histgen"
	"github.com/locksim/locksim/scenario"
	"github.com/locksim/locksim/sim"
)

// verdicts is the JSON that `locksim check --json` prints for one history,
// as the checker gives it (from JSONL, through history.Reader) and as the
// checker before its speed work gave it (the rule checks fed the events
// directly, the old linearizability recorder: ReferenceLinearizability).
func verdicts(t interface {
	Helper()
	Fatalf(string, ...any)
}, events []history.Event) (got, want []byte) {
	t.Helper()
	var buf bytes.Buffer
	w := history.NewWriter(&buf)
	for i := range events {
		if err := w.Write(&events[i]); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	_ = w.Flush()
	data := buf.Bytes()
	opts := checker.Options{Linearizability: true}
	res, err := checker.Check(history.NewReader(bytes.NewReader(data), "h.jsonl"), opts)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	// The reference reads with encoding/json alone: every line through
	// json.Unmarshal into an Event's fields, as the old reader did.
	read, err := history.ReadAll(history.NewReader(bytes.NewReader(data), "h.jsonl"))
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	c := checker.New(checker.Options{})
	for i := range read {
		c.Add(&read[i])
	}
	ref := c.Finish()
	ref.Linearizability = checker.ReferenceLinearizability(read, opts)
	files := []string{"h.jsonl"}
	got, _ = json.Marshal(checker.Summarize(files, []checker.Result{res}))
	want, _ = json.Marshal(checker.Summarize(files, []checker.Result{ref}))
	return got, want
}

// The checker's verdicts (violations, linearizability, every field of the
// JSON) are those of the checker before it was made faster, on generated
// histories with each kind of injected fault.
func TestSameVerdictsGenerated(t *testing.T) {
	injections := []histgen.Injection{histgen.None, histgen.Overlap, histgen.DupToken, histgen.RegressToken, histgen.StaleAccept}
	var violating, illegal int
	rapid.Check(t, func(rt *rapid.T) {
		cfg := genConfig(rt, rapid.SampledFrom(injections).Draw(rt, "inject"))
		seed := rapid.Uint64().Draw(rt, "seed")
		events, _ := histgen.Generate(rand.New(rand.NewPCG(seed, 1)), cfg)
		got, want := verdicts(rt, events)
		if !bytes.Equal(got, want) {
			rt.Fatalf("verdicts differ\n got %s\nwant %s", got, want)
		}
		var s checker.Summary
		_ = json.Unmarshal(got, &s)
		if len(s.Violations) > 0 {
			violating++
		}
		for _, l := range s.Linearizability {
			if l.Result == checker.LinIllegal {
				illegal++
			}
		}
	})
	// Not vacuous: the histories compared broke rules and linearizability.
	if violating == 0 || illegal == 0 {
		t.Fatalf("%d histories with violations, %d non-linearizable checks: the comparison saw no failure", violating, illegal)
	}
}

// The same on simulated runs (`locksim sim` replays) that break mutual
// exclusion, fencing and the resource, with faults and unknown outcomes.
func TestSameVerdictsSimulated(t *testing.T) {
	cases := []struct {
		scenario string
		backends []string
	}{
		{"holder-paused-past-lease", []string{"etcd", "postgres", "memcache", "consul"}},
		{"holder-paused-past-lease-unfenced", []string{"etcd", "postgres", "memcache"}},
		{"leader-isolated", []string{"etcd"}},
		{"control", []string{"postgres-advisory"}},
	}
	var violating int
	for _, tc := range cases {
		sc, err := scenario.Load("../scenarios/" + tc.scenario + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range tc.backends {
			for seed := uint64(1); seed <= 3; seed++ {
				t.Run(fmt.Sprintf("%s/%s/%d", tc.scenario, b, seed), func(t *testing.T) {
					res, err := sim.Run(sim.Config{Scenario: sc, Backend: b, Seed: seed})
					if err != nil {
						t.Fatal(err)
					}
					got, want := verdicts(t, res.Events)
					if !bytes.Equal(got, want) {
						t.Fatalf("verdicts differ\n got %s\nwant %s", got, want)
					}
					var s checker.Summary
					_ = json.Unmarshal(got, &s)
					if len(s.Violations) > 0 {
						violating++
					}
					if len(s.Linearizability) == 0 {
						t.Fatal("no linearizability result")
					}
				})
			}
		}
	}
	if violating == 0 {
		t.Fatal("no run with a violation: the comparison saw no failure")
	}
}
