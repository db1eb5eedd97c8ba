package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// measure-timing prints five distributions, each at every quantile the
// simulator keeps, and no timer fires early.
func TestMeasureTiming(t *testing.T) {
	code, stdout, stderr := runCLI("measure-timing", "--duration", "1s", "--messages", "200")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	sections := strings.Split(stdout, ":\n")
	if len(sections) != 6 {
		t.Fatalf("want 5 sections, got:\n%s", stdout)
	}
	line := regexp.MustCompile(`^  p[0-9.]+ +(\S+)$`)
	for _, sec := range sections[1:] {
		n := 0
		for _, l := range strings.Split(sec, "\n") {
			m := line.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			n++
			d, err := time.ParseDuration(m[1])
			if err != nil || d < 0 {
				t.Errorf("bad figure %q: %v", l, err)
			}
		}
		if n != 10 {
			t.Errorf("section with %d quantiles, want 10:\n%s", n, sec)
		}
	}
}

// measure-timing --runs reads what real runs' client processes measured
// (timing/*.json under each directory, however deep): every timer of every
// file, at the simulator's quantiles; a directory without one, or a file
// that does not parse, is an error naming it.
func TestMeasureTimingRuns(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, body string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a/holder-cut-off/etcd/timing/c1.json", `{"proc":"c1","timer_lateness_ns":[1000,2000,3000]}`)
	write("a/holder-cut-off/etcd/timing/c2.json", `{"proc":"c2","timer_lateness_ns":[4000000]}`)
	write("a/holder-cut-off/etcd/procs/c1.json", `not timing`)
	code, stdout, stderr := runCLI("measure-timing", "--runs", filepath.Join(dir, "a"))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"(4 timers of 10-500 ms, 2 processes)", "p0      1µs", "p50     2µs", "p100    4ms"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCLI("measure-timing", "--runs", filepath.Join(dir, "empty"))
	if code == exitOK || !strings.Contains(stderr, "no timing/*.json under "+filepath.Join(dir, "empty")) {
		t.Errorf("a directory without timing files: exit %d, stderr %q", code, stderr)
	}
	write("b/timing/c1.json", `{"proc":`)
	code, _, stderr = runCLI("measure-timing", "--runs", filepath.Join(dir, "b"))
	if code == exitOK || !strings.Contains(stderr, filepath.Join(dir, "b", "timing", "c1.json")) {
		t.Errorf("a bad timing file: exit %d, stderr %q", code, stderr)
	}
}

func TestParseSweep(t *testing.T) {
	got, err := parseSweep("0:100ms:25ms")
	if err != nil || len(got) != 5 || got[4] != 100*time.Millisecond {
		t.Fatalf("parseSweep = %v, %v", got, err)
	}
	for _, bad := range []string{"0:100ms", "0:100ms:0", "1s:0:10ms", "a:b:c", "0:10s:1ms"} {
		if _, err := parseSweep(bad); err == nil {
			t.Errorf("parseSweep(%q) accepted", bad)
		}
	}
}

// --sweep prints every backend's counts and a verdict line; a jump larger
// than --max-jump fails the command.
func TestSimSweep(t *testing.T) {
	code, stdout, stderr := runCLI("sim", scenarios+"server-clock-skew.yaml", "--sweep", "0:100ms:50ms", "--seeds", "50")
	if code != exitOK {
		t.Fatalf("exit %d: %s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"postgres", "memcache", "0s:", "50ms:", "100ms:", "smooth"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("no %q in:\n%s", want, stdout)
		}
	}
	// A negative threshold makes even a change of 0 pp a jump.
	if code, _, _ := runCLI("sim", scenarios+"holder-paused-past-lease.yaml", "--backend", "memcache", "--sweep", "0:50ms:50ms", "--seeds", "20", "--max-jump", "-1"); code != exitViolations {
		t.Errorf("--max-jump -1: exit %d, want %d", code, exitViolations)
	}
}
