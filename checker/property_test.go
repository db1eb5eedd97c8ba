package checker_test

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"pgregory.net/rapid"

	"github.com/locksim/locksim/checker"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/internal/histgen"
)

func genConfig(t *rapid.T, inject histgen.Injection) histgen.Config {
	return histgen.Config{
		Keys:          rapid.IntRange(1, 3).Draw(t, "keys"),
		ClientsPerKey: rapid.IntRange(2, 5).Draw(t, "clients"),
		Grants:        rapid.IntRange(10, 40).Draw(t, "grants"),
		TryFailRate:   rapid.Float64Range(0, 0.5).Draw(t, "tryFail"),
		RenewRate:     rapid.Float64Range(0, 0.5).Draw(t, "renew"),
		Inject:        inject,
		InjectAt:      rapid.IntRange(1, 8).Draw(t, "injectAt"),
	}
}

func check(t *rapid.T, events []history.Event) checker.Result {
	c := checker.New(checker.Options{Linearizability: true})
	for i := range events {
		events[i].Line = i + 1
		c.Add(&events[i])
	}
	return c.Finish()
}

// A correct lock never produces a violation, and is linearizable.
func TestPropertyCorrectLockIsClean(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := genConfig(t, histgen.None)
		seed := rapid.Uint64().Draw(t, "seed")
		events, _ := histgen.Generate(rand.New(rand.NewPCG(seed, 1)), cfg)
		res := check(t, events)
		if len(res.Violations) != 0 {
			t.Fatalf("violations in a correct history: %+v", res.Violations)
		}
		for _, l := range res.Linearizability {
			if l.Result != checker.LinOK {
				t.Fatalf("correct history not linearizable: %+v", l)
			}
		}
	})
}

// One injected fault produces exactly its kind of violation and no other.
func TestPropertyInjectionGivesExactlyItsKind(t *testing.T) {
	cases := []struct {
		inject histgen.Injection
		want   checker.Kind
	}{
		{histgen.Overlap, checker.MutualExclusion},
		{histgen.DupToken, checker.FencingLock},
		{histgen.RegressToken, checker.FencingLock},
		{histgen.StaleAccept, checker.FencingResource},
	}
	for _, tc := range cases {
		t.Run(string(tc.want), func(t *testing.T) {
			rapid.Check(t, func(rt *rapid.T) {
				cfg := genConfig(rt, tc.inject)
				seed := rapid.Uint64().Draw(rt, "seed")
				events, injected := histgen.Generate(rand.New(rand.NewPCG(seed, 1)), cfg)
				if !injected {
					rt.Skip("history too short for the injection")
				}
				res := check(rt, events)
				if len(res.Violations) != 1 {
					rt.Fatalf("want exactly one %s violation, got %d: %+v", tc.want, len(res.Violations), res.Violations)
				}
				if got := res.Violations[0].Kind; got != tc.want {
					rt.Fatalf("want %s, got %s: %+v", tc.want, got, res.Violations[0])
				}
			})
		})
	}
}

// A Checker Reset between histories gives each the Result a new one
// gives: nothing of one history (its holds, grants, liveness, options)
// leaks into the next.
func TestPropertyResetIsNew(t *testing.T) {
	reused := checker.New(checker.Options{})
	violating := 0
	rapid.Check(t, func(t *rapid.T) {
		cfg := genConfig(t, histgen.Injection(rapid.IntRange(0, int(histgen.StaleAccept)).Draw(t, "inject")))
		seed := rapid.Uint64().Draw(t, "seed")
		events, _ := histgen.Generate(rand.New(rand.NewPCG(seed, 1)), cfg)
		opts := checker.Options{Linearizability: rapid.Bool().Draw(t, "lin")}
		fresh := checker.New(opts)
		reused.Reset(opts)
		for i := range events {
			events[i].Line = i + 1
			fresh.Add(&events[i])
			reused.Add(&events[i])
		}
		want, got := fresh.Finish(), reused.Finish()
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("after Reset:\n got %+v\nwant %+v", got, want)
		}
		if len(want.Violations) > 0 {
			violating++
		}
	})
	if violating == 0 {
		t.Fatal("no history with a violation: the property saw no overlaps")
	}
}
