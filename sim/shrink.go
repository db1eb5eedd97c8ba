package sim

import (
	"fmt"
	"slices"
	"time"

	"github.com/locksim/locksim/checker"
	"github.com/locksim/locksim/scenario"
)

// ShrinkResult is a violating run made smaller.
type ShrinkResult struct {
	// Scenario is the smallest scenario found that still violates with
	// the same backend and seed; it has only that backend.
	Scenario *scenario.Scenario
	// Result is its run.
	Result *Result
	// Runs is the number of simulations the search made.
	Runs int
}

// Shrink reduces cfg's scenario, which must violate, to a smaller one that
// still shows every violation kind of the original with the same backend
// and seed: it drops faults, halves their durations, removes
// clients and keys, and cuts the run short after the violation, keeping
// every step that still violates, until no step does or maxRuns
// simulations have been made (0: 500).
func Shrink(cfg Config, maxRuns int) (*ShrinkResult, error) {
	if maxRuns <= 0 {
		maxRuns = 500
	}
	first, err := Run(cfg)
	if err != nil {
		return nil, err
	}
	if first.OK() {
		return nil, fmt.Errorf("sim: %s on %s with seed %d does not violate: nothing to shrink", cfg.Scenario.Name, first.Backend, cfg.Seed)
	}
	want := first.Kinds()
	cur := clone(cfg.Scenario)
	cur.Backends = []string{first.Backend}
	cur.Name = cfg.Scenario.Name + "-shrunk"
	cur.Description = fmt.Sprintf("Shrunk by locksim sim from scenario %s, backend %s, seed %d: still shows %v.",
		cfg.Scenario.Name, first.Backend, cfg.Seed, want)
	out := &ShrinkResult{Scenario: cur, Result: first, Runs: 1}
	try := func(c *scenario.Scenario) bool {
		if out.Runs >= maxRuns {
			return false
		}
		out.Runs++
		run := cfg
		run.Scenario, run.Backend = c, first.Backend
		res, err := Run(run)
		if err != nil || res.OK() {
			return false
		}
		got := res.Kinds()
		if slices.ContainsFunc(want, func(k checker.Kind) bool { return !slices.Contains(got, k) }) {
			return false
		}
		out.Scenario, out.Result = c, res
		return true
	}
	for progress := true; progress && out.Runs < maxRuns; {
		progress = false
		// Drop faults, the last first.
		for i := len(out.Scenario.Faults) - 1; i >= 0; i-- {
			c := clone(out.Scenario)
			c.Faults = slices.Delete(c.Faults, i, i+1)
			if try(c) {
				progress = true
			}
		}
		// Shorten faults.
		for i := range out.Scenario.Faults {
			for out.Scenario.Faults[i].For > 100*time.Millisecond {
				c := clone(out.Scenario)
				c.Faults[i].For = (c.Faults[i].For / 2).Round(time.Millisecond)
				if !try(c) {
					break
				}
				progress = true
			}
		}
		// Fewer clients and keys.
		for out.Scenario.Clients > 1 {
			c := clone(out.Scenario)
			c.Clients--
			if !try(c) {
				break
			}
			progress = true
		}
		if out.Scenario.Workload.Keys > 1 {
			c := clone(out.Scenario)
			c.Workload.Keys = 1
			if try(c) {
				progress = true
			}
		}
		// End the run soon after the last violation.
		if d := shorterDuration(out.Scenario, out.Result); d > 0 {
			c := clone(out.Scenario)
			c.Duration = d
			if try(c) {
				progress = true
			}
		}
	}
	return out, nil
}

// shorterDuration is a duration that ends 100 ms after the violation that
// ends last, rounded up to 100 ms, if that is shorter and still after every
// fault's start; else 0.
func shorterDuration(s *scenario.Scenario, res *Result) time.Duration {
	var last int64
	for _, v := range res.Verdict.Violations {
		last = max(last, v.To)
	}
	d := (time.Duration(last) + 100*time.Millisecond).Truncate(100*time.Millisecond) + 100*time.Millisecond
	for _, f := range s.Faults {
		if f.At >= d {
			return 0
		}
	}
	if d >= s.Duration {
		return 0
	}
	return d
}

func clone(s *scenario.Scenario) *scenario.Scenario {
	c := *s
	c.Backends = slices.Clone(s.Backends)
	c.Faults = slices.Clone(s.Faults)
	return &c
}
