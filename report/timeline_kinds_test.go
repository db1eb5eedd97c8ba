package report

import (
	"slices"
	"testing"

	"github.com/locksim/locksim/faults/kinds"
)

// The timeline knows every fault kind of the registry (package
// faults/kinds): a kind's end event (Kind.End) closes it, and a kind with
// no end is an instant. restart is an instant though the simulator
// records an end for it after `for`: that end is a restart of its own.
func TestTimelineKnowsEveryKind(t *testing.T) {
	for _, k := range kinds.All {
		switch {
		case k.Name == "heal":
		case k.End == "" || k.Name == "restart":
			if !instantFaults[k.Name] {
				t.Errorf("%s has no end, but is not among instantFaults", k.Name)
			}
		case !slices.Contains(faultEnds[k.End], k.Name):
			t.Errorf("%s ends with %s, but faultEnds[%q] = %v", k.Name, k.End, k.End, faultEnds[k.End])
		}
	}
	for end, names := range faultEnds {
		for _, n := range names {
			if k, ok := kinds.Lookup(n); !ok || k.End != end {
				t.Errorf("faultEnds[%q] has %s, whose end is %q", end, n, k.End)
			}
		}
	}
}
