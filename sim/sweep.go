package sim

import (
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/locksim/locksim/scenario"
)

// ShiftSweep asks whether a verdict depends on a fault's exact time: for
// each shift in Shifts it runs seeds 1..Seeds of the scenario with every
// fault's at moved by that shift, and counts the seeds that broke a rule.
// A verdict that is a property of the lock moves smoothly with the shift;
// one that jumps between neighbouring shifts is an artefact of sampling
// one phase of the clients' and servers' timers.
type ShiftSweep struct {
	Scenario *scenario.Scenario
	Backend  string
	Seeds    uint64
	Shifts   []time.Duration
	// Parallel is how many seeds run at once (default GOMAXPROCS).
	Parallel int
}

// ShiftResult is the outcome of a ShiftSweep.
type ShiftResult struct {
	Shifts []time.Duration
	// Violating[i] is the number of violating seeds at Shifts[i].
	Violating []int
	Seeds     uint64
}

// Share is the violating share at shift i, in percent.
func (r *ShiftResult) Share(i int) float64 {
	return 100 * float64(r.Violating[i]) / float64(r.Seeds)
}

// MaxJump is the largest change of the violating share between
// neighbouring shifts, in percentage points, and the index i of the pair
// (Shifts[i], Shifts[i+1]) where it is.
func (r *ShiftResult) MaxJump() (pp float64, at int) {
	for i := 0; i+1 < len(r.Violating); i++ {
		d := r.Share(i+1) - r.Share(i)
		if d < 0 {
			d = -d
		}
		if d > pp {
			pp, at = d, i
		}
	}
	return pp, at
}

// Run runs the sweep; ctx ends it early with ctx's error.
func (s ShiftSweep) Run(ctx context.Context) (*ShiftResult, error) {
	par := s.Parallel
	if par < 1 {
		par = runtime.GOMAXPROCS(0)
	}
	res := &ShiftResult{Shifts: s.Shifts, Violating: make([]int, len(s.Shifts)), Seeds: s.Seeds}
	type job struct {
		shift int
		seed  uint64
	}
	jobs := make(chan job)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	scs := make([]*scenario.Scenario, len(s.Shifts))
	for i, d := range s.Shifts {
		scs[i] = s.Scenario.Shifted(d)
	}
	for w := 0; w < par; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				r, err := Run(Config{Scenario: scs[j.shift], Backend: s.Backend, Seed: j.seed, NoHistory: true})
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil && !r.OK() {
					res.Violating[j.shift]++
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range s.Shifts {
		for seed := uint64(1); seed <= s.Seeds; seed++ {
			select {
			case jobs <- job{i, seed}:
			case <-ctx.Done():
				break feed
			}
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return res, ctx.Err()
}
