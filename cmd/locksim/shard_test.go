package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/locksim/locksim/report"
	"github.com/locksim/locksim/scenario"
	"github.com/locksim/locksim/sim"
)

// execLocksim runs the real binary in dir and returns its exit status and
// output.
func execLocksim(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(locksimBinary(t), args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	case err != nil:
		t.Fatal(err)
	}
	return 0, stdout.String(), stderr.String()
}

// treeOf reads every file under dir, by path relative to it.
func treeOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		m[rel] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sameTree(t *testing.T, got, want string) {
	t.Helper()
	g, w := treeOf(t, got), treeOf(t, want)
	for f, b := range w {
		switch gb, ok := g[f]; {
		case !ok:
			t.Errorf("merged output lacks %s", f)
		case gb != b:
			t.Errorf("%s differs from the unsharded run's:\n%s\nvs\n%s", f, firstDiff(gb, b), firstDiff(b, gb))
		}
	}
	for f := range g {
		if _, ok := w[f]; !ok {
			t.Errorf("merged output has %s, the unsharded run has not", f)
		}
	}
}

// firstDiff is a's text around where it first differs from b.
func firstDiff(a, b string) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return a[max(0, i-100):min(len(a), i+100)]
}

var timeAttr = regexp.MustCompile(` time="[0-9.]+"`)

// A comparison run as three shards, each its own process of the real
// binary, merges into the report, summary and JUnit file of the unsharded
// run byte for byte (times aside). The cells cover every way a cell's
// drawn run is chosen: a safe cell draws seed 1 (shard 0), a cell whose
// every seed violates draws seed 1 too, and in the third scenario seed 1
// is safe and a later seed the first violating one, which a later shard
// ran.
func TestShardCompareMerge(t *testing.T) {
	dir := t.TempDir()
	abs, err := filepath.Abs(scenarios)
	if err != nil {
		t.Fatal(err)
	}
	// holder-cut-off, renamed, with its cut moved until on etcd a seed
	// after 1 is the first of seeds 1..5 to violate (found here by the
	// simulator itself, so that a model change moves the expectation
	// with it).
	src, err := os.ReadFile(filepath.Join(abs, "holder-cut-off.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var late string
	firstBad := uint64(0)
	for shift := 0; shift < 40 && firstBad < 2; shift++ {
		late = strings.NewReplacer("name: holder-cut-off", "name: late", "at: 3s", fmt.Sprintf("at: %dms", 3000+100*shift)).Replace(string(src))
		lateSc, err := scenario.Parse("late.yaml", []byte(late))
		if err != nil {
			t.Fatal(err)
		}
		firstBad = 0
		for seed := uint64(1); seed <= 5 && firstBad == 0; seed++ {
			res, err := sim.Run(sim.Config{Scenario: lateSc, Backend: "etcd", Seed: seed, NoHistory: true})
			if err != nil {
				t.Fatal(err)
			}
			if !res.OK() {
				firstBad = seed
			}
		}
	}
	if firstBad < 2 {
		t.Fatalf("the test needs a cell whose first violating seed is not 1; no shift of holder-cut-off's cut gives one on etcd: pick another")
	}
	if err := os.WriteFile(filepath.Join(dir, "late.yaml"), []byte(late), 0o644); err != nil {
		t.Fatal(err)
	}
	scens := strings.Join([]string{filepath.Join(abs, "control.yaml"), filepath.Join(abs, "holder-paused-past-lease.yaml"),
		filepath.Join(abs, "memcache-list.yaml"), "late.yaml"}, ",")
	common := []string{"compare", "--scenarios", scens, "--backends", "etcd,postgres,memcache", "--seeds", "5", "--parallel", "1", "--no-progress"}

	for i := range 3 {
		code, stdout, stderr := execLocksim(t, dir, append(common, "--shard", fmt.Sprintf("%d/3", i), "--out", fmt.Sprintf("shards/%d", i))...)
		if code != exitOK || !strings.Contains(stdout, fmt.Sprintf("shard %d/3: ", i)) {
			t.Fatalf("shard %d: exit %d\n%s%s", i, code, stdout, stderr)
		}
		for _, f := range []string{report.SummaryFile, report.HTMLFile} {
			if _, err := os.Stat(filepath.Join(dir, "shards", fmt.Sprint(i), f)); err == nil {
				t.Errorf("shard %d wrote %s: a partial report", i, f)
			}
		}
	}
	// Shard 0 runs seed 1 only, shard 1 seeds 2..3, shard 2 seeds 4..5.
	sh1, err := report.LoadShard(filepath.Join(dir, "shards", "1"))
	if err != nil {
		t.Fatal(err)
	}
	if p := sh1.Parts[0]; p.First != 2 || p.Seeds != 2 {
		t.Errorf("shard 1 ran seeds %d.., %d of them; want 2..3", p.First, p.Seeds)
	}

	code, mstdout, stderr := execLocksim(t, dir, "merge", "--out", "merged", "--junit", "merged.xml", "shards")
	if code != exitViolations {
		t.Fatalf("merge: exit %d, want %d\n%s%s", code, exitViolations, mstdout, stderr)
	}
	code, wstdout, stderr := execLocksim(t, dir, append(common, "--out", "whole", "--junit", "whole.xml")...)
	if code != exitViolations {
		t.Fatalf("unsharded: exit %d\n%s%s", code, wstdout, stderr)
	}
	sameTree(t, filepath.Join(dir, "merged"), filepath.Join(dir, "whole"))
	// stdout alike but for the last line (the time, or the shards).
	trim := func(s string) string { return s[:strings.LastIndex(strings.TrimSuffix(s, "\n"), "\n")+1] }
	if trim(mstdout) != trim(wstdout) {
		t.Errorf("merge printed\n%s\nthe unsharded run\n%s", mstdout, wstdout)
	}
	mj, _ := os.ReadFile(filepath.Join(dir, "merged.xml"))
	wj, _ := os.ReadFile(filepath.Join(dir, "whole.xml"))
	if a, b := timeAttr.ReplaceAllString(string(mj), ""), timeAttr.ReplaceAllString(string(wj), ""); a != b {
		t.Errorf("JUnit files differ:\n%s\nvs\n%s", firstDiff(a, b), firstDiff(b, a))
	}

	s, err := report.Load(filepath.Join(dir, "merged"))
	if err != nil {
		t.Fatal(err)
	}
	if c := s.Cell("late", "etcd"); c == nil || c.Shown == nil || c.Shown.Seed != firstBad || c.Violating == 0 || c.Seeds != 5 {
		t.Errorf("late/etcd: %+v (want seed %d drawn, of 5 seeds)", c, firstBad)
	}
	if c := s.Cell("holder-paused-past-lease", "etcd"); c == nil || c.Violating != 5 || c.Shown == nil || c.Shown.Seed != 1 {
		t.Errorf("holder-paused-past-lease/etcd: %+v", c)
	}

	// The merge checks the baseline as compare does, and records one.
	base := filepath.Join(dir, "baseline.json")
	if code, out, errs := execLocksim(t, dir, "merge", "--out", "merged", "--write-baseline", "--baseline", base, "shards"); code != exitViolations {
		t.Fatalf("merge --write-baseline: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := execLocksim(t, dir, append(common, "--out", "whole", "--check-baseline", "--baseline", base)...); code != exitOK {
		t.Errorf("compare against the merge's baseline: exit %d\n%s%s", code, out, errs)
	}

	// Shards that do not make up one sweep are refused, naming why.
	if err := os.Rename(filepath.Join(dir, "shards", "2"), filepath.Join(dir, "shard2")); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := execLocksim(t, dir, "merge", "--out", "m2", "shards"); code != exitUsage || !strings.Contains(errs, "shard 2 of 3 is missing") {
		t.Errorf("a missing shard: exit %d, stderr %q", code, errs)
	}
	if code, _, errs := execLocksim(t, dir, "merge", "--out", "m2", "shards", "shard2", "shard2"); code != exitUsage || !strings.Contains(errs, "both shard 2 of 3") {
		t.Errorf("a shard twice: exit %d, stderr %q", code, errs)
	}
	if code, _, errs := execLocksim(t, dir, append(common[:len(common)-5], "--seeds", "6", "--shard", "2/3", "--out", "other", "--no-progress")...); code != exitOK {
		t.Fatalf("another sweep's shard: exit %d\n%s", code, errs)
	}
	if code, _, errs := execLocksim(t, dir, "merge", "--out", "m2", "shards", "other"); code != exitUsage || !strings.Contains(errs, "not a shard of the same sweep") {
		t.Errorf("a shard of another sweep: exit %d, stderr %q", code, errs)
	}
	if code, _, errs := execLocksim(t, dir, "merge", "--out", "shard2", "shards", "shard2"); code != exitUsage || !strings.Contains(errs, "a shard's directory") {
		t.Errorf("--out a shard: exit %d, stderr %q", code, errs)
	}
}

// locksim sim as three shards (separate processes) merges into what the
// unsharded sweep prints and writes under --out, and its JUnit file.
func TestShardSimMerge(t *testing.T) {
	dir := t.TempDir()
	scen := filepath.Join("..", "..", "scenarios", "holder-cut-off.yaml")
	if _, err := os.Stat(scen); err != nil {
		t.Fatal(err)
	}
	scen, _ = filepath.Abs(scen)
	common := []string{"sim", scen, "--seeds", "10", "--keep-going", "--parallel", "1", "--no-progress"}
	for i := range 3 {
		code, stdout, stderr := execLocksim(t, dir, append(common, "--shard", fmt.Sprintf("%d/3", i), "--out", fmt.Sprintf("s%d", i))...)
		if code != exitOK {
			t.Fatalf("shard %d: exit %d\n%s%s", i, code, stdout, stderr)
		}
	}
	code, mstdout, stderr := execLocksim(t, dir, "merge", "--out", "merged", "--junit", "merged.xml", "s0", "s1", "s2")
	if code != exitViolations {
		t.Fatalf("merge: exit %d\n%s%s", code, mstdout, stderr)
	}
	code, wstdout, stderr := execLocksim(t, dir, append(common, "--out", "whole", "--junit", "whole.xml")...)
	if code != exitViolations {
		t.Fatalf("unsharded: exit %d\n%s%s", code, wstdout, stderr)
	}
	// Each backend's first line ends in the time (unsharded) or the shards
	// (merged); all else is the same.
	timing := regexp.MustCompile(`(?m)( violating),.*$`)
	if a, b := timing.ReplaceAllString(mstdout, "$1"), timing.ReplaceAllString(wstdout, "$1"); a != b {
		t.Errorf("merge printed\n%s\nthe unsharded sweep\n%s", a, b)
	}
	if !strings.Contains(mstdout, "holder-cut-off on etcd: 10 seeds, ") || !strings.Contains(mstdout, "merged from 3 shards") {
		t.Errorf("merge output:\n%s", mstdout)
	}
	sameTree(t, filepath.Join(dir, "merged"), filepath.Join(dir, "whole"))
	mj, _ := os.ReadFile(filepath.Join(dir, "merged.xml"))
	wj, _ := os.ReadFile(filepath.Join(dir, "whole.xml"))
	if a, b := timeAttr.ReplaceAllString(string(mj), ""), timeAttr.ReplaceAllString(string(wj), ""); a != b {
		t.Errorf("JUnit files differ:\n%s\nvs\n%s", a, b)
	}
	if len(treeOf(t, filepath.Join(dir, "whole"))) == 0 {
		t.Error("the unsharded sweep wrote no violating seed: the comparison shows nothing")
	}
}

func TestShardBadInput(t *testing.T) {
	dir := t.TempDir()
	good := scenarios + "control.yaml"
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"sim", good, "--shard", "3/3", "--out", dir}, "from 0 to N-1"},
		{[]string{"sim", good, "--shard", "1", "--out", dir}, "want I/N"},
		{[]string{"sim", good, "--shard", "0/2"}, "needs --out"},
		{[]string{"sim", good, "--shard", "0/2", "--seed", "3", "--out", dir}, "excludes --seed"},
		{[]string{"sim", good, "--shard", "0/2", "--shrink", "--out", dir}, "excludes --shrink"},
		{[]string{"sim", good, "--shard", "0/2", "--junit", "j.xml", "--out", dir}, "excludes --junit"},
		{[]string{"compare", "--scenarios", good, "--shard", "0/2", "--check-baseline", "--out", dir}, "give them to locksim merge"},
		{[]string{"merge", dir}, "no shard.json"},
	} {
		code, _, stderr := runCLI(tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.err) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("locksim %v: exit %d, stderr %q; want %d and one line with %q", tc.args, code, stderr, exitUsage, tc.err)
		}
	}
	if code, _, stderr := runCLI("merge"); code != exitUsage || !strings.Contains(stderr, "no shard directory given\nusage: locksim merge") {
		t.Errorf("merge without a directory: exit %d, stderr %q", code, stderr)
	}
	// A shard file that is not one: file, line and field.
	bad := filepath.Join(dir, "bad")
	os.MkdirAll(bad, 0o755)
	os.WriteFile(filepath.Join(bad, report.ShardFile), []byte("{\n  \"command\": \"sim\",\n  \"index\": \"one\"\n}\n"), 0o644)
	code, _, stderr := runCLI("merge", bad)
	if code != exitUsage || !strings.Contains(stderr, "shard.json:3") || !strings.Contains(stderr, `"index"`) {
		t.Errorf("bad shard.json: exit %d, stderr %q", code, stderr)
	}
}

// compare --real split over two shards (separate processes, real etcd):
// each runs every other cell, and the merge's report has every cell with
// the history of its run, copied from the shard that ran it.
func TestShardCompareReal(t *testing.T) {
	sb := newSandbox(t)
	body := "backends: [etcd]\ncluster:\n  size: 1\nclients: 2\nduration: 3s\nlock:\n  ttl: 1s\n  renew_every: 250ms\n  poll: 50ms\n" +
		"workload:\n  kind: counter\n  hold_min: 100ms\n  hold_max: 200ms\n  fencing: true\n"
	dir := filepath.Join(sb.root, "scen")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "c"} {
		if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte("name: "+name+"\n"+body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ran := map[string]int{}
	for i := range 2 {
		// Each shard in a sandbox of its own, as on a machine of its own;
		// the results are gathered in sb's work directory.
		ssb := newSandbox(t)
		out := filepath.Join(ssb.root, "shard")
		ssb.start(t, "compare", "--real", "--scenarios", dir, "--shard", fmt.Sprintf("%d/2", i), "--out", out, "--no-progress")
		if code := ssb.wait(t, 2*time.Minute); code != exitOK {
			t.Fatalf("shard %d: exit %d\n%s%s", i, code, ssb.stdout.String(), ssb.stderr.String())
		}
		ssb.noLeftovers(t)
		sh, err := report.LoadShard(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range sh.Summary.Cells {
			ran[c.Name()] = i
		}
		if err := os.CopyFS(filepath.Join(sb.work, "shards", fmt.Sprint(i)), os.DirFS(out)); err != nil {
			t.Fatal(err)
		}
	}
	// Cells a, b, c in plan order: shard 0 runs a and c, shard 1 b.
	if len(ran) != 3 || ran["a/etcd"] != 0 || ran["b/etcd"] != 1 || ran["c/etcd"] != 0 {
		t.Fatalf("cells by shard: %v", ran)
	}
	work := sb.work
	code, stdout, stderr := execLocksim(t, work, "merge", "--out", "merged", "--junit", "j.xml", "shards")
	if code != exitOK {
		t.Fatalf("merge: exit %d\n%s%s", code, stdout, stderr)
	}
	s, err := report.Load(filepath.Join(work, "merged"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Mode != report.ModeReal || len(s.Cells) != 3 {
		t.Fatalf("merged: %+v", s)
	}
	for _, c := range s.Cells {
		if c.Error != "" || !c.Safe() || c.Shown == nil || c.Seeds != 1 {
			t.Errorf("%s: %+v", c.Name(), c)
			continue
		}
		if n := checkEvents(t, filepath.Join(work, "merged", c.Shown.Dir, report.HistoryFile)); n == 0 {
			t.Errorf("%s: an empty history", c.Name())
		}
	}
	if j := readJUnit(t, filepath.Join(work, "j.xml")); j.Tests != 3 || j.Failures != 0 || j.Suites[0].Name != "locksim compare --real" {
		t.Errorf("JUnit: %d tests, %d failures, suite %q", j.Tests, j.Failures, j.Suites[0].Name)
	}
}
