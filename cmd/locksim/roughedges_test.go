package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Rough edges a new user ran into, each refused with exit status 2 and
// one line on stderr naming the file, the line and the field (or the
// flag): values that make no sense, and checks across two fields, which
// name the line of the field they blame.
func TestRoughEdgesBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Lines 1-4; what follows starts at line 5.
	scen := func(name, body string) string {
		return write(name, "name: x\nbackends: [etcd]\nclients: 2\nduration: 10s\n"+body)
	}
	drift := scen("drift.yaml", "faults:\n  - at: 1s\n    fault: clock-drift\n    target: c1\n    drift: -1.5\n")
	stopped := scen("stopped.yaml", "faults:\n  - at: 1s\n    fault: clock-drift\n    target: c1\n    drift: -1\n")
	hold := scen("hold.yaml", "workload:\n  kind: counter\n  hold_min: 2s\n  hold_max: 1s\n")
	renew := scen("renew.yaml", "lock:\n  ttl: 1s\n  poll: 100ms\n  renew_every: 1s\n")
	late := scen("late.yaml", "faults:\n  - fault: pause\n    target: holder\n    at: 20s\n")
	long := write("long.yaml", "name: x\nbackends: [etcd]\nclients: 2\nduration: 100000h\n")
	ttl := scen("ttl.yaml", "lock:\n  ttl: 1ns\n")
	wait := scen("wait.yaml", "lock:\n  wait_timeout: 10us\n")
	noDrift := scen("nodrift.yaml", "faults:\n  - at: 1s\n    fault: clock-drift\n    target: c1\n")
	pauseDrift := scen("pausedrift.yaml", "faults:\n  - at: 1s\n    fault: pause\n    target: holder\n    drift: 0.5\n")
	list := write("list.yaml", "name: x\nbackends:\n  - memcache\n  - etcd\nclients: 2\nduration: 10s\nworkload:\n  kind: list\n")
	good := scenarios + "control.yaml" // backends on line 5

	tests := []badInput{
		{[]string{"sim", drift}, []string{"drift.yaml:9:", `"faults[0].drift"`, "backwards"}},
		{[]string{"run", drift}, []string{"drift.yaml:9:", `"faults[0].drift"`, "backwards"}},
		{[]string{"sim", stopped}, []string{"stopped.yaml:9:", `"faults[0].drift"`, "above -1"}},
		{[]string{"sim", hold}, []string{"hold.yaml:8:", `"workload.hold_max"`, "hold_min"}},
		{[]string{"run", renew}, []string{"renew.yaml:8:", `"lock.renew_every"`, "lock.ttl"}},
		{[]string{"sim", late}, []string{"late.yaml:8:", `"faults[0].at"`, "not before the end"}},
		{[]string{"sim", long}, []string{"long.yaml:4:", `"duration"`, "24h"}},
		{[]string{"run", long}, []string{"long.yaml:4:", `"duration"`, "24h"}},
		{[]string{"sim", ttl}, []string{"ttl.yaml:6:", `"lock.ttl"`, "1ms"}},
		{[]string{"sim", wait}, []string{"wait.yaml:6:", `"lock.wait_timeout"`, "1ms"}},
		{[]string{"sim", noDrift}, []string{"nodrift.yaml:6:", `"faults[0].drift"`, "missing"}},
		{[]string{"sim", pauseDrift}, []string{"pausedrift.yaml:9:", `"faults[0].drift"`, "takes no drift"}},
		{[]string{"run", list}, []string{"list.yaml:4:", `"backends[1]"`, "memcache only"}},
		{[]string{"run", "--backend", "memcache", write("etcdonly.yaml", "name: x\nclients: 2\nbackends: [etcd]\nduration: 10s\n")}, []string{"etcdonly.yaml:3:", `"backends"`, "memcache", "lists etcd"}},
		{[]string{"run", "--backend", "zookeeper", good}, []string{"control.yaml:5:", `"backends"`}},
		{[]string{"check", "--lin-timeout", "0", histories + "clean.jsonl"}, []string{"--lin-timeout", "positive"}},
		{[]string{"check", "--lin-timeout", "-1s", histories + "clean.jsonl"}, []string{"--lin-timeout", "positive"}},
		{[]string{"check", good}, []string{"control.yaml:1", "a scenario file?", "locksim sim"}},
		// The backend is named once, not twice.
		{[]string{"sim", scen("nonode.yaml", "faults:\n  - at: 1s\n    fault: pause\n    target: c9\n")}, []string{"nonode.yaml:8:", `"faults[0].target"`, `backend etcd: no node "c9" (nodes:`}},
		// The name is a directory under --out: no way out of it.
		{[]string{"run", "--out", filepath.Join(dir, "runs"), write("escape.yaml", "name: ../../escape\nbackends: [etcd]\nclients: 2\nduration: 1s\n")}, []string{"escape.yaml:1:", `"name"`, "not a name"}},
		{[]string{"sim", write("twice.yaml", "name: x\nbackends: [etcd, memcache, etcd]\nclients: 2\nduration: 1s\n")}, []string{"twice.yaml:2:", `"backends[2]"`, "twice"}},
		{[]string{"sim", write("zero.yaml", "name: x\nbackends: [etcd]\nclients: 2\nduration: 0s\n")}, []string{"zero.yaml:4:", `"duration"`, "above 0"}},
		{[]string{"help", "nope"}, nil},
	}
	checkBadInputs(t, tests)
}

// A history or a simulated seed that recorded no event is not "OK": check
// and sim say EMPTY, warn on stderr in one line and exit 3 (unless
// something else violated: 1); check --json keeps its fields and adds
// "empty"; the help of check, run and sim says so (run:
// TestRunEmptyHistoryFlagged).
func TestEmptyHistoryFlagged(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.jsonl")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	oneLineWarning := func(args []string, stderr string) {
		t.Helper()
		if strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, "warning:") || !strings.Contains(stderr, "no event") {
			t.Errorf("locksim %s: want one warning line on stderr, got %q", short(args), stderr)
		}
	}

	args := []string{"check", empty}
	code, stdout, stderr := runCLI(args...)
	if code != exitEmpty || !strings.HasPrefix(stdout, "EMPTY: ") || strings.Contains(stdout, "OK") {
		t.Errorf("check of an empty history: exit %d, stdout %q", code, stdout)
	}
	oneLineWarning(args, stderr)

	code, stdout, _ = runCLI("check", "--json", empty)
	var sum struct {
		OK         *bool      `json:"ok"`
		Events     *int       `json:"events"`
		Violations []struct{} `json:"violations"`
		Empty      []string   `json:"empty"`
	}
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil || code != exitEmpty || sum.OK == nil || !*sum.OK ||
		sum.Events == nil || *sum.Events != 0 || sum.Violations == nil || len(sum.Empty) != 1 || sum.Empty[0] != empty {
		t.Errorf("check --json of an empty history: exit %d, %s (%v)", code, stdout, err)
	}
	code, stdout, _ = runCLI("check", "--json", histories+"clean.jsonl")
	if code != exitOK || strings.Contains(stdout, `"empty"`) {
		t.Errorf("check --json of a clean history: exit %d, %s", code, stdout)
	}
	if code, _, _ := runCLI("check", empty, histories+"example-overlap.jsonl"); code != exitViolations {
		t.Errorf("an empty history beside a violating one: exit %d, want %d", code, exitViolations)
	}
	if code, stdout, _ := runCLI("check", empty, histories+"clean.jsonl"); code != exitEmpty || !strings.Contains(stdout, "EMPTY: no violation in 14 events, but "+empty+" holds no event") {
		t.Errorf("an empty history beside a clean one: exit %d, %q", code, stdout)
	}
	runDir := filepath.Join(dir, "rundir")
	if err := os.MkdirAll(filepath.Join(runDir, "procs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(runDir, "procs", "c1.jsonl"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := runCLI("check", runDir); code != exitEmpty {
		t.Errorf("a run directory with empty procs: exit %d, want %d", code, exitEmpty)
	}

	// A scenario that ends before a client starts (each starts after a
	// seed-chosen delay of up to 1 s): every seed is empty.
	tiny := filepath.Join(dir, "tiny.yaml")
	if err := os.WriteFile(tiny, []byte("name: tiny\nbackends: [etcd]\nclients: 2\nduration: 1ms\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args = []string{"sim", tiny, "--seeds", "3"}
	code, stdout, stderr = runCLI(args...)
	if code != exitEmpty || !strings.Contains(stderr, "3 of 3 seeds of tiny on etcd (the first: seed 1) hold no event") {
		t.Errorf("sim of a scenario too short: exit %d, stdout %q stderr %q", code, stdout, stderr)
	}
	oneLineWarning(args, stderr)
	out := filepath.Join(dir, "out")
	code, _, stderr = runCLI("sim", tiny, "--seed", "2", "--out", out)
	data, err := os.ReadFile(filepath.Join(out, "tiny", "etcd", "seed-2.json"))
	if code != exitEmpty || err != nil || !strings.Contains(string(data), `"empty":[`) || !strings.Contains(stderr, "seed 2 of tiny on etcd holds no event") {
		t.Errorf("sim --seed of a scenario too short: exit %d, stderr %q, verdict %s (%v)", code, stderr, data, err)
	}
	// Long enough: no seed is empty.
	if code, _, stderr := runCLI("sim", scenarios+"control.yaml", "--backend", "etcd", "--seeds", "3"); code != exitOK || stderr != "" {
		t.Errorf("sim of control: exit %d, stderr %q", code, stderr)
	}

	for _, cmd := range []string{"check", "run", "sim"} {
		code, _, stderr := runCLI(cmd, "-h")
		if code != exitOK || !strings.Contains(stderr, "3 no violation but") {
			t.Errorf("locksim %s -h: exit %d, does not document exit status 3:\n%s", cmd, code, stderr)
		}
		code, _, stderr2 := runCLI("help", cmd)
		if code != exitOK || stderr2 != stderr {
			t.Errorf("locksim help %s: exit %d, not the command's own help:\n%s", cmd, code, stderr2)
		}
	}
}

// Ctrl-C (or SIGTERM) stops locksim sim within a seed: a scenario of the
// longest duration allowed takes tens of seconds a seed, yet the process
// reports and exits 130 at once, a single seed (--seed) or a sweep.
func TestSimInterruptedLongSeed(t *testing.T) {
	for _, args := range [][]string{{"--seed", "1"}, {"--seeds", "4", "--parallel", "2"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			sb := newSandbox(t)
			scen := filepath.Join(sb.work, "long.yaml")
			if err := os.WriteFile(scen, []byte("name: long\nbackends: [etcd]\nclients: 3\nduration: 24h\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			sb.start(t, append([]string{"sim", scen, "--no-progress"}, args...)...)
			time.Sleep(time.Second)
			sb.signal(t, syscall.SIGINT)
			start := time.Now()
			if code := sb.wait(t, 10*time.Second); code != exitInterrupted {
				t.Fatalf("exit %d, want %d\nstderr: %s", code, exitInterrupted, sb.stderr.String())
			}
			if !strings.Contains(sb.stderr.String(), "interrupted after 0 seeds of long on etcd") || !strings.Contains(sb.stdout.String(), "long on etcd: 0 seeds") {
				t.Fatalf("stdout %q stderr %q", sb.stdout.String(), sb.stderr.String())
			}
			t.Logf("exited %v after the signal", time.Since(start).Round(time.Millisecond))
			sb.noLeftovers(t)
		})
	}
}

// locksim run flags a run that recorded nothing as check does: on a real
// server (a one-member etcd it starts), a scenario of 1 ms ends about when
// the clients start, so a run records no event or a few. Whichever it is,
// the exit status and the warning agree with the history: 3 and a
// warning when it is empty, else 0 and none.
func TestRunEmptyHistoryFlagged(t *testing.T) {
	sb := newSandbox(t)
	tiny := filepath.Join(sb.work, "tiny.yaml")
	if err := os.WriteFile(tiny, []byte("name: tiny\nbackends: [etcd]\nclients: 2\nduration: 1ms\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sawEmpty := false
	for seed := 1; seed <= 3; seed++ {
		sb.stdout.Reset()
		sb.stderr.Reset()
		out := filepath.Join(sb.work, fmt.Sprintf("runs-%d", seed))
		sb.start(t, "run", "--backend", "etcd", "--seed", fmt.Sprint(seed), "--out", out, tiny)
		code := sb.wait(t, 60*time.Second)
		n := checkEvents(t, filepath.Join(out, "tiny", "etcd", "history.jsonl"))
		warned := strings.Contains(sb.stderr.String(), "locksim run: warning: the run of tiny on etcd holds no event")
		data, _ := os.ReadFile(filepath.Join(out, "tiny", "etcd", "verdict.json"))
		listed := strings.Contains(string(data), `"empty": [`)
		t.Logf("seed %d: %d events, exit %d", seed, n, code)
		switch {
		case n == 0 && (code != exitEmpty || !warned || !listed || !strings.Contains(sb.stdout.String(), "EMPTY: ")):
			t.Errorf("seed %d: no event, yet exit %d, warned %v, verdict %s, stdout %q", seed, code, warned, data, sb.stdout.String())
		case n > 0 && (code != exitOK || warned || listed):
			t.Errorf("seed %d: %d events, yet exit %d, warned %v, verdict %s", seed, n, code, warned, data)
		}
		sawEmpty = sawEmpty || n == 0
	}
	t.Logf("an empty run among them: %v", sawEmpty)
	sb.noLeftovers(t)
}
