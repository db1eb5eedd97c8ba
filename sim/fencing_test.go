package sim

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/locksim/locksim/checker"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/scenario"
)

// holder-cut-off under each mode: the lock fails on PostgreSQL (and on
// etcd in some seeds);
// fencing writes loses increments on PostgreSQL (the cut-off holder's
// write, based on a read made before the lock passed on, is the highest
// token the resource has seen when it lands), while all and guarded keep
// the counter whole on every backend.
func TestFencingModesHolderCutOff(t *testing.T) {
	base := load(t, "holder-cut-off")
	for _, mode := range []scenario.Fencing{scenario.FenceWrites, scenario.FenceAll, scenario.FenceGuarded} {
		sc := *base
		sc.Workload.Fencing = mode
		for _, b := range []string{"etcd", "postgres", "postgres-advisory", "consul"} {
			damaged := 0
			for seed := uint64(1); seed <= 5; seed++ {
				res := simulate(t, &sc, b, seed)
				kinds := res.Kinds()
				if b == "postgres" && !slices.Contains(kinds, checker.MutualExclusion) {
					t.Errorf("%s/%s seed %d: the lock held, got %v", mode, b, seed, kinds)
				}
				if slices.Contains(kinds, checker.FencingResource) {
					t.Errorf("%s/%s seed %d: %v", mode, b, seed, kinds)
				}
				if slices.Contains(kinds, checker.Damage) {
					damaged++
				}
				if mode == scenario.FenceGuarded {
					checkGuardedHistory(t, res, b == "postgres")
				}
			}
			want := 0
			if mode == scenario.FenceWrites && b == "postgres" {
				want = 5
			}
			if mode == scenario.FenceWrites && b == "consul" {
				// Consul's lock-delay race (an acquire in flight when the
				// cut holder's session is invalidated) lets a second
				// holder in in a few seeds, and writes does not protect a
				// read-modify-write: damage may or may not show.
				continue
			}
			if damaged != want {
				t.Errorf("%s/%s: damage in %d of 5 seeds, want %d", mode, b, damaged, want)
			}
		}
	}
}

// checkGuardedHistory: under guarded the service decides every write: a
// write that completed ok was accepted, one that failed was rejected (a
// write whose answer was lost, info, may be either), and, where the
// cut-off holder writes after the lock passed on (refused), a write was
// refused.
func checkGuardedHistory(t *testing.T, res *Result, refused bool) {
	t.Helper()
	var accepts, rejects, okWrites, failedWrites int
	for _, e := range res.Events {
		switch {
		case e.Proc == history.ProcResource && e.F == history.FAccept:
			accepts++
		case e.Proc == history.ProcResource && e.F == history.FReject:
			rejects++
		case e.F == history.FWrite && e.Type == history.OK:
			okWrites++
		case e.F == history.FWrite && e.Type == history.Fail:
			failedWrites++
		}
	}
	if okWrites > accepts || failedWrites > rejects || (refused && rejects == 0) {
		t.Errorf("%s seed %d: %d accepts for %d ok writes, %d rejects for %d failed writes", res.Backend, res.Seed, accepts, okWrites, rejects, failedWrites)
	}
}

// fencing all: a read with a token below the highest served is refused
// (the read fails, nothing is written after it); the same seed gives the
// same history, byte for byte, in every mode.
func TestFencingModesDeterministic(t *testing.T) {
	base := load(t, "holder-cut-off")
	for _, mode := range []scenario.Fencing{scenario.FenceAll, scenario.FenceGuarded} {
		sc := *base
		sc.Workload.Fencing = mode
		for _, b := range []string{"etcd", "postgres", "consul", "postgres-advisory"} {
			a, c := historyBytes(t, simulate(t, &sc, b, 3)), historyBytes(t, simulate(t, &sc, b, 3))
			if !bytes.Equal(a, c) {
				t.Errorf("%s/%s: seed 3 gave two histories", mode, b)
			}
		}
	}
	sc := *base
	sc.Workload.Fencing = scenario.FenceGuarded
	if _, err := Run(Config{Scenario: &sc, Backend: "memcache", Seed: 1}); err == nil {
		t.Error("guarded on memcache: no error")
	}
}

// TestGuardedTimeoutAsRealRuns: a guarded operation that gets no answer
// ends unknown after the resource client's timeout, as harness/ bounds
// it (resource.ClientTimeout, 5 s); the simulator gave up after 1 s.
func TestGuardedTimeoutAsRealRuns(t *testing.T) {
	sc := parse(t, `name: guarded-timeout
backends: [postgres]
clients: 1
duration: 20s
lock: {ttl: 30s, renew_every: 10s, poll: 100ms}
workload: {hold_min: 2s, fencing: guarded}
faults:
  - {at: 3s, jitter: 0s, fault: cut-holder, target: holder, for: 10s}
`)
	res := simulate(t, sc, "postgres", 1)
	invoked := map[string]int64{}
	unknown := 0
	for _, e := range res.Events {
		if e.Proc != "c1" || (e.F != history.FRead && e.F != history.FWrite) {
			continue
		}
		switch e.Type {
		case history.Invoke:
			invoked[e.F] = e.T
		case history.Info:
			unknown++
			if d := time.Duration(e.T - invoked[e.F]); d < 5*time.Second && e.T < int64(sc.Duration) {
				t.Errorf("a guarded %s ended unknown after %v, want the 5 s of the resource client", e.F, d)
			}
		}
	}
	if unknown == 0 {
		t.Fatal("no guarded operation went unanswered under the cut")
	}
}
