package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/locksim/locksim/checker"
	"github.com/locksim/locksim/report"
)

// A simulator comparison writes the report, records a baseline, passes
// against it, and fails naming the cells whose verdict differs; locksim
// report renders the same pages again from the saved run.
func TestCompareSimBaseline(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "reports")
	base := filepath.Join(dir, "baseline.json")
	scens := scenarios + "control.yaml," + scenarios + "holder-paused-past-lease.yaml"
	args := []string{"compare", "--scenarios", scens, "--backends", "etcd,consul", "--seeds", "4", "--parallel", "2", "--out", out, "--baseline", base}

	code, stdout, stderr := runCLI(append(args, "--write-baseline")...)
	if code != exitViolations {
		t.Fatalf("exit %d, want %d (violations)\n%s%s", code, exitViolations, stdout, stderr)
	}
	for _, want := range []string{"control on etcd: safe", "holder-paused-past-lease on etcd: mutual-exclusion 4/4 seeds",
		"replay: locksim sim " + scenarios + "holder-paused-past-lease.yaml --backend etcd --seed 1", "holder-paused-past-lease on consul: safe"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	s, err := report.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if s.Mode != report.ModeSim || s.Seeds != 4 || len(s.Cells) != 4 || strings.Join(s.Backends, ",") != "etcd,consul" {
		t.Errorf("summary: %+v", s)
	}
	if c := s.Cell("holder-paused-past-lease", "etcd"); c == nil || c.Violating != 4 || c.Shown == nil || len(c.Shown.Violations) == 0 || c.Shown.Violations[0].Lines[0] == 0 {
		t.Errorf("cell holder-paused-past-lease/etcd: %+v", c)
	}
	// Liveness: over the 4 seeds of each cell, and in the drawn run's verdict.
	for _, c := range s.Cells {
		if len(c.Liveness) != 1 || c.Liveness[0].Runs != 4 || c.Liveness[0].SpanNs <= 0 || c.Liveness[0].HeldNs <= 0 {
			t.Errorf("cell %s: liveness %+v, want one key over 4 seeds", c.Name(), c.Liveness)
		}
	}
	var v struct {
		Liveness []checker.Liveness `json:"liveness"`
	}
	if data, err := os.ReadFile(filepath.Join(out, "runs/control/etcd/verdict.json")); err != nil || json.Unmarshal(data, &v) != nil || len(v.Liveness) != 1 {
		t.Errorf("runs/control/etcd/verdict.json: liveness %+v (%v)", v.Liveness, err)
	}
	if md, _ := os.ReadFile(filepath.Join(out, report.MarkdownFile)); !strings.Contains(string(md), "## Liveness") {
		t.Errorf("README.md has no liveness section:\n%s", md)
	}
	for _, f := range []string{report.MarkdownFile, report.HTMLFile, report.SummaryFile, "runs/holder-paused-past-lease/etcd/history.jsonl"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}

	// Against the baseline it recorded: no change, exit 0, even though
	// cells violate.
	code, stdout, stderr = runCLI(append(args, "--check-baseline")...)
	if code != exitOK || !strings.Contains(stdout, "the 4 cells it lists are as expected") {
		t.Fatalf("check against its own baseline: exit %d\n%s%s", code, stdout, stderr)
	}

	// A baseline that expects otherwise: exit 1, the cells named.
	b, err := report.LoadBaseline(base)
	if err != nil {
		t.Fatal(err)
	}
	b.Sim.Cells["control/etcd"] = []checker.Kind{checker.Damage}
	b.Sim.Cells["holder-paused-past-lease/etcd"] = []checker.Kind{}
	if err := b.Save(base); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ = runCLI(append(args, "--check-baseline")...)
	if code != exitViolations {
		t.Errorf("changed baseline: exit %d, want %d", code, exitViolations)
	}
	for _, want := range []string{"2 cells changed", "control/etcd: damage disappeared", "holder-paused-past-lease/etcd: new mutual-exclusion"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}

	// Other seeds than the baseline's: it does not apply.
	code, _, stderr = runCLI("compare", "--scenarios", scens, "--backends", "etcd", "--seeds", "3", "--out", out, "--baseline", base, "--check-baseline", "--no-progress")
	if code != exitUsage || !strings.Contains(stderr, "4 seeds per cell") {
		t.Errorf("other seeds: exit %d, stderr %q", code, stderr)
	}

	// locksim report renders the same pages from the saved run.
	code, _, _ = runCLI("compare", "--scenarios", scens, "--backends", "etcd,consul", "--seeds", "4", "--out", out, "--no-progress")
	if code != exitViolations {
		t.Fatalf("compare: exit %d", code)
	}
	before := readAll(t, out)
	code, stdout, stderr = runCLI("report", out)
	if code != exitOK {
		t.Fatalf("report: exit %d\n%s%s", code, stdout, stderr)
	}
	after := readAll(t, out)
	for f, b := range before {
		if after[f] != b {
			t.Errorf("locksim report changed %s", f)
		}
	}
}

// A scenario the simulator does not model is left out, said so, and
// does not fail the comparison.
func TestCompareSimSkips(t *testing.T) {
	out := t.TempDir()
	code, stdout, stderr := runCLI("compare", "--scenarios", scenarios+"control.yaml,"+scenarios+"memcache-list.yaml", "--backends", "memcache", "--seeds", "2", "--out", out, "--no-progress")
	if code != exitOK || !strings.Contains(stdout, "memcache-list on memcache: not run: ") || !strings.Contains(stdout, "control on memcache: safe") {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	s, err := report.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Cells) != 1 || len(s.Skipped) != 1 || len(s.Scenarios) != 1 {
		t.Errorf("summary: %d cells, skipped %v, scenarios %v", len(s.Cells), s.Skipped, s.Scenarios)
	}
}

func readAll(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, f := range []string{report.MarkdownFile, report.HTMLFile, report.SummaryFile} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		m[f] = string(b)
	}
	return m
}

func TestCompareBadInput(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args []string
		err  string
	}{
		{[]string{"compare", "--sim", "--real"}, "exclude"},
		{[]string{"compare", "--scenarios", filepath.Join(dir, "none")}, "none"},
		{[]string{"compare", "--scenarios", dir}, "no scenario files"},
		{[]string{"compare", "--scenarios", scenarios + "control.yaml", "--backends", "zookeeper"}, "zookeeper"},
		{[]string{"compare", "--scenarios", scenarios + "memcache-restart.yaml", "--backends", "etcd"}, "runs on the backends"},
		{[]string{"compare", "--check-baseline", "--baseline", filepath.Join(dir, "missing.json")}, "missing.json"},
		{[]string{"compare", "extra"}, "unexpected argument"},
		{[]string{"compare", "--real", "--runs", "0"}, "--runs must be at least 1"},
		{[]string{"compare", "--sim", "--runs", "3"}, "--runs is for --real"},
		{[]string{"report"}, "exactly one directory"},
		{[]string{"report", dir}, "summary.json"},
	}
	for _, tc := range tests {
		code, _, stderr := runCLI(tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.err) {
			t.Errorf("locksim %v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr, exitUsage, tc.err)
		}
	}
}

// compare --real --runs: each cell runs several times with consecutive
// seeds (real etcd); the cell counts the runs, keeps each run's history,
// and locksim agree compares each kind's share with the simulator's.
func TestCompareRealRuns(t *testing.T) {
	dir := t.TempDir()
	scen := filepath.Join(dir, "short.yaml")
	body := "name: short\nbackends: [etcd]\ncluster:\n  size: 1\nclients: 2\nduration: 3s\nlock:\n  ttl: 1s\n  renew_every: 250ms\n  poll: 50ms\n" +
		"workload:\n  kind: counter\n  hold_min: 100ms\n  hold_max: 200ms\n  fencing: true\n"
	if err := os.WriteFile(scen, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(dir, "real")
	// The real binary: its clients are its own child processes.
	code, stdout, stderr := execLocksim(t, dir, "compare", "--real", "--runs", "2", "--seed", "7", "--scenarios", scen, "--out", real, "--no-progress")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	s, err := report.Load(real)
	if err != nil {
		t.Fatal(err)
	}
	c := s.Cell("short", "etcd")
	if c == nil || c.Seeds != 2 || c.Violating != 0 || c.Shown == nil || c.Shown.Seed != 7 {
		t.Fatalf("cell %+v", c)
	}
	for _, seed := range []string{"seed-7", "seed-8"} {
		if _, err := os.Stat(filepath.Join(real, "runs", "short", "etcd", seed, "history.jsonl")); err != nil {
			t.Errorf("run %s: %v", seed, err)
		}
	}
	simDir := filepath.Join(dir, "sim")
	if code, stdout, stderr := runCLI("compare", "--sim", "--seeds", "50", "--scenarios", scen, "--out", simDir, "--no-progress"); code != exitOK {
		t.Fatalf("sim: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, _ = runCLI("agree", simDir, real)
	if code != exitOK || !strings.Contains(stdout, "1 cells, 0 disagree") {
		t.Fatalf("agree: exit %d\n%s", code, stdout)
	}
}
