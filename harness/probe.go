package harness

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"sync"
	"time"
)

// ProbeLengths are the timer lengths a TimerProbe sleeps on in turn: those
// lock clients use (a poll, a keepalive, a renewal).
var ProbeLengths = []time.Duration{10 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond}

// TimerProbe measures how late Go timers fire in the process it runs in:
// goroutines sleeping on timers of ProbeLengths in turn, each recording
// how late its timer fired. Every client process of a real run runs one
// (ClientConfig.TimingFile), so that the simulator's timer lateness can
// come from the processes whose timers it stands for (locksim
// measure-timing --runs).
type TimerProbe struct {
	mu   sync.Mutex
	late []time.Duration
	wg   sync.WaitGroup
}

// StartTimerProbe starts n probing goroutines, which run until ctx ends.
func StartTimerProbe(ctx context.Context, n int) *TimerProbe {
	p := &TimerProbe{}
	for i := 0; i < n; i++ {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for k := i; ; k++ {
				want := ProbeLengths[k%len(ProbeLengths)]
				t0 := time.Now()
				t := time.NewTimer(want)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return
				}
				l := time.Since(t0) - want
				p.mu.Lock()
				p.late = append(p.late, l)
				p.mu.Unlock()
			}
		}()
	}
	return p
}

// Wait waits for the probe's goroutines to end (after its context).
func (p *TimerProbe) Wait() { p.wg.Wait() }

// Lateness returns how late each timer so far fired.
func (p *TimerProbe) Lateness() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.late)
}

// TimingRecord is what a client process writes to its TimingFile: how
// late the probe's timers fired while it ran.
type TimingRecord struct {
	Proc string `json:"proc"`
	// TimerLatenessNs are the lateness of each timer, in ns.
	TimerLatenessNs []int64 `json:"timer_lateness_ns"`
}

// writeTiming writes p's measurements as proc's TimingRecord to path.
func (p *TimerProbe) writeTiming(path, proc string) error {
	rec := TimingRecord{Proc: proc}
	for _, l := range p.Lateness() {
		rec.TimerLatenessNs = append(rec.TimerLatenessNs, int64(l))
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
