package report

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/locksim/locksim/checker"
)

// A cell's liveness over its seeds: the held time and span summed, the
// lowest held share and the longest idle wait with their seeds (the lowest
// seed of equal figures); the same whatever the order the seeds finish in
// and however they are split into shards.
func TestAddLiveness(t *testing.T) {
	runs := map[uint64][]checker.Liveness{
		1: {{Key: "a", HeldNs: 80, SpanNs: 100, HeldShare: 0.8, LongestIdleWaitNs: 5, From: 10, To: 15, Procs: []string{"c1"}},
			{Key: "b", HeldNs: 50, SpanNs: 100, HeldShare: 0.5, Procs: []string{}}},
		2: {{Key: "a", HeldNs: 40, SpanNs: 100, HeldShare: 0.4, LongestIdleWaitNs: 30, From: 50, To: 80, Procs: []string{"c2", "c3"}, UntilEnd: true}},
		3: {{Key: "a", HeldNs: 40, SpanNs: 100, HeldShare: 0.4, LongestIdleWaitNs: 30, From: 60, To: 90, Procs: []string{"c1"}}},
		4: {{Key: "a", HeldNs: 90, SpanNs: 100, HeldShare: 0.9, Procs: []string{}}},
	}
	want := []KeyLiveness{
		{Key: "a", Runs: 4, HeldNs: 250, SpanNs: 400, LowestHeldShare: 0.4, LowestSeed: 2,
			LongestIdleWaitNs: 30, IdleSeed: 2, From: 50, To: 80, Procs: []string{"c2", "c3"}, UntilEnd: true},
		{Key: "b", Runs: 1, HeldNs: 50, SpanNs: 100, LowestHeldShare: 0.5, LowestSeed: 1},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		seeds := []uint64{1, 2, 3, 4}
		rng.Shuffle(len(seeds), func(i, j int) { seeds[i], seeds[j] = seeds[j], seeds[i] })
		cut := rng.IntN(len(seeds) + 1)
		var a, b []KeyLiveness
		for i, seed := range seeds {
			if i < cut {
				a = AddLiveness(a, seed, runs[seed])
			} else {
				b = AddLiveness(b, seed, runs[seed])
			}
		}
		if got := MergeLiveness(a, b); !reflect.DeepEqual(got, want) {
			t.Fatalf("seeds in order %v, cut at %d:\n got %+v\nwant %+v", seeds, cut, got, want)
		}
	}
	if got := want[0].HeldShare(); got != 0.625 {
		t.Errorf("held share %v, want 0.625", got)
	}

	s := &Summary{Mode: ModeSim}
	c := &Cell{Liveness: want}
	// Two keys: all their time together (300 of 500 ns), the longest wait of either.
	if got := livenessText(s, c); got != "held 60.0%, longest idle wait 30ns to the end (seed 2)" {
		t.Errorf("sim text %q", got)
	}
	if got := keyLivenessText(s, &want[1]); got != "key b: held 50.0% of the time over 1 seeds (the lowest: 50.0%, seed 1); no client ever waited while nobody held it" {
		t.Errorf("key text %q", got)
	}
	if got := livenessText(&Summary{Mode: ModeReal}, &Cell{}); got != "" {
		t.Errorf("no liveness: %q", got)
	}
}

// index.html shows a cell's liveness under its verdict in the matrix,
// says what it is, and lists it per key in the cell's section.
func TestLivenessHTML(t *testing.T) {
	var b bytes.Buffer
	if err := WriteHTML(&b, t.TempDir(), handSummary(ModeSim)); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{
		`damage 3/100 seeds ×3<br><span class="live">held 62.0%, longest idle wait 15.2s to the end (seed 9)</span></a>`,
		`<p class="live-intro">The grey line of a cell is its liveness.`,
		`<li>key locksim-0: held 62.0% of the time over 100 seeds (the lowest: 55.0%, seed 3); longest idle wait 15.2s in seed 9, t=3s..18.2s, the end of the run: still waiting, by c2, c3</li>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("index.html has no %s", want)
		}
	}
	if strings.Count(page, `<span class="live">`) != 2 {
		t.Errorf("want a liveness line in the 2 cells that have figures, got %d", strings.Count(page, `<span class="live">`))
	}
}
