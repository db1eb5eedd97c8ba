package checker_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"pgregory.net/rapid"

	"github.com/locksim/locksim/checker"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/internal/histgen"
	"github.com/locksim/locksim/scenario"
	"github.com/locksim/locksim/sim"
)

// verdicts is the JSON that `locksim check --json` prints for one history,
// as the checker gives it (from JSONL, through history.Reader) and as the
// checker before its speed work gave it (the rule checks fed the events
// directly, the old linearizability recorder: ReferenceLinearizability).
func verdicts(t interface {
	Helper()
	Fatalf(string, ...any)
}, events []history.Event) (got, want []byte) {
	t.Helper()
	var buf bytes.Buffer
	w := history.NewWriter(&buf)
	for i := range events {
		if err := w.Write(&events[i]); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	_ = w.Flush()
	data := buf.Bytes()
	opts := checker.Options{Linearizability: true}
	res, err := checker.Check(history.NewReader(bytes.NewReader(data), "h.jsonl"), opts)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	// The reference reads with encoding/json alone: every line through
	// json.Unmarshal into an Event's fields, as the old reader did.
	read, err := history.ReadAll(history.NewReader(bytes.NewReader(data), "h.jsonl"))
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	c := checker.New(checker.Options{})
	for i := range read {
		c.Add(&read[i])
	}
	ref := c.Finish()
	ref.Linearizability = checker.ReferenceLinearizability(read, opts)
	files := []string{"h.jsonl"}
	got, _ = json.Marshal(checker.Summarize(files, []checker.Result{res}))
	want, _ = json.Marshal(checker.Summarize(files, []checker.Result{ref}))
	return got, want
}

// The checker's verdicts (violations, linearizability, every field of the
// JSON) are those of the checker before it was made faster, on generated
// histories with each kind of injected fault.
func TestSameVerdictsGenerated(t *testing.T) {
	injections := []histgen.Injection{histgen.None, histgen.Overlap, histgen.DupToken, histgen.RegressToken, histgen.StaleAccept}
	var violating, illegal int
	rapid.Check(t, func(rt *rapid.T) {
		cfg := genConfig(rt, rapid.SampledFrom(injections).Draw(rt, "inject"))
		seed := rapid.Uint64().Draw(rt, "seed")
		events, _ := histgen.Generate(rand.New(rand.NewPCG(seed, 1)), cfg)
		got, want := verdicts(rt, events)
		if !bytes.Equal(got, want) {
			rt.Fatalf("verdicts differ\n got %s\nwant %s", got, want)
		}
		var s checker.Summary
		_ = json.Unmarshal(got, &s)
		if len(s.Violations) > 0 {
			violating++
		}
		for _, l := range s.Linearizability {
			if l.Result == checker.LinIllegal {
				illegal++
			}
		}
	})
	// Not vacuous: the histories compared broke rules and linearizability.
	if violating == 0 || illegal == 0 {
		t.Fatalf("%d histories with violations, %d non-linearizable checks: the comparison saw no failure", violating, illegal)
	}
}

// The same on simulated runs (`locksim sim` replays) that break mutual
// exclusion, fencing and the resource, with faults and unknown outcomes.
func TestSameVerdictsSimulated(t *testing.T) {
	cases := []struct {
		scenario string
		backends []string
	}{
		{"holder-paused-past-lease", []string{"etcd", "postgres", "memcache", "consul"}},
		{"holder-paused-past-lease-unfenced", []string{"etcd", "postgres", "memcache"}},
		{"leader-isolated", []string{"etcd"}},
		{"control", []string{"postgres-advisory"}},
	}
	var violating int
	for _, tc := range cases {
		sc, err := scenario.Load("../scenarios/" + tc.scenario + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range tc.backends {
			for seed := uint64(1); seed <= 3; seed++ {
				t.Run(fmt.Sprintf("%s/%s/%d", tc.scenario, b, seed), func(t *testing.T) {
					res, err := sim.Run(sim.Config{Scenario: sc, Backend: b, Seed: seed})
					if err != nil {
						t.Fatal(err)
					}
					got, want := verdicts(t, res.Events)
					if !bytes.Equal(got, want) {
						t.Fatalf("verdicts differ\n got %s\nwant %s", got, want)
					}
					var s checker.Summary
					_ = json.Unmarshal(got, &s)
					if len(s.Violations) > 0 {
						violating++
					}
					if len(s.Linearizability) == 0 {
						t.Fatal("no linearizability result")
					}
				})
			}
		}
	}
	if violating == 0 {
		t.Fatal("no run with a violation: the comparison saw no failure")
	}
}

// randomHistory is a small history of procs doing lock and register
// operations at random, with no lock behind them: overlapping in time (ties
// included), ending ok, fail or info (unknown) or not at all, with lost
// notices, reads of values written or not. Most are not linearizable.
func randomHistory(t *rapid.T) []history.Event {
	procs := rapid.IntRange(2, 4).Draw(t, "procs")
	keys := []string{"k", "j"}[:rapid.IntRange(1, 2).Draw(t, "keys")]
	fs := []string{history.FAcquire, history.FRelease, history.FRenew, history.FRead, history.FWrite, history.FLost}
	types := []history.Type{history.OK, history.OK, history.OK, history.Fail, history.Info, ""}
	var all []history.Event
	for p := 1; p <= procs; p++ {
		proc := "c" + strconv.Itoa(p)
		t0 := int64(rapid.IntRange(0, 4).Draw(t, "start"))
		for n := rapid.IntRange(1, 7).Draw(t, "ops"); n > 0; n-- {
			f := rapid.SampledFrom(fs).Draw(t, "f")
			key := rapid.SampledFrom(keys).Draw(t, "key")
			if f == history.FLost {
				all = append(all, history.Event{T: t0, Proc: proc, Type: history.Info, F: f, Key: key})
				t0 += int64(rapid.IntRange(0, 3).Draw(t, "gap"))
				continue
			}
			var val json.RawMessage
			if f == history.FWrite {
				val = json.RawMessage(strconv.Itoa(rapid.IntRange(0, 2).Draw(t, "value")))
			}
			all = append(all, history.Event{T: t0, Proc: proc, Type: history.Invoke, F: f, Key: key, Value: val})
			typ := rapid.SampledFrom(types).Draw(t, "type")
			if typ == "" {
				break // never completes
			}
			t0 += int64(rapid.IntRange(0, 6).Draw(t, "duration"))
			if f == history.FRead && typ == history.OK {
				val = json.RawMessage(strconv.Itoa(rapid.IntRange(0, 2).Draw(t, "read")))
			}
			all = append(all, history.Event{T: t0, Proc: proc, Type: typ, F: f, Key: key, Value: val})
			t0 += int64(rapid.IntRange(0, 3).Draw(t, "gap"))
		}
	}
	slices.SortStableFunc(all, func(a, b history.Event) int { return cmp.Compare(a.T, b.T) })
	return all
}

// On random histories, linearizable or not, the frontier's verdicts are
// porcupine's.
func TestSameVerdictsRandom(t *testing.T) {
	seen := map[checker.LinVerdict]int{}
	rapid.Check(t, func(rt *rapid.T) {
		got, want := verdicts(rt, randomHistory(rt))
		if !bytes.Equal(got, want) {
			rt.Fatalf("verdicts differ\n got %s\nwant %s", got, want)
		}
		var s checker.Summary
		_ = json.Unmarshal(got, &s)
		for _, l := range s.Linearizability {
			seen[l.Result]++
		}
	})
	if seen[checker.LinOK] == 0 || seen[checker.LinIllegal] == 0 || seen[checker.LinUnknown] != 0 {
		t.Fatalf("verdicts seen %v: want both ok and illegal, and no unknown", seen)
	}
}

// Histories that are not linearizable, each for a reason of its own, and
// near misses that are; the verdict is porcupine's and the one expected.
func TestSameVerdictsNotLinearizable(t *testing.T) {
	type ev = history.Event
	inv := func(t int64, p, f string, v ...string) ev {
		e := ev{T: t, Proc: p, Type: history.Invoke, F: f, Key: "k"}
		if len(v) > 0 {
			e.Value = json.RawMessage(v[0])
		}
		return e
	}
	end := func(t int64, p string, typ history.Type, f string, v ...string) ev {
		e := ev{T: t, Proc: p, Type: typ, F: f, Key: "k"}
		if len(v) > 0 {
			e.Value = json.RawMessage(v[0])
		}
		return e
	}
	ok := history.OK
	cases := []struct {
		name   string
		model  string
		want   checker.LinVerdict
		events []ev
	}{
		{"granted twice, the first holder then releases", checker.ModelLock, checker.LinIllegal, []ev{
			inv(1, "c1", "acquire"), end(2, "c1", ok, "acquire"),
			inv(3, "c2", "acquire"), end(4, "c2", ok, "acquire"),
			inv(5, "c1", "release"), end(6, "c1", ok, "release"),
		}},
		{"granted twice, the first holder renews after", checker.ModelLock, checker.LinIllegal, []ev{
			inv(1, "c1", "acquire"), end(2, "c1", ok, "acquire"),
			inv(3, "c2", "acquire"), end(4, "c2", ok, "acquire"),
			inv(5, "c1", "renew"), end(6, "c1", ok, "renew"),
			inv(7, "c1", "release"), end(8, "c1", ok, "release"),
		}},
		{"granted twice, the first lease may have expired", checker.ModelLock, checker.LinOK, []ev{
			inv(1, "c1", "acquire"), end(2, "c1", ok, "acquire"),
			inv(3, "c2", "acquire"), end(4, "c2", ok, "acquire"),
			inv(5, "c2", "release"), end(6, "c2", ok, "release"),
		}},
		{"granted while the holder's renew was in flight", checker.ModelLock, checker.LinOK, []ev{
			inv(1, "c1", "acquire"), end(2, "c1", ok, "acquire"),
			inv(3, "c1", "renew"),
			inv(4, "c2", "acquire"), end(5, "c2", ok, "acquire"),
			end(6, "c1", ok, "renew"),
		}},
		{"granted before the holder's renew was invoked", checker.ModelLock, checker.LinIllegal, []ev{
			inv(1, "c1", "acquire"), end(2, "c1", ok, "acquire"),
			inv(4, "c2", "acquire"), end(5, "c2", ok, "acquire"),
			inv(6, "c1", "renew"), end(7, "c1", ok, "renew"),
			inv(8, "c1", "release"), end(9, "c1", ok, "release"),
		}},
		{"granted before a renew that rules the expiry out, an unknown acquire to explain the rest", checker.ModelLock, checker.LinIllegal, []ev{
			inv(0, "c1", "acquire"), end(1, "c1", history.Info, "acquire"),
			inv(2, "c1", "acquire"), end(3, "c1", ok, "acquire"),
			inv(4, "c2", "acquire"), end(5, "c2", ok, "acquire"),
			inv(6, "c2", "release"), end(7, "c2", ok, "release"),
			inv(8, "c1", "renew"), end(9, "c1", ok, "renew"),
		}},
		{"the same without the renew", checker.ModelLock, checker.LinOK, []ev{
			inv(0, "c1", "acquire"), end(1, "c1", history.Info, "acquire"),
			inv(2, "c1", "acquire"), end(3, "c1", ok, "acquire"),
			inv(4, "c2", "acquire"), end(5, "c2", ok, "acquire"),
			inv(6, "c2", "release"), end(7, "c2", ok, "release"),
			inv(8, "c1", "release"), end(9, "c1", ok, "release"),
		}},
		{"released by a proc that never held it", checker.ModelLock, checker.LinIllegal, []ev{
			inv(1, "c1", "acquire"), end(2, "c1", ok, "acquire"),
			inv(3, "c2", "release"), end(4, "c2", ok, "release"),
		}},
		{"an unknown acquire explains a release", checker.ModelLock, checker.LinOK, []ev{
			inv(1, "c2", "acquire"), end(2, "c2", history.Info, "acquire"),
			inv(3, "c2", "release"), end(4, "c2", ok, "release"),
		}},
		{"read of a value never written", checker.ModelRegister, checker.LinIllegal, []ev{
			inv(1, "c1", "write", "1"), end(2, "c1", ok, "write"),
			inv(3, "c2", "read"), end(4, "c2", ok, "read", "7"),
		}},
		{"read of a value overwritten before it began", checker.ModelRegister, checker.LinIllegal, []ev{
			inv(1, "c1", "write", "1"), end(2, "c1", ok, "write"),
			inv(3, "c1", "write", "2"), end(4, "c1", ok, "write"),
			inv(5, "c2", "read"), end(6, "c2", ok, "read", "1"),
		}},
		{"read of a rejected write", checker.ModelRegister, checker.LinIllegal, []ev{
			inv(1, "c1", "write", "1"), end(2, "c1", ok, "write"),
			inv(3, "c1", "write", "2"), end(4, "c1", history.Fail, "write"),
			inv(5, "c2", "read"), end(6, "c2", ok, "read", "2"),
		}},
		{"read of an unknown write, then of the older value", checker.ModelRegister, checker.LinIllegal, []ev{
			inv(1, "c1", "write", "1"), end(2, "c1", ok, "write"),
			inv(3, "c1", "write", "2"), end(4, "c1", history.Info, "write"),
			inv(5, "c2", "read"), end(6, "c2", ok, "read", "2"),
			inv(7, "c2", "read"), end(8, "c2", ok, "read", "1"),
		}},
		{"read of an unknown write, late", checker.ModelRegister, checker.LinOK, []ev{
			inv(1, "c1", "write", "1"), end(2, "c1", ok, "write"),
			inv(3, "c1", "write", "2"), end(4, "c1", history.Info, "write"),
			inv(5, "c2", "read"), end(6, "c2", ok, "read", "1"),
			inv(7, "c2", "read"), end(8, "c2", ok, "read", "2"),
		}},
		{"reads concurrent with a write, in either order", checker.ModelRegister, checker.LinOK, []ev{
			inv(1, "c1", "write", "1"), end(2, "c1", ok, "write"),
			inv(3, "c1", "write", "2"),
			inv(3, "c2", "read"), inv(3, "c3", "read"),
			end(5, "c2", ok, "read", "2"), end(5, "c3", ok, "read", "1"),
			end(6, "c1", ok, "write"),
		}},
		{"a read that began as a write ended sees it", checker.ModelRegister, checker.LinOK, []ev{
			inv(1, "c1", "write", "1"), end(2, "c1", ok, "write"),
			inv(3, "c1", "write", "2"), inv(4, "c2", "read"),
			end(4, "c1", ok, "write"), end(5, "c2", ok, "read", "1"),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, want := verdicts(t, tc.events)
			if !bytes.Equal(got, want) {
				t.Fatalf("verdicts differ\n got %s\nwant %s", got, want)
			}
			var s checker.Summary
			_ = json.Unmarshal(got, &s)
			var found bool
			for _, l := range s.Linearizability {
				if l.Model == tc.model {
					found = true
					if l.Result != tc.want {
						t.Fatalf("%s: %s, want %s", l.Model, l.Result, tc.want)
					}
				}
			}
			if !found {
				t.Fatalf("no %s result in %s", tc.model, got)
			}
		})
	}
}
