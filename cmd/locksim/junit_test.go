package main

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/locksim/locksim/report"
)

// junitFile is a JUnit file parsed back, independently of the writer's
// types.
type junitFile struct {
	XMLName  xml.Name `xml:"testsuites"`
	Tests    int      `xml:"tests,attr"`
	Failures int      `xml:"failures,attr"`
	Errors   int      `xml:"errors,attr"`
	Skipped  int      `xml:"skipped,attr"`
	Suites   []struct {
		Name  string `xml:"name,attr"`
		Tests int    `xml:"tests,attr"`
		Cases []struct {
			Name      string `xml:"name,attr"`
			Classname string `xml:"classname,attr"`
			Time      string `xml:"time,attr"`
			Failure   *struct {
				Message string `xml:"message,attr"`
				Text    string `xml:",chardata"`
			} `xml:"failure"`
			Error *struct {
				Message string `xml:"message,attr"`
			} `xml:"error"`
			Skipped *struct {
				Message string `xml:"message,attr"`
			} `xml:"skipped"`
			SystemOut string `xml:"system-out"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func readJUnit(t *testing.T, path string) junitFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var j junitFile
	if err := xml.Unmarshal(data, &j); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, data)
	}
	if len(j.Suites) != 1 || j.Suites[0].Tests != len(j.Suites[0].Cases) || j.Tests != len(j.Suites[0].Cases) {
		t.Fatalf("%s: %d suites, totals do not match the cases\n%s", path, len(j.Suites), data)
	}
	return j
}

// One test case per history: the clean one passes, the violating one
// fails naming the kind and the command that checks it again.
func TestCheckJUnit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "check.xml")
	clean, overlap := histories+"clean.jsonl", histories+"example-overlap.jsonl"
	code, _, stderr := runCLI("check", "--junit", path, clean, overlap)
	if code != exitViolations {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	j := readJUnit(t, path)
	if j.Tests != 2 || j.Failures != 1 || j.Errors != 0 {
		t.Fatalf("%d tests, %d failures, %d errors", j.Tests, j.Failures, j.Errors)
	}
	c0, c1 := j.Suites[0].Cases[0], j.Suites[0].Cases[1]
	if c0.Name != clean || c0.Failure != nil || !strings.Contains(c0.SystemOut, "OK: no violation") {
		t.Errorf("clean: %+v", c0)
	}
	if c1.Name != overlap || c1.Failure == nil || c1.Failure.Message != "mutual-exclusion" ||
		!strings.Contains(c1.Failure.Text, "replay: locksim check "+overlap) || !strings.Contains(c1.Failure.Text, "FAIL: 1 violation") {
		t.Errorf("overlap: %+v", c1)
	}
	// Bad input writes no report.
	bad := filepath.Join(t.TempDir(), "bad.xml")
	if code, _, _ := runCLI("check", "--junit", bad, histories+"bad-token.jsonl"); code != exitUsage {
		t.Errorf("bad input: exit %d", code)
	}
	if _, err := os.Stat(bad); err == nil {
		t.Error("bad input wrote a JUnit file")
	}
}

// One test case per backend; a violating one names the kinds and each
// seed's replay command.
func TestSimJUnit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sim.xml")
	scen := scenarios + "holder-paused-past-lease.yaml"
	code, _, stderr := runCLI("sim", scen, "--seeds", "3", "--keep-going", "--junit", path, "--no-progress")
	if code != exitViolations {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	j := readJUnit(t, path)
	cases := j.Suites[0].Cases
	if len(cases) != 6 || j.Failures != 3 {
		t.Fatalf("%d cases, %d failures", len(cases), j.Failures)
	}
	for _, c := range cases {
		switch c.Name {
		case "holder-paused-past-lease/consul", "holder-paused-past-lease/consul-ttl", "holder-paused-past-lease/mysql":
			if c.Failure != nil {
				t.Errorf("%s: %+v", c.Name, c.Failure)
			}
		default:
			b := strings.TrimPrefix(c.Name, "holder-paused-past-lease/")
			if c.Failure == nil || c.Failure.Message != "mutual-exclusion" || c.Classname != "locksim.sim" ||
				!strings.Contains(c.Failure.Text, "replay: locksim sim "+scen+" --backend "+b+" --seed 3") {
				t.Errorf("%s: %+v", c.Name, c)
			}
		}
	}
}

// compare: one test case per cell and per skipped cell; with
// --check-baseline a violation the baseline expects passes and a changed
// verdict fails.
func TestCompareJUnit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "compare.xml")
	base := filepath.Join(dir, "baseline.json")
	scens := scenarios + "control.yaml," + scenarios + "holder-paused-past-lease.yaml," + scenarios + "memcache-list.yaml"
	args := []string{"compare", "--scenarios", scens, "--backends", "etcd,memcache", "--seeds", "2", "--out", filepath.Join(dir, "out"), "--baseline", base, "--no-progress", "--junit", path}
	if code, out, errs := runCLI(append(args, "--write-baseline")...); code != exitViolations {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	j := readJUnit(t, path)
	if j.Tests != 5 || j.Failures != 2 || j.Skipped != 1 || j.Suites[0].Name != "locksim compare --sim" {
		t.Fatalf("%d tests, %d failures, %d skipped (suite %q)", j.Tests, j.Failures, j.Skipped, j.Suites[0].Name)
	}
	for _, c := range j.Suites[0].Cases {
		if c.Name == "holder-paused-past-lease/etcd" &&
			(c.Failure == nil || c.Failure.Message != "mutual-exclusion" || !strings.Contains(c.Failure.Text, "replay: locksim sim "+scenarios+"holder-paused-past-lease.yaml --backend etcd --seed 1")) {
			t.Errorf("holder-paused-past-lease/etcd: %+v", c)
		}
		if c.Name == "memcache-list/memcache" && c.Skipped == nil {
			t.Errorf("memcache-list/memcache not skipped: %+v", c)
		}
	}

	// Against the baseline just recorded: nothing fails.
	if code, out, errs := runCLI(append(args, "--check-baseline")...); code != exitOK {
		t.Fatalf("--check-baseline: exit %d\n%s%s", code, out, errs)
	}
	if j := readJUnit(t, path); j.Failures != 0 || j.Tests != 5 {
		t.Errorf("against its own baseline: %d failures of %d", j.Failures, j.Tests)
	}
	// A baseline that expects control/etcd to violate: that cell fails.
	b, err := report.LoadBaseline(base)
	if err != nil {
		t.Fatal(err)
	}
	b.Sim.Cells["control/etcd"] = b.Sim.Cells["holder-paused-past-lease/etcd"]
	if err := b.Save(base); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := runCLI(append(args, "--check-baseline")...); code != exitViolations {
		t.Fatalf("changed baseline: exit %d", code)
	}
	j = readJUnit(t, path)
	if j.Failures != 1 {
		t.Fatalf("changed baseline: %d failures", j.Failures)
	}
	for _, c := range j.Suites[0].Cases {
		if (c.Failure != nil) != (c.Name == "control/etcd") {
			t.Errorf("%s: failure %+v", c.Name, c.Failure)
		}
		if c.Name == "control/etcd" && !strings.Contains(c.Failure.Message, "mutual-exclusion disappeared") {
			t.Errorf("control/etcd: %q", c.Failure.Message)
		}
	}
}

// locksim run on real servers (the real binary, a real etcd): one test
// case per scenario and backend; the paused holder's run fails naming the
// kind and the command that runs it again.
func TestRunJUnit(t *testing.T) {
	sb := newSandbox(t)
	body := "backends: [etcd]\ncluster:\n  size: 1\nclients: 2\nduration: 4s\nlock:\n  ttl: 1s\n  renew_every: 250ms\n  poll: 50ms\n" +
		"workload:\n  kind: counter\n  hold_min: 100ms\n  hold_max: 200ms\n  fencing: true\n"
	clean := filepath.Join(sb.root, "clean.yaml")
	paused := filepath.Join(sb.root, "paused.yaml")
	if err := os.WriteFile(clean, []byte("name: clean\n"+body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(paused, []byte("name: paused\n"+body+"faults:\n  - at: 1500ms\n    fault: pause\n    target: holder\n    for: 2s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(sb.root, "run.xml")
	sb.start(t, "run", "--junit", path, clean, paused)
	if code := sb.wait(t, 2*time.Minute); code != exitViolations {
		t.Fatalf("exit %d, want %d\n%s%s", code, exitViolations, sb.stdout.String(), sb.stderr.String())
	}
	j := readJUnit(t, path)
	if j.Tests != 2 || j.Failures != 1 || j.Errors != 0 {
		t.Fatalf("%d tests, %d failures, %d errors", j.Tests, j.Failures, j.Errors)
	}
	c0, c1 := j.Suites[0].Cases[0], j.Suites[0].Cases[1]
	if c0.Name != "clean/etcd" || c0.Failure != nil || c0.Classname != "locksim.run" {
		t.Errorf("clean/etcd: %+v", c0)
	}
	if c1.Name != "paused/etcd" || c1.Failure == nil || !strings.Contains(c1.Failure.Message, "mutual-exclusion") ||
		!strings.Contains(c1.Failure.Text, "replay: locksim run --backend etcd --seed 1 "+paused) {
		t.Errorf("paused/etcd: %+v", c1)
	}
	sb.noLeftovers(t)
}
