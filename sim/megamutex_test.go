package sim

import (
	"testing"
	"time"

	"github.com/locksim/locksim/history"
)

// MegaMutex's add has no expiry: after the holder crashes, nobody holds
// the lock again (seed 004's mutex, the same scenario on memcache, grants
// it again a TTL later), the waiters' idle wait is the rest of the run,
// and no event carries a token.
func TestMegamutexDeadHolderHoldsForever(t *testing.T) {
	sc := load(t, "megamutex-holder-crash")
	for seed := uint64(1); seed <= 5; seed++ {
		mm := simulate(t, sc, "megamutex", seed)
		mc := simulate(t, sc, "memcache", seed)
		if !mm.OK() || !mc.OK() {
			t.Fatalf("seed %d: violations %v / %v", seed, mm.Kinds(), mc.Kinds())
		}
		killed := int64(-1)
		for _, e := range mm.Events {
			if e.Proc == history.ProcNemesis && e.F == "kill" {
				killed = e.T
			}
			if e.Proc != history.ProcNemesis && e.HasToken {
				t.Fatalf("seed %d: an event with a token: %+v", seed, e)
			}
		}
		if killed < 0 {
			t.Fatalf("seed %d: no kill", seed)
		}
		grantsAfter := func(res *Result) int {
			n := 0
			for _, e := range res.Events {
				if e.F == history.FAcquire && e.Type == history.OK && e.T > killed {
					n++
				}
			}
			return n
		}
		if n := grantsAfter(mm); n != 0 {
			t.Fatalf("seed %d: %d megamutex grants after the holder crashed", seed, n)
		}
		if grantsAfter(mc) == 0 {
			t.Fatalf("seed %d: memcache never granted again: its expiry did not free the lock", seed)
		}
		live := mm.Verdict.Liveness
		if len(live) != 1 || time.Duration(live[0].LongestIdleWaitNs) < 8*time.Second {
			t.Fatalf("seed %d: liveness %+v, want an idle wait to the end of the run", seed, live)
		}
	}
}
