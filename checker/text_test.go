package checker_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/locksim/locksim/checker"
)

// A history with no event is listed in Summary.Empty and the verdict line
// says EMPTY, not OK: nothing was recorded, so nothing is shown safe. The
// JSON keeps its fields and gains "empty" only then.
func TestSummaryEmpty(t *testing.T) {
	text := func(s checker.Summary) string {
		var b strings.Builder
		if err := s.WriteText(&b); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	one := checker.Summarize([]string{"a.jsonl"}, []checker.Result{{}})
	if !one.OK || len(one.Empty) != 1 || one.Empty[0] != "a.jsonl" {
		t.Fatalf("one empty history: %+v", one)
	}
	if got := text(one); got != "EMPTY: a.jsonl holds no event: nothing was recorded, so nothing is shown safe\n" {
		t.Errorf("one empty history: %q", got)
	}
	data, _ := json.Marshal(one)
	if !strings.HasPrefix(string(data), `{"ok":true,"events":0,"violations":[]`) || !strings.Contains(string(data), `"empty":["a.jsonl"]`) {
		t.Errorf("JSON %s", data)
	}

	mixed := checker.Summarize([]string{"a.jsonl", "b.jsonl", "c.jsonl"}, []checker.Result{{Events: 3}, {}, {}})
	if len(mixed.Empty) != 2 || mixed.Empty[0] != "b.jsonl" || mixed.Empty[1] != "c.jsonl" {
		t.Fatalf("mixed: %+v", mixed)
	}
	if got := text(mixed); !strings.HasPrefix(got, "EMPTY: no violation in 3 events, but 2 histories (b.jsonl, c.jsonl) hold no event") {
		t.Errorf("mixed: %q", got)
	}

	full := checker.Summarize([]string{"a.jsonl"}, []checker.Result{{Events: 3}})
	data, _ = json.Marshal(full)
	if full.Empty != nil || strings.Contains(string(data), "empty") || text(full) != "OK: no violation in 3 events\n" {
		t.Errorf("a history with events: %+v %s %q", full, data, text(full))
	}

	// A violation elsewhere is the verdict: FAIL, whatever else is empty.
	bad := checker.Summarize([]string{"a.jsonl", "b.jsonl"}, []checker.Result{
		{Events: 4, Violations: []checker.Violation{{Kind: checker.MutualExclusion, Key: "k"}}}, {}})
	if bad.OK || len(bad.Empty) != 1 || !strings.Contains(text(bad), "FAIL: 1 violation in 4 events") {
		t.Errorf("violation and empty: %+v %q", bad, text(bad))
	}
}
