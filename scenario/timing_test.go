package scenario_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/locksim/locksim/scenario"
)

// start_window and a fault's jitter are read, kept by Marshal, and shape
// the timing a seed draws; jitter: 0s and start_window: 0s make it exact.
func TestTimingFields(t *testing.T) {
	src := `name: exact
backends: [etcd]
clients: 3
duration: 10s
start_window: 0s
faults:
  - {at: 2s, fault: pause, target: holder, for: 1s, jitter: 0s}
  - {at: 4s, fault: slow, target: c1, latency: 5ms, latency_jitter: 2ms}
`
	sc, err := scenario.Parse("exact.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if !sc.StartWindowSet || sc.StartWindow != 0 || !sc.Faults[0].JitterSet || sc.Faults[1].JitterSet {
		t.Fatalf("fields not read: %+v", sc)
	}
	if sc.Faults[1].LatencyJitter != 2*time.Millisecond {
		t.Fatalf("latency_jitter = %v", sc.Faults[1].LatencyJitter)
	}
	tm := sc.Timing(42)
	if !reflect.DeepEqual(tm.ClientStart, []time.Duration{0, 0, 0}) || tm.FaultAt[0] != 2*time.Second {
		t.Fatalf("exact timing moved: %+v", tm)
	}
	if d := tm.FaultAt[1] - 4*time.Second; d == 0 || d < -500*time.Millisecond || d > 500*time.Millisecond {
		t.Fatalf("fault 1 without jitter at %v: want 4s ± the default 500ms, and moved", tm.FaultAt[1])
	}
	back, err := scenario.Parse("back.yaml", scenario.Marshal(sc))
	if err != nil {
		t.Fatalf("Marshal's output does not parse: %v\n%s", err, scenario.Marshal(sc))
	}
	if !reflect.DeepEqual(back.Timing(42), tm) {
		t.Fatalf("timing changed across Marshal:\n%s", scenario.Marshal(sc))
	}
}

// The default window either side of a fault is one renew interval.
func TestDefaultJitter(t *testing.T) {
	for _, c := range []struct {
		lock scenario.Lock
		want time.Duration
	}{
		{scenario.Lock{TTL: 3 * time.Second, RenewEvery: 700 * time.Millisecond}, 700 * time.Millisecond},
		{scenario.Lock{TTL: 3 * time.Second}, time.Second},
		{scenario.Lock{}, 500 * time.Millisecond},
	} {
		s := &scenario.Scenario{Lock: c.lock}
		if got := s.DefaultJitter(); got != c.want {
			t.Errorf("DefaultJitter(%+v) = %v, want %v", c.lock, got, c.want)
		}
		// The renew interval of the clients, where the scenario sets one.
		if c.lock.TTL > 0 {
			if got := c.lock.Renewal(); got != c.want {
				t.Errorf("Renewal(%+v) = %v, want %v", c.lock, got, c.want)
			}
		} else if got := c.lock.Renewal(); got != 0 {
			t.Errorf("Renewal(%+v) = %v, want 0 (the backend's default)", c.lock, got)
		}
	}
}

// Shifted moves every fault and leaves the original alone.
func TestShifted(t *testing.T) {
	s := &scenario.Scenario{Duration: 5 * time.Second, Faults: []scenario.Fault{{At: time.Second}, {At: 4900 * time.Millisecond}}}
	c := s.Shifted(200 * time.Millisecond)
	if c.Faults[0].At != 1200*time.Millisecond || c.Faults[1].At != 5*time.Second-1 || s.Faults[0].At != time.Second {
		t.Fatalf("Shifted: %+v, original %+v", c.Faults, s.Faults)
	}
}
