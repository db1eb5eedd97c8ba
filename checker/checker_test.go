package checker_test

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/locksim/locksim/checker"
	"github.com/locksim/locksim/history"
)

func run(t *testing.T, jsonl string, lin bool) checker.Result {
	t.Helper()
	r := history.NewReader(strings.NewReader(jsonl), "test.jsonl")
	res, err := checker.Check(r, checker.Options{Linearizability: lin})
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	return res
}

func kinds(res checker.Result) []string {
	var out []string
	for _, v := range res.Violations {
		out = append(out, string(v.Kind))
	}
	return out
}

// Each rule and its edges, on small hand-written histories.
func TestRules(t *testing.T) {
	tests := []struct {
		name    string
		history string
		want    []string // violation kinds, in order
		lines   [][]int  // lines of each violation, when checked
	}{
		{
			name: "intervals that only touch do not overlap",
			history: `{"t":10,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":20,"proc":"c1","type":"ok","f":"acquire","key":"k","token":1}
{"t":25,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":30,"proc":"c1","type":"invoke","f":"release","key":"k"}
{"t":30,"proc":"c2","type":"ok","f":"acquire","key":"k","token":2}
{"t":40,"proc":"c1","type":"ok","f":"release","key":"k"}`,
		},
		{
			name: "acquire ok before the other's release invoke at the same time still touches",
			history: `{"t":10,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":20,"proc":"c1","type":"ok","f":"acquire","key":"k","token":1}
{"t":25,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":30,"proc":"c2","type":"ok","f":"acquire","key":"k","token":2}
{"t":30,"proc":"c1","type":"invoke","f":"release","key":"k"}`,
		},
		{
			name: "overlap until the release invoke",
			history: `{"t":10,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":20,"proc":"c1","type":"ok","f":"acquire","key":"k","token":1}
{"t":25,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":30,"proc":"c2","type":"ok","f":"acquire","key":"k","token":2}
{"t":31,"proc":"c1","type":"invoke","f":"release","key":"k"}
{"t":35,"proc":"c1","type":"ok","f":"release","key":"k"}
{"t":40,"proc":"c2","type":"invoke","f":"release","key":"k"}`,
			want:  []string{"mutual-exclusion"},
			lines: [][]int{{2, 4, 5}},
		},
		{
			name: "lost ends a belief",
			history: `{"t":10,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":20,"proc":"c1","type":"ok","f":"acquire","key":"k","token":1}
{"t":22,"proc":"c1","type":"info","f":"lost","key":"k","token":1}
{"t":25,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":30,"proc":"c2","type":"ok","f":"acquire","key":"k","token":2}`,
		},
		{
			name: "lost without a key ends every belief of the proc",
			history: `{"t":10,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":20,"proc":"c1","type":"ok","f":"acquire","key":"k","token":1}
{"t":22,"proc":"c1","type":"info","f":"lost"}
{"t":25,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":30,"proc":"c2","type":"ok","f":"acquire","key":"k","token":2}`,
		},
		{
			name: "a lost notice for an older grant does not end the current one",
			history: `{"t":10,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":20,"proc":"c1","type":"ok","f":"acquire","key":"k","token":5}
{"t":22,"proc":"c1","type":"info","f":"lost","key":"k","token":4}
{"t":25,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":30,"proc":"c2","type":"ok","f":"acquire","key":"k","token":6}
{"t":40,"proc":"c1","type":"info","f":"lost","key":"k","token":5}`,
			want:  []string{"mutual-exclusion"},
			lines: [][]int{{2, 5, 6}},
		},
		{
			name: "lost after the overlap ends the belief there",
			history: `{"t":10,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":20,"proc":"c1","type":"ok","f":"acquire","key":"k","token":1}
{"t":25,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":30,"proc":"c2","type":"ok","f":"acquire","key":"k","token":2}
{"t":50,"proc":"c1","type":"info","f":"lost","key":"k"}`,
			want:  []string{"mutual-exclusion"},
			lines: [][]int{{2, 4, 5}},
		},
		{
			name: "an info acquire gives no belief",
			history: `{"t":10,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":20,"proc":"c1","type":"info","f":"acquire","key":"k"}
{"t":25,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":30,"proc":"c2","type":"ok","f":"acquire","key":"k","token":2}`,
		},
		{
			name: "a failed acquire gives no belief",
			history: `{"t":10,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":20,"proc":"c1","type":"fail","f":"acquire","key":"k"}
{"t":25,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":30,"proc":"c2","type":"ok","f":"acquire","key":"k","token":2}`,
		},
		{
			name: "a hold never released lasts to the end of the history",
			history: `{"t":10,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":20,"proc":"c1","type":"ok","f":"acquire","key":"k","token":1}
{"t":25,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":30,"proc":"c2","type":"ok","f":"acquire","key":"k","token":2}
{"t":90,"proc":"nemesis","type":"info","f":"pause","value":{"target":"c1"}}`,
			want:  []string{"mutual-exclusion"},
			lines: [][]int{{2, 4}},
		},
		{
			name: "holds ending with the history at their start are empty",
			history: `{"t":10,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":20,"proc":"c1","type":"ok","f":"acquire","key":"k","token":1}
{"t":25,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":30,"proc":"c2","type":"ok","f":"acquire","key":"k","token":2}`,
		},
		{
			name: "several keys are independent",
			history: `{"t":10,"proc":"c1","type":"invoke","f":"acquire","key":"a"}
{"t":20,"proc":"c1","type":"ok","f":"acquire","key":"a","token":1}
{"t":25,"proc":"c2","type":"invoke","f":"acquire","key":"b"}
{"t":30,"proc":"c2","type":"ok","f":"acquire","key":"b","token":1}
{"t":31,"proc":"c3","type":"invoke","f":"acquire","key":"b"}
{"t":32,"proc":"c3","type":"ok","f":"acquire","key":"b","token":2}
{"t":40,"proc":"c1","type":"invoke","f":"release","key":"a"}
{"t":50,"proc":"c2","type":"invoke","f":"release","key":"b"}`,
			want:  []string{"mutual-exclusion"},
			lines: [][]int{{4, 6, 8}},
		},
		{
			name: "three holders overlapping give one violation per pair",
			history: `{"t":1,"proc":"c1","type":"invoke","f":"acquire"}
{"t":2,"proc":"c1","type":"ok","f":"acquire"}
{"t":3,"proc":"c2","type":"invoke","f":"acquire"}
{"t":4,"proc":"c2","type":"ok","f":"acquire"}
{"t":5,"proc":"c3","type":"invoke","f":"acquire"}
{"t":6,"proc":"c3","type":"ok","f":"acquire"}
{"t":7,"proc":"c1","type":"invoke","f":"release"}`,
			want: []string{"mutual-exclusion", "mutual-exclusion", "mutual-exclusion"},
		},
		{
			name: "no tokens at all: mutual exclusion still judged, fencing not",
			history: `{"t":1,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":2,"proc":"c1","type":"ok","f":"acquire","key":"k"}
{"t":3,"proc":"c1","type":"invoke","f":"release","key":"k"}
{"t":4,"proc":"c1","type":"ok","f":"release","key":"k"}
{"t":5,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":6,"proc":"c2","type":"ok","f":"acquire","key":"k"}`,
		},
		{
			name: "a token granted twice",
			history: `{"t":1,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":2,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":3,"proc":"c1","type":"ok","f":"acquire","key":"k","token":7}
{"t":4,"proc":"c1","type":"invoke","f":"release","key":"k"}
{"t":5,"proc":"c1","type":"ok","f":"release","key":"k"}
{"t":6,"proc":"c2","type":"ok","f":"acquire","key":"k","token":7}`,
			want:  []string{"fencing-lock"},
			lines: [][]int{{3, 6}},
		},
		{
			name: "a token not greater than a grant completed before the invoke",
			history: `{"t":1,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":3,"proc":"c1","type":"ok","f":"acquire","key":"k","token":7}
{"t":4,"proc":"c1","type":"invoke","f":"release","key":"k"}
{"t":5,"proc":"c1","type":"ok","f":"release","key":"k"}
{"t":6,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":7,"proc":"c2","type":"ok","f":"acquire","key":"k","token":6}`,
			want:  []string{"fencing-lock"},
			lines: [][]int{{2, 6}},
		},
		{
			name: "a lower token for a concurrent acquire is allowed",
			history: `{"t":1,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":2,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":3,"proc":"c1","type":"ok","f":"acquire","key":"k","token":7}
{"t":4,"proc":"c1","type":"invoke","f":"release","key":"k"}
{"t":5,"proc":"c1","type":"ok","f":"release","key":"k"}
{"t":7,"proc":"c2","type":"ok","f":"acquire","key":"k","token":6}`,
		},
		{
			name: "the resource accepts and rejects by token",
			history: `{"t":1,"proc":"resource","type":"info","f":"accept","key":"k","token":3,"value":1}
{"t":2,"proc":"resource","type":"info","f":"accept","key":"k","token":3,"value":2}
{"t":3,"proc":"resource","type":"info","f":"reject","key":"k","token":2,"value":3}
{"t":4,"proc":"resource","type":"info","f":"accept","key":"k","token":5,"value":3}`,
		},
		{
			name: "the resource accepts a stale token",
			history: `{"t":1,"proc":"resource","type":"info","f":"accept","key":"k","token":3,"value":1}
{"t":2,"proc":"resource","type":"info","f":"accept","key":"k","token":5,"value":2}
{"t":4,"proc":"resource","type":"info","f":"accept","key":"k","token":4,"value":3}`,
			want:  []string{"fencing-resource"},
			lines: [][]int{{2, 3}},
		},
		{
			name: "lost increment on the counter",
			history: `{"t":1,"proc":"c1","type":"invoke","f":"write","key":"k","value":1}
{"t":2,"proc":"c1","type":"ok","f":"write","key":"k","value":1}
{"t":3,"proc":"c2","type":"invoke","f":"write","key":"k","value":2}
{"t":4,"proc":"c2","type":"ok","f":"write","key":"k","value":2}
{"t":5,"proc":"c1","type":"invoke","f":"write","key":"k","value":2}
{"t":6,"proc":"c1","type":"ok","f":"write","key":"k","value":2}`,
			want:  []string{"damage"},
			lines: [][]int{{6}},
		},
		{
			name: "rejected writes do no damage",
			history: `{"t":1,"proc":"c1","type":"invoke","f":"write","key":"k","token":1,"value":1}
{"t":2,"proc":"resource","type":"info","f":"accept","key":"k","token":1,"value":1}
{"t":3,"proc":"c1","type":"ok","f":"write","key":"k","token":1,"value":1}
{"t":4,"proc":"c2","type":"invoke","f":"write","key":"k","token":2,"value":2}
{"t":5,"proc":"resource","type":"info","f":"accept","key":"k","token":2,"value":2}
{"t":6,"proc":"c2","type":"ok","f":"write","key":"k","token":2,"value":2}
{"t":7,"proc":"c1","type":"invoke","f":"write","key":"k","token":1,"value":2}
{"t":8,"proc":"resource","type":"info","f":"reject","key":"k","token":1,"value":2}
{"t":9,"proc":"c1","type":"fail","f":"write","key":"k","token":1,"value":2}`,
		},
		{
			name: "the resource's final state below the succeeded writes",
			history: `{"t":1,"proc":"c1","type":"invoke","f":"write","key":"k","value":1}
{"t":2,"proc":"resource","type":"info","f":"accept","key":"k","value":1}
{"t":3,"proc":"c1","type":"ok","f":"write","key":"k","value":1}
{"t":4,"proc":"c2","type":"invoke","f":"write","key":"k","value":2}
{"t":5,"proc":"resource","type":"info","f":"accept","key":"k","value":2}
{"t":6,"proc":"c2","type":"ok","f":"write","key":"k","value":2}
{"t":7,"proc":"c1","type":"invoke","f":"write","key":"k","value":1}
{"t":8,"proc":"resource","type":"info","f":"accept","key":"k","value":1}
{"t":9,"proc":"c1","type":"ok","f":"write","key":"k","value":1}`,
			want:  []string{"damage"},
			lines: [][]int{{8}},
		},
		{
			name: "unknown writes may explain a higher final value",
			history: `{"t":1,"proc":"c1","type":"invoke","f":"write","key":"k","value":1}
{"t":2,"proc":"c1","type":"info","f":"write","key":"k","value":1}
{"t":3,"proc":"c2","type":"invoke","f":"write","key":"k","value":2}
{"t":4,"proc":"c2","type":"ok","f":"write","key":"k","value":2}`,
		},
		{
			name: "non-integer values are not a counter",
			history: `{"t":1,"proc":"c1","type":"invoke","f":"write","key":"k","value":"x"}
{"t":2,"proc":"c1","type":"ok","f":"write","key":"k","value":"x"}
{"t":3,"proc":"c2","type":"invoke","f":"write","key":"k","value":"x"}
{"t":4,"proc":"c2","type":"ok","f":"write","key":"k","value":"x"}`,
		},
		{
			name: "unknown fields and nemesis events are ignored",
			history: `{"t":1,"proc":"nemesis","type":"info","f":"partition","value":{"target":"n1"},"extra":[1,2]}
{"t":2,"proc":"c1","type":"invoke","f":"acquire","key":"k","node":"n2"}
{"t":3,"proc":"c1","type":"ok","f":"acquire","key":"k","token":1}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := run(t, tc.history, false)
			if got := kinds(res); !slices.Equal(got, tc.want) {
				t.Fatalf("kinds = %v, want %v\nviolations: %+v", got, tc.want, res.Violations)
			}
			for i, lines := range tc.lines {
				if got := res.Violations[i].Lines; !slices.Equal(got, lines) {
					t.Errorf("violation %d lines = %v, want %v", i, got, lines)
				}
			}
		})
	}
}

func TestMutualExclusionWindow(t *testing.T) {
	res := run(t, `{"t":10,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":20,"proc":"c1","type":"ok","f":"acquire","key":"k","token":1}
{"t":25,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":30,"proc":"c2","type":"ok","f":"acquire","key":"k","token":2}
{"t":45,"proc":"c2","type":"invoke","f":"release","key":"k"}
{"t":50,"proc":"c1","type":"invoke","f":"release","key":"k"}`, false)
	if len(res.Violations) != 1 {
		t.Fatalf("want one violation, got %+v", res.Violations)
	}
	v := res.Violations[0]
	if v.From != 30 || v.To != 45 || !slices.Equal(v.Procs, []string{"c1", "c2"}) || !slices.Equal(v.Tokens, []int64{1, 2}) || v.Key != "k" {
		t.Fatalf("violation = %+v, want c1,c2 tokens 1,2 on k from 30 to 45", v)
	}
	if res.Events != 6 {
		t.Fatalf("events = %d, want 6", res.Events)
	}
}

func TestLinearizability(t *testing.T) {
	tests := []struct {
		name    string
		history string
		want    map[string]checker.LinVerdict // model → verdict
	}{
		{
			name: "a clean handover",
			history: `{"t":1,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":2,"proc":"c1","type":"ok","f":"acquire","key":"k","token":1}
{"t":3,"proc":"c1","type":"invoke","f":"write","key":"k","value":1}
{"t":4,"proc":"c1","type":"ok","f":"write","key":"k","value":1}
{"t":5,"proc":"c1","type":"invoke","f":"release","key":"k"}
{"t":6,"proc":"c1","type":"ok","f":"release","key":"k"}
{"t":7,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":8,"proc":"c2","type":"ok","f":"acquire","key":"k","token":2}
{"t":9,"proc":"c2","type":"invoke","f":"read","key":"k"}
{"t":10,"proc":"c2","type":"ok","f":"read","key":"k","value":1}`,
			want: map[string]checker.LinVerdict{checker.ModelLock: checker.LinOK, checker.ModelRegister: checker.LinOK},
		},
		{
			name: "takeover after expiry is legal, the old owner's renew after it is not",
			history: `{"t":1,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":2,"proc":"c1","type":"ok","f":"acquire","key":"k","token":1}
{"t":7,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":8,"proc":"c2","type":"ok","f":"acquire","key":"k","token":2}
{"t":9,"proc":"c1","type":"invoke","f":"renew","key":"k"}
{"t":10,"proc":"c1","type":"ok","f":"renew","key":"k"}`,
			want: map[string]checker.LinVerdict{checker.ModelLock: checker.LinIllegal},
		},
		{
			name: "takeover after the old owner's lost notice",
			history: `{"t":1,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":2,"proc":"c1","type":"ok","f":"acquire","key":"k","token":1}
{"t":5,"proc":"c1","type":"info","f":"lost","key":"k"}
{"t":7,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":8,"proc":"c2","type":"ok","f":"acquire","key":"k","token":2}
{"t":9,"proc":"c2","type":"invoke","f":"release","key":"k"}
{"t":10,"proc":"c2","type":"ok","f":"release","key":"k"}`,
			want: map[string]checker.LinVerdict{checker.ModelLock: checker.LinOK},
		},
		{
			name: "an unknown acquire may or may not have happened",
			history: `{"t":1,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":2,"proc":"c1","type":"info","f":"acquire","key":"k"}
{"t":3,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":4,"proc":"c2","type":"ok","f":"acquire","key":"k","token":2}
{"t":5,"proc":"c2","type":"invoke","f":"release","key":"k"}
{"t":6,"proc":"c2","type":"ok","f":"release","key":"k"}`,
			want: map[string]checker.LinVerdict{checker.ModelLock: checker.LinOK},
		},
		{
			name: "a stale read",
			history: `{"t":1,"proc":"c1","type":"invoke","f":"write","key":"k","value":1}
{"t":2,"proc":"c1","type":"ok","f":"write","key":"k","value":1}
{"t":3,"proc":"c2","type":"invoke","f":"write","key":"k","value":2}
{"t":4,"proc":"c2","type":"ok","f":"write","key":"k","value":2}
{"t":5,"proc":"c1","type":"invoke","f":"read","key":"k"}
{"t":6,"proc":"c1","type":"ok","f":"read","key":"k","value":1}`,
			want: map[string]checker.LinVerdict{checker.ModelRegister: checker.LinIllegal},
		},
		{
			name: "an unknown write explains a read",
			history: `{"t":1,"proc":"c1","type":"invoke","f":"write","key":"k","value":1}
{"t":2,"proc":"c1","type":"info","f":"write","key":"k","value":1}
{"t":5,"proc":"c2","type":"invoke","f":"read","key":"k"}
{"t":6,"proc":"c2","type":"ok","f":"read","key":"k","value":1}`,
			want: map[string]checker.LinVerdict{checker.ModelRegister: checker.LinOK},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := run(t, tc.history, true)
			got := map[string]checker.LinVerdict{}
			for _, l := range res.Linearizability {
				got[l.Model] = l.Result
			}
			for model, want := range tc.want {
				if got[model] != want {
					t.Errorf("%s: %q, want %q (all: %+v)", model, got[model], want, res.Linearizability)
				}
			}
			if ok := res.OK(); ok != (len(res.Violations) == 0 && !contains(got, checker.LinIllegal)) {
				t.Errorf("OK() = %v inconsistent with %+v", ok, res)
			}
		})
	}
}

func contains(m map[string]checker.LinVerdict, v checker.LinVerdict) bool {
	for _, x := range m {
		if x == v {
			return true
		}
	}
	return false
}

// A visualization is written for a non-linearizable key.
func TestLinearizabilityHTML(t *testing.T) {
	dir := t.TempDir()
	r := history.NewReader(strings.NewReader(`{"t":1,"proc":"c1","type":"invoke","f":"write","key":"a/b","value":1}
{"t":2,"proc":"c1","type":"ok","f":"write","key":"a/b","value":1}
{"t":3,"proc":"c1","type":"invoke","f":"read","key":"a/b"}
{"t":4,"proc":"c1","type":"ok","f":"read","key":"a/b","value":2}`), "h")
	res, err := checker.Check(r, checker.Options{Linearizability: true, HTMLDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Linearizability) != 1 || res.Linearizability[0].Result != checker.LinIllegal {
		t.Fatalf("want one illegal result, got %+v", res.Linearizability)
	}
	path := res.Linearizability[0].HTML
	if filepath.Dir(path) != dir {
		t.Fatalf("html %q not in %q", path, dir)
	}
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), "<html") {
		t.Fatalf("visualization missing or not HTML: %v", err)
	}
}

// A budget too short to decide is reported as unknown, never as ok.
func TestLinearizabilityUnknownIsNotOK(t *testing.T) {
	var b strings.Builder
	// 40 writes of distinct values, all at once: which of them came before
	// each one's return matters to what may follow, 2^39 configurations at
	// the first return. Then reads that see only the last.
	for i := 0; i < 40; i++ {
		b.WriteString(`{"t":` + strconv.Itoa(i) + `,"proc":"c` + strconv.Itoa(i) + `","type":"invoke","f":"write","key":"k","value":` + strconv.Itoa(i) + "}\n")
	}
	for i := 0; i < 40; i++ {
		b.WriteString(`{"t":` + strconv.Itoa(1000+i) + `,"proc":"c` + strconv.Itoa(i) + `","type":"ok","f":"write","key":"k"}` + "\n")
	}
	for i := 0; i < 5; i++ {
		b.WriteString(`{"t":` + strconv.Itoa(2000+2*i) + `,"proc":"r","type":"invoke","f":"read","key":"k"}` + "\n")
		b.WriteString(`{"t":` + strconv.Itoa(2001+2*i) + `,"proc":"r","type":"ok","f":"read","key":"k","value":39}` + "\n")
	}
	for _, timeout := range []time.Duration{1, 50 * time.Millisecond} {
		r := history.NewReader(strings.NewReader(b.String()), "h")
		res, err := checker.Check(r, checker.Options{Linearizability: true, LinTimeout: timeout})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Linearizability) != 1 {
			t.Fatalf("want one result, got %+v", res.Linearizability)
		}
		if got := res.Linearizability[0].Result; got != checker.LinUnknown {
			t.Fatalf("budget %v: %q; want unknown", timeout, got)
		}
		if res.OK() {
			t.Fatal("OK() true with an undecided linearizability check")
		}
	}
}

// Many unknown writes at once, then reads that each need one of them to
// have taken effect just before: decided, and linearizable.
func TestLinearizabilityManyUnknownWrites(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 100; i++ {
		b.WriteString(`{"t":` + strconv.Itoa(i) + `,"proc":"c` + strconv.Itoa(i) + `","type":"invoke","f":"write","key":"k","value":` + strconv.Itoa(i) + "}\n")
	}
	for i := 0; i < 100; i++ {
		b.WriteString(`{"t":` + strconv.Itoa(500+i) + `,"proc":"c` + strconv.Itoa(i) + `","type":"info","f":"write","key":"k","value":` + strconv.Itoa(i) + "}\n")
	}
	for i := 0; i < 100; i++ {
		b.WriteString(`{"t":` + strconv.Itoa(1000+2*i) + `,"proc":"r` + strconv.Itoa(i) + `","type":"invoke","f":"read","key":"k"}` + "\n")
		b.WriteString(`{"t":` + strconv.Itoa(1001+2*i) + `,"proc":"r` + strconv.Itoa(i) + `","type":"ok","f":"read","key":"k","value":` + strconv.Itoa((i*7919)%100) + "}\n")
	}
	for _, tail := range []struct {
		value string
		want  checker.LinVerdict
	}{{"", checker.LinOK}, {"7", checker.LinIllegal}} {
		h := b.String()
		if tail.value != "" {
			// One more read of a value whose write was used already.
			h += `{"t":5000,"proc":"z","type":"invoke","f":"read","key":"k"}` + "\n" +
				`{"t":5001,"proc":"z","type":"ok","f":"read","key":"k","value":` + tail.value + "}\n"
		}
		res, err := checker.Check(history.NewReader(strings.NewReader(h), "h"), checker.Options{Linearizability: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Linearizability) != 1 || res.Linearizability[0].Result != tail.want {
			t.Fatalf("want %s, got %+v", tail.want, res.Linearizability)
		}
	}
}

// The counter starts where the first read before any write found it.
func TestDamageInitialValueFromFirstRead(t *testing.T) {
	res := run(t, `{"t":1,"proc":"c1","type":"invoke","f":"read","key":"k"}
{"t":2,"proc":"c1","type":"ok","f":"read","key":"k","value":40}
{"t":3,"proc":"c1","type":"invoke","f":"write","key":"k","value":41}
{"t":4,"proc":"c1","type":"ok","f":"write","key":"k","value":41}
{"t":5,"proc":"c2","type":"invoke","f":"read","key":"k"}
{"t":6,"proc":"c2","type":"ok","f":"read","key":"k","value":41}
{"t":7,"proc":"c3","type":"invoke","f":"read","key":"k"}
{"t":8,"proc":"c3","type":"ok","f":"read","key":"k","value":41}
{"t":9,"proc":"c2","type":"invoke","f":"write","key":"k","value":42}
{"t":10,"proc":"c2","type":"ok","f":"write","key":"k","value":42}
{"t":11,"proc":"c3","type":"invoke","f":"write","key":"k","value":42}
{"t":12,"proc":"c3","type":"ok","f":"write","key":"k","value":42}`, true)
	if got := kinds(res); !slices.Equal(got, []string{"damage"}) {
		t.Fatalf("kinds = %v, want [damage]: %+v", got, res.Violations)
	}
	if v := res.Violations[0]; !strings.Contains(v.Detail, "from 40 to 42") || !strings.Contains(v.Detail, "1 lost") {
		t.Fatalf("detail = %q", v.Detail)
	}
}

// The distinct list (seed 004): the final read must hold every
// acknowledged insert once, and nothing never inserted.
func TestListDamage(t *testing.T) {
	const inserts = `{"t":1,"proc":"c1","type":"invoke","f":"insert","key":"s","value":"a"}
{"t":2,"proc":"c1","type":"ok","f":"insert","key":"s","value":"a"}
{"t":3,"proc":"c2","type":"invoke","f":"insert","key":"s","value":"b"}
{"t":4,"proc":"c2","type":"ok","f":"insert","key":"s","value":"b"}
{"t":5,"proc":"c1","type":"invoke","f":"insert","key":"s","value":"b"}
{"t":6,"proc":"c1","type":"fail","f":"insert","key":"s","value":"b"}
{"t":7,"proc":"c2","type":"invoke","f":"insert","key":"s","value":"c"}
{"t":8,"proc":"c2","type":"info","f":"insert","key":"s","value":"c"}
{"t":9,"proc":"reader","type":"invoke","f":"read","key":"s"}
`
	tests := []struct {
		read   string
		damage bool
		detail string
	}{
		{`["a","b"]`, false, ""},
		{`["b","a","c"]`, false, ""}, // the unknown insert happened
		{`["a"]`, true, "1 acknowledged inserts missing [b]"},
		{`["a","b","b"]`, true, "1 items listed twice [b]"},
		{`["a","b","z"]`, true, "1 never inserted [z]"},
	}
	for _, tc := range tests {
		res := run(t, inserts+`{"t":10,"proc":"reader","type":"ok","f":"read","key":"s","value":`+tc.read+"}\n", false)
		got := kinds(res)
		if tc.damage != slices.Equal(got, []string{"damage"}) || (!tc.damage && len(got) != 0) {
			t.Fatalf("read %s: kinds %v", tc.read, got)
		}
		if tc.damage && !strings.Contains(res.Violations[0].Detail, tc.detail) {
			t.Fatalf("read %s: detail %q, want %q", tc.read, res.Violations[0].Detail, tc.detail)
		}
	}
}
