package harness_test

import (
	"slices"
	"testing"
	"time"

	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/scenario"
)

// MegaMutex on real memcached servers, through the clients' own proxies:
// the control is clean (every client places the key on the same server)
// and its grants carry no fencing token; a holder that crashes holds the
// lock for the rest of the run (its add has no expiry), which the verdict
// shows as liveness, not as a violation, with a note that lock.ttl did not
// apply.
func TestMegamutex(t *testing.T) {
	t.Run("control", func(t *testing.T) {
		s := scen("control", 4*time.Second, true)
		s.Backends = []string{"megamutex"}
		v, events := run(t, s, "megamutex")
		if !v.OK {
			t.Fatalf("control not clean: %+v", v.Violations)
		}
		if n := grants(events, 0); n < 5 {
			t.Fatalf("only %d grants in 4 s", n)
		}
		for _, e := range events {
			if e.Proc != history.ProcResource && e.Proc != history.ProcNemesis && e.HasToken {
				t.Fatalf("an event with a token: %+v", e)
			}
		}
		if !slices.ContainsFunc(v.Notes, func(n string) bool { return n == megamutexNote }) {
			t.Fatalf("notes %q lack the lock.ttl note", v.Notes)
		}
	})
	t.Run("holder-crash", func(t *testing.T) {
		s := scen("crash", 6*time.Second, true, scenario.Fault{At: 1500 * time.Millisecond, Fault: "kill", Target: "holder"})
		s.Backends = []string{"megamutex"}
		s.Workload.HoldMin, s.Workload.HoldMax = time.Second, time.Second
		v, events := run(t, s, "megamutex")
		killed := nemesisAt(t, events, "kill")
		if n := grants(events, killed); n != 0 {
			t.Fatalf("%d grants after the holder crashed: the lock was freed", n)
		}
		if !v.OK || len(v.Liveness) != 1 {
			t.Fatalf("verdict %+v", v)
		}
		if l := v.Liveness[0]; time.Duration(l.LongestIdleWaitNs) < 3*time.Second {
			t.Fatalf("longest idle wait %v, want the rest of the run", time.Duration(l.LongestIdleWaitNs))
		}
	})
}

const megamutexNote = "lock.ttl (2s) does not expire the lock on megamutex: MegaMutex adds its key with no expiry (freed only by unlock); the TTL only bounds locks.Run's release"
