package harness_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/locksim/locksim/checker"
	"github.com/locksim/locksim/history"
)

// The database/sql pitfall on real MariaDB: GET_LOCK on the pool, whose
// connection is closed as soon as the row is read. The lock goes at once,
// two clients hold it together, and the holders learn it only at their
// release. With the lock pinned to its connection, the same run is clean.
func TestMySQLPooledPitfall(t *testing.T) {
	for _, pooled := range []bool{false, true} {
		s := scen("mysql-pool", 4*time.Second, false)
		s.Backends = []string{"mysql"}
		s.Workload.HoldMin, s.Workload.HoldMax = 300*time.Millisecond, 500*time.Millisecond
		if pooled {
			s.Lock.Connection = "pooled"
		}
		v, events := run(t, s, "mysql")
		lostAtRelease := 0
		for _, e := range events {
			if e.F == history.FRelease && e.Type == history.Fail {
				lostAtRelease++
				t.Logf("pooled=%v: %s release failed: %s", pooled, e.Proc, e.Value)
			}
		}
		if !slices.ContainsFunc(v.Notes, func(n string) bool { return strings.Contains(n, "lock.ttl has no effect on mysql") }) {
			t.Errorf("no note that lock.ttl has no effect: %q", v.Notes)
		}
		me := slices.Contains(kinds(v), string(checker.MutualExclusion))
		if pooled && (!me || lostAtRelease == 0) {
			t.Fatalf("pooled: violations %v, %d releases found the lock gone; want mutual-exclusion and lost releases", kinds(v), lostAtRelease)
		}
		// Pinned, a release may still fail under load (its statement cut
		// off by the client's op timeout hangs the connection up, and the
		// lease counts as lost, as postgres-advisory's does), but the run
		// is clean.
		if !pooled && !v.OK {
			t.Fatalf("pinned: violations %v; want a clean run", kinds(v))
		}
	}
}
