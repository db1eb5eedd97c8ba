package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/locksim/locksim/checker"
	"github.com/locksim/locksim/scenario"
)

const scenarios = "../../scenarios/"

func TestSimExitStatus(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("name: bad\nbackends: [etcd]\nclients: 2\nduration: 1s\nfaults:\n  - at: 0s\n    fault: pause\n    target: memcached2\n"), 0o644)
	worse := filepath.Join(dir, "worse.yaml")
	os.WriteFile(worse, []byte("name: worse\nbackends: [etcd]\nclients: two\nduration: 1s\n"), 0o644)
	tests := []struct {
		args []string
		code int
		err  string // in stderr, one line
	}{
		{[]string{"sim", scenarios + "control.yaml", "--seeds", "4", "--no-progress"}, exitOK, ""},
		{[]string{"sim", scenarios + "holder-paused-past-lease.yaml", "--backend", "etcd", "--seeds", "4"}, exitViolations, ""},
		{[]string{"sim", bad, "--seed", "1"}, exitUsage, `bad.yaml:8: field "faults[0].target": backend etcd: no node "memcached2"`},
		{[]string{"sim", worse}, exitUsage, `worse.yaml:3: field "clients": want an integer`},
		{[]string{"sim", filepath.Join(dir, "missing.yaml")}, exitUsage, "missing.yaml"},
		{[]string{"sim", scenarios + "control.yaml", "--seed", "1", "--seeds", "2"}, exitUsage, "exclude"},
		{[]string{"sim", scenarios + "control.yaml", "--backend", "zookeeper"}, exitUsage, "zookeeper"},
		{[]string{"sim"}, exitUsage, ""},
	}
	for _, tc := range tests {
		code, _, stderr := runCLI(tc.args...)
		if code != tc.code {
			t.Errorf("locksim %v: exit %d, want %d (stderr %q)", tc.args, code, tc.code, stderr)
		}
		if tc.err != "" && (!strings.Contains(stderr, tc.err) || strings.Count(strings.TrimSpace(stderr), "\n") != 0) {
			t.Errorf("locksim %v: stderr %q, want one line containing %q", tc.args, stderr, tc.err)
		}
		if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
			t.Errorf("locksim %v: stack trace on stderr: %s", tc.args, stderr)
		}
	}
}

// A violating seed is reported with the command that replays it, and that
// command gives the same verdict; --out holds the history and the verdict
// in locksim check --json's shape, which check agrees with.
func TestSimReplayAndOut(t *testing.T) {
	dir := t.TempDir()
	code, stdout, _ := runCLI("sim", scenarios+"holder-paused-past-lease-unfenced.yaml", "--backend", "postgres", "--seeds", "6", "--parallel", "2", "--out", dir)
	if code != exitViolations {
		t.Fatalf("exit %d\n%s", code, stdout)
	}
	i := strings.Index(stdout, "replay: locksim ")
	if i < 0 {
		t.Fatalf("no replay command in\n%s", stdout)
	}
	line := strings.TrimSpace(stdout[i+len("replay: locksim "):])
	line = strings.SplitN(line, "\n", 2)[0]
	args := strings.Fields(line)
	seed := args[len(args)-1]
	code2, stdout2, _ := runCLI(args...)
	if code2 != exitViolations || !strings.Contains(stdout2, "seed "+seed+": ") {
		t.Fatalf("replay %v: exit %d\n%s", args, code2, stdout2)
	}
	first := strings.SplitN(stdout[strings.Index(stdout, "seed "+seed+": "):], "\n", 2)[0]
	if !strings.Contains(stdout2, first) {
		t.Errorf("replay verdict differs:\n%s\nvs\n%s", first, stdout2)
	}
	base := filepath.Join(dir, "holder-paused-past-lease-unfenced", "postgres", "seed-"+seed)
	data, err := os.ReadFile(base + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var sum checker.Summary
	if err := json.Unmarshal(data, &sum); err != nil || sum.OK || len(sum.Violations) == 0 {
		t.Fatalf("verdict %s: %v", data, err)
	}
	code3, stdout3, _ := runCLI("check", "--json", "--linearizability=false", base+".jsonl")
	var again checker.Summary
	if err := json.Unmarshal([]byte(stdout3), &again); err != nil || code3 != exitViolations || len(again.Violations) != len(sum.Violations) {
		t.Fatalf("check on the written history: exit %d, %d violations, want %d (%v)", code3, len(again.Violations), len(sum.Violations), err)
	}
	// The seed's verdict has the liveness figures check finds again.
	if len(sum.Liveness) != 1 || !reflect.DeepEqual(sum.Liveness, again.Liveness) || sum.Liveness[0].SpanNs <= 0 {
		t.Errorf("liveness in %s.json %+v, check --json %+v", base, sum.Liveness, again.Liveness)
	}
}

func TestSimShrink(t *testing.T) {
	dir := t.TempDir()
	code, stdout, stderr := runCLI("sim", scenarios+"holder-paused-past-lease.yaml", "--backend", "etcd", "--seed", "2", "--shrink", "--out", dir)
	if code != exitViolations {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*-shrunk-etcd-seed2.yaml"))
	if len(files) != 1 {
		t.Fatalf("shrunk scenario files %v\n%s", files, stdout)
	}
	s, err := scenario.Load(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if s.Clients != 2 || len(s.Faults) != 1 {
		t.Errorf("shrunk to %d clients, %d faults", s.Clients, len(s.Faults))
	}
	if code, out, _ := runCLI("sim", files[0], "--seed", "2"); code != exitViolations {
		t.Errorf("shrunk scenario replays clean: %s", out)
	}
}
