package scenario

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"time"
)

// DefaultStartWindow is the span over which the clients' start offsets are
// drawn when a scenario sets no start_window: real deployments are never
// in phase, so neither are a run's clients.
const DefaultStartWindow = time.Second

// DefaultJitter is the window either side of a fault's at from which its
// start is drawn when the fault sets no jitter: one renew interval — the
// clients' (Lock.Renewal: the scenario's lock.renew_every, else a third of
// lock.ttl), else 500 ms — so that the fault meets the clients' renewals
// and polls at every phase, not at one.
func (s *Scenario) DefaultJitter() time.Duration {
	if r := s.Lock.Renewal(); r > 0 {
		return r
	}
	return 500 * time.Millisecond
}

// FaultJitter is fault i's window either side of its at.
func (s *Scenario) FaultJitter(i int) time.Duration {
	if s.Faults[i].JitterSet {
		return s.Faults[i].Jitter
	}
	return s.DefaultJitter()
}

// ClientStartWindow is the span of the clients' start offsets.
func (s *Scenario) ClientStartWindow() time.Duration {
	if s.StartWindowSet {
		return s.StartWindow
	}
	return DefaultStartWindow
}

// Timing is what a seed chooses of a run's timing, beside the choices the
// run makes as it goes. The simulator and real runs draw it alike
// (Scenario.Timing), so that the same seed starts the same clients and
// faults at the same offsets in both.
type Timing struct {
	// ClientStart[i] is when client i (c<i+1>) begins its workload, from
	// the start of the run: uniform in [0, the start window).
	ClientStart []time.Duration
	// FaultAt[i] is when fault i starts: uniform in [at-jitter,
	// at+jitter], within [0, duration), and never before a fault whose at
	// is earlier (a schedule keeps its order: a heal stays after the cut
	// it heals).
	FaultAt []time.Duration
}

// timingStream names the PCG stream Timing draws from, apart from every
// other draw of a run.
const timingStream = 0x74696d696e67 // "timing"

// Timing draws the timing of seed.
func (s *Scenario) Timing(seed uint64) Timing {
	rng := rand.New(rand.NewPCG(seed, timingStream))
	t := Timing{ClientStart: make([]time.Duration, s.Clients), FaultAt: make([]time.Duration, len(s.Faults))}
	if w := s.ClientStartWindow(); w > 0 {
		for i := range t.ClientStart {
			t.ClientStart[i] = time.Duration(rng.Int64N(int64(w)))
		}
	}
	for i, f := range s.Faults {
		at := f.At
		if j := s.FaultJitter(i); j > 0 {
			at += time.Duration(rng.Int64N(int64(2*j)+1)) - j
		}
		t.FaultAt[i] = min(max(at, 0), s.Duration-1)
	}
	// Keep the schedule's order: by at, then by place in the file.
	order := make([]int, len(s.Faults))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(s.Faults[a].At, s.Faults[b].At) })
	for k := 1; k < len(order); k++ {
		prev, cur := order[k-1], order[k]
		t.FaultAt[cur] = max(t.FaultAt[cur], t.FaultAt[prev])
	}
	return t
}

// Shifted is a copy of s with every fault's at moved by d (within [0,
// duration)): the sweep that shows whether a verdict depends on a fault's
// exact time.
func (s *Scenario) Shifted(d time.Duration) *Scenario {
	c := *s
	c.Faults = slices.Clone(s.Faults)
	for i := range c.Faults {
		c.Faults[i].At = min(max(c.Faults[i].At+d, 0), s.Duration-1)
	}
	return &c
}
