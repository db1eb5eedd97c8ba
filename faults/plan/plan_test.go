package plan_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/locksim/locksim/faults/plan"
)

func TestRingOfFive(t *testing.T) {
	nodes := []string{"n1", "n2", "n3", "n4", "n5"}
	ring := plan.RingCuts(nodes)
	// Each node keeps 2 neighbours (sees a majority of 3): 5 links cut.
	if len(ring) != 5 {
		t.Fatalf("ring cuts %v", ring)
	}
	for _, c := range ring {
		if (c[0] == "n1" && c[1] == "n2") || (c[0] == "n1" && c[1] == "n5") {
			t.Fatalf("ring cut a neighbour link: %v", c)
		}
	}
}

// TestRingOfSevenKeepsTwoNeighbours: on seven nodes each keeps two
// neighbours each side (sees four of seven), so only the links to the
// three farthest are cut.
func TestRingOfSevenKeepsTwoNeighbours(t *testing.T) {
	nodes := []int{0, 1, 2, 3, 4, 5, 6}
	cuts := plan.RingCuts(nodes)
	if len(cuts) != 7 {
		t.Fatalf("ring of 7 cuts %d links (%v), want 7", len(cuts), cuts)
	}
	for _, c := range cuts {
		if d := min(c[1]-c[0], 7-(c[1]-c[0])); d != 3 {
			t.Fatalf("ring of 7 cut %v, %d apart; want only links 3 apart", c, d)
		}
	}
}

// TestRingOfThreeIsABridge is the drift of issue 14: the simulator's own
// ring cut nothing on three servers, where real runs cut a bridge.
func TestRingOfThreeIsABridge(t *testing.T) {
	three := []string{"a", "b", "c"}
	if got := plan.RingCuts(three); !slices.Equal(got, [][2]string{{"a", "c"}}) {
		t.Fatalf("ring of 3: %v, want the bridge [[a c]]", got)
	}
	if got := plan.BridgeCuts(three); !slices.Equal(got, [][2]string{{"a", "c"}}) {
		t.Fatalf("bridge of 3: %v", got)
	}
	if got := plan.BridgeCuts([]string{"a", "b"}); got != nil {
		t.Fatalf("bridge of 2: %v, want nothing", got)
	}
}

// TestHalvesRandomMinority: a minority of len/2 and a majority, together
// every node once; which nodes form the minority depends on the draw.
func TestHalvesRandomMinority(t *testing.T) {
	nodes := []string{"s1", "s2", "s3"}
	minorities := map[string]bool{}
	for seed := uint64(0); seed < 50; seed++ {
		h := plan.Halves(rand.New(rand.NewPCG(seed, 3)), nodes)
		if len(h) != 2 || len(h[0]) != 1 || len(h[1]) != 2 {
			t.Fatalf("seed %d: halves %v, want a minority of 1 and a majority of 2", seed, h)
		}
		all := slices.Concat(h[0], h[1])
		slices.Sort(all)
		if !slices.Equal(all, nodes) {
			t.Fatalf("seed %d: halves %v do not hold every node once", seed, h)
		}
		minorities[h[0][0]] = true
	}
	if len(minorities) != 3 {
		t.Fatalf("over 50 draws the minority was only %v; want each server in turn", minorities)
	}
}
