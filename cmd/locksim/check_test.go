package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

const histories = "../../testdata/histories/"

func TestCheckExitStatus(t *testing.T) {
	tests := []struct {
		args []string
		code int
	}{
		{[]string{"check", histories + "clean.jsonl"}, exitOK},
		{[]string{"check", histories + "example-overlap.jsonl"}, exitViolations},
		{[]string{"check", histories + "clean.jsonl", histories + "example-overlap.jsonl"}, exitViolations},
		{[]string{"check", histories + "bad-token.jsonl"}, exitUsage},
		{[]string{"check", histories + "missing.jsonl"}, exitUsage},
		{[]string{"check"}, exitUsage},
		{[]string{"check", "--nope", histories + "clean.jsonl"}, exitUsage},
		{[]string{"nope"}, exitUsage},
	}
	for _, tc := range tests {
		code, _, stderr := runCLI(tc.args...)
		if code != tc.code {
			t.Errorf("locksim %v: exit %d, want %d (stderr %q)", tc.args, code, tc.code, stderr)
		}
		if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
			t.Errorf("locksim %v: stack trace on stderr: %s", tc.args, stderr)
		}
	}
}

func TestCheckBadInputNamesFileLineField(t *testing.T) {
	code, stdout, stderr := runCLI("check", "--json", histories+"bad-token.jsonl")
	if code != exitUsage || stdout != "" {
		t.Fatalf("exit %d, stdout %q", code, stdout)
	}
	want := `bad-token.jsonl:2: field "token": want integer`
	if !strings.Contains(stderr, want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Fatalf("stderr %q, want one line containing %q", stderr, want)
	}
}

func TestCheckJSON(t *testing.T) {
	code, stdout, _ := runCLI("check", "--json", histories+"example-overlap.jsonl")
	if code != exitViolations {
		t.Fatalf("exit %d", code)
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	var got struct {
		OK         *bool `json:"ok"`
		Events     *int  `json:"events"`
		Violations []struct {
			Kind   string   `json:"kind"`
			Key    string   `json:"key"`
			Procs  []string `json:"procs"`
			Tokens []int64  `json:"tokens"`
			From   *int64   `json:"from"`
			To     *int64   `json:"to"`
			Lines  []int    `json:"lines"`
		} `json:"violations"`
	}
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
	}
	if dec.More() {
		t.Fatalf("more than one JSON value on stdout: %s", stdout)
	}
	if got.OK == nil || *got.OK || got.Events == nil || *got.Events != 19 || len(got.Violations) != 1 {
		t.Fatalf("got %+v", got)
	}
	v := got.Violations[0]
	if v.Kind != "mutual-exclusion" || v.Key != "widgets" || strings.Join(v.Procs, ",") != "c1,c2" ||
		len(v.Tokens) != 2 || v.Tokens[0] != 7 || v.Tokens[1] != 8 || *v.From != 4700000000 || *v.To != 5100000000 {
		t.Fatalf("violation %+v", v)
	}

	code, stdout, _ = runCLI("check", "--json", histories+"clean.jsonl")
	if code != exitOK || !strings.HasPrefix(stdout, `{"ok":true,"events":14,"violations":[]`) {
		t.Fatalf("clean: exit %d, %s", code, stdout)
	}
}

func TestCheckHTML(t *testing.T) {
	dir := t.TempDir()
	h := filepath.Join(dir, "h.jsonl")
	// c1's renew succeeds after c2 took the lock: not linearizable.
	err := os.WriteFile(h, []byte(`{"t":1,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":2,"proc":"c1","type":"ok","f":"acquire","key":"k","token":1}
{"t":3,"proc":"c1","type":"info","f":"lost","key":"k"}
{"t":7,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":8,"proc":"c2","type":"ok","f":"acquire","key":"k","token":2}
{"t":9,"proc":"c1","type":"invoke","f":"renew","key":"k"}
{"t":10,"proc":"c1","type":"ok","f":"renew","key":"k"}
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "html")
	code, stdout, _ := runCLI("check", h, "--html", out)
	if code != exitViolations || !strings.Contains(stdout, "linearizability key=\"k\" model=lock: illegal") {
		t.Fatalf("exit %d: %s", code, stdout)
	}
	if _, err := os.Stat(filepath.Join(out, "lock-k.html")); err != nil {
		t.Fatalf("no visualization: %v", err)
	}
}

// Liveness figures come beside the verdict: a line per key in the text,
// labelled as liveness, before the verdict line; the field "liveness" in
// --json; the exit status is the verdict's alone.
func TestCheckLiveness(t *testing.T) {
	code, stdout, _ := runCLI("check", histories+"clean.jsonl")
	want := `liveness (not a violation) key="widgets": held 99.9% of 600ms, longest idle wait 400µs (t=1.9s..1.9004s, c2)` + "\n"
	if code != exitOK || !strings.HasPrefix(stdout, want) || !strings.HasSuffix(stdout, "\nOK: no violation in 14 events, 2 linearizability checks ok\n") {
		t.Errorf("clean: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = runCLI("check", "--json", histories+"clean.jsonl", histories+"example-overlap.jsonl")
	var got struct {
		Liveness []struct {
			File      string  `json:"file"`
			Key       string  `json:"key"`
			HeldShare float64 `json:"held_share"`
			Idle      int64   `json:"longest_idle_wait_ns"`
			From, To  int64
			Procs     []string `json:"procs"`
		} `json:"liveness"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
	}
	if code != exitViolations || len(got.Liveness) != 2 {
		t.Fatalf("exit %d, liveness %+v", code, got.Liveness)
	}
	l := got.Liveness[0]
	if !strings.HasSuffix(l.File, "clean.jsonl") || l.Key != "widgets" || l.Idle != 400_000 || l.From != 1_900_000_000 || l.To != 1_900_400_000 ||
		strings.Join(l.Procs, ",") != "c2" || l.HeldShare < 0.998 || l.HeldShare > 0.999 {
		t.Errorf("clean.jsonl's liveness %+v", l)
	}
	if !strings.HasSuffix(got.Liveness[1].File, "example-overlap.jsonl") {
		t.Errorf("second liveness %+v, want example-overlap.jsonl's", got.Liveness[1])
	}
}
