package harness_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/locksim/locksim/backend"
	"github.com/locksim/locksim/checker"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/scenario"
)

// The catalogue's locker-renewal-error pair on the real server (shortened
// to 9 s: the cut at 3 s, the holder's hold ends by 8 s): the brief cut
// fails one renewal of the holder. Under retry the lease survives and the
// holder releases it; under stop (the gem's renewer) the lease renews no
// more, another client takes the row while the first holds on without a
// lost notice, and the first's release fails.
func TestPostgresRenewErrors(t *testing.T) {
	for _, name := range []string{"locker-renewal-error", "locker-renewal-error-stop"} {
		t.Run(name, func(t *testing.T) {
			s, err := scenario.Load("../scenarios/" + name + ".yaml")
			if err != nil {
				t.Fatal(err)
			}
			s.Duration = 9 * time.Second
			v, events := run(t, s, "postgres")
			k := kinds(v)
			cut := nemesisAt(t, events, "cut-holder")
			var holder string
			for _, e := range events {
				if e.Proc == history.ProcNemesis && e.F == "cut-holder" {
					for _, c := range []string{"c1", "c2", "c3"} {
						if strings.Contains(string(e.Value), `"`+c+`"`) {
							holder = c
						}
					}
				}
			}
			var release *history.Event
			for i := range events {
				e := &events[i]
				if e.Proc != holder || e.T < cut {
					continue
				}
				if e.F == history.FLost {
					t.Fatalf("%s: the cut holder %s was told the lock was lost: %+v (kinds %v)", name, holder, e, k)
				}
				if e.F == history.FRelease && e.Type != history.Invoke {
					release = e
					break
				}
			}
			if release == nil {
				t.Fatalf("%s: no release by the cut holder %q", name, holder)
			}
			if s.Lock.RenewErrors == "retry" {
				if len(k) != 0 || release.Type != history.OK {
					t.Fatalf("retry: violations %v, holder's release %s; want safe and released", k, release.Type)
				}
				return
			}
			if !slices.Contains(k, string(checker.MutualExclusion)) || release.Type != history.Fail {
				t.Fatalf("stop: violations %v, holder's release %s; want mutual-exclusion and a failed release", k, release.Type)
			}
		})
	}
}

// lock.renew_errors on another backend than the lease table is noted, not
// silently dropped.
func TestRenewErrorsNotedElsewhere(t *testing.T) {
	s := scen("renew-errors-advisory", 2*time.Second, true)
	s.Lock.RenewErrors = "stop"
	v, _ := run(t, s, "postgres-advisory")
	if !slices.ContainsFunc(v.Notes, func(n string) bool { return strings.Contains(n, "lock.renew_errors (stop) not applied") }) {
		t.Fatalf("notes %q do not say that lock.renew_errors was not applied", v.Notes)
	}
}

// A fault kind the registry says does nothing on a backend (server-clock
// on etcd: libfaketime cannot reach a Go program's clock) is recorded as
// skipped, with the registry's why, and the verdict carries the why as a
// note; the simulator does the same (sim's TestNoFaultsSkipped).
func TestNoFaultsSkipped(t *testing.T) {
	s := scen("server-clock-etcd", 2*time.Second, true, scenario.Fault{At: 500 * time.Millisecond, Fault: "server-clock", Offset: 10 * time.Second})
	why := backend.Lookup("etcd").NoFaults["server-clock"]
	if why == "" {
		t.Fatal("the registry has etcd doing server-clock: this test wants a kind it lacks")
	}
	v, events := run(t, s, "etcd")
	if !slices.Contains(v.Notes, why) {
		t.Errorf("notes %q lack %q", v.Notes, why)
	}
	found := false
	for _, e := range events {
		if e.Proc == history.ProcNemesis && e.F == "server-clock" {
			found = true
			if !strings.Contains(string(e.Value), `"skipped":"`+why+`"`) {
				t.Errorf("the server-clock event %s does not say it was skipped for %q", e.Value, why)
			}
		}
	}
	if !found {
		t.Error("no server-clock event in the history")
	}
}
