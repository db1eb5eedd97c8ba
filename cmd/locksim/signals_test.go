package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/locksim/locksim/cluster"
)

// These tests run the real binary, built once into a temporary directory,
// and signal it the way a user or a CI runner would.

var (
	buildOnce sync.Once
	buildDir  string
	buildExe  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// locksimBinary builds cmd/locksim once per test binary.
func locksimBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the real binary")
	}
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "locksim-build-"); buildErr != nil {
			return
		}
		buildExe = filepath.Join(buildDir, "locksim")
		out, err := exec.Command("go", "build", "-o", buildExe, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildExe
}

// sandbox is where one locksim process runs: its working directory, its
// TMPDIR (so every server's data lands inside), all under one root that a
// server running as another user (PostgreSQL as postgres) can traverse.
type sandbox struct {
	root, work, tmp string
	exe             string
	cmd             *exec.Cmd
	stdout, stderr  bytes.Buffer
	exited          chan struct{}
	exitErr         error
}

func newSandbox(t *testing.T) *sandbox {
	t.Helper()
	exe := locksimBinary(t)
	root, err := os.MkdirTemp("", "locksim-sigtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	sb := &sandbox{root: root, work: filepath.Join(root, "work"), tmp: filepath.Join(root, "tmp"), exe: exe}
	for _, d := range []string{root, sb.work, sb.tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return sb
}

// start starts locksim with args in the sandbox.
func (sb *sandbox) start(t *testing.T, args ...string) {
	t.Helper()
	sb.cmd = exec.Command(sb.exe, args...)
	sb.cmd.Dir = sb.work
	sb.cmd.Env = append(os.Environ(), "TMPDIR="+sb.tmp)
	if c, err := cluster.ConsulBinary(); err == nil {
		if abs, err := filepath.Abs(c); err == nil {
			sb.cmd.Env = append(sb.cmd.Env, "LOCKSIM_CONSUL="+abs)
		}
	}
	sb.cmd.Stdout, sb.cmd.Stderr = &sb.stdout, &sb.stderr
	if err := sb.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sb.exited = make(chan struct{})
	go func() {
		sb.exitErr = sb.cmd.Wait()
		close(sb.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-sb.exited:
		default:
			_ = sb.cmd.Process.Kill()
			<-sb.exited
		}
		// Whatever a failed test left behind goes too.
		for _, p := range sb.leftovers() {
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
		}
	})
}

// signal sends sig to the locksim process only (its children are in their
// own process groups, as they are when a terminal sends Ctrl-C).
func (sb *sandbox) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := sb.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// wait waits for locksim to exit and returns its exit status (-1 if a
// signal killed it).
func (sb *sandbox) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-sb.exited:
	case <-time.After(timeout):
		t.Fatalf("locksim still running %v after the signal\nstderr: %s", timeout, sb.stderr.String())
	}
	var ee *exec.ExitError
	if errors.As(sb.exitErr, &ee) {
		return ee.ExitCode()
	}
	if sb.exitErr != nil {
		t.Fatal(sb.exitErr)
	}
	return 0
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, sb *sandbox, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		select {
		case <-sb.exited:
			t.Fatalf("locksim exited while waiting for %s: %v\nstderr: %s", what, sb.exitErr, sb.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %v\nstderr: %s", what, timeout, sb.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fileHas reports whether path exists and contains s.
func fileHas(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && bytes.Contains(b, []byte(s))
}

type proc struct {
	pid  int
	desc string
}

// leftovers lists the live processes that belong to the sandbox: the
// binary under test (locksim, its clients and etcd members), and anything
// whose command line, working directory or environment points into the
// sandbox (memcached, PostgreSQL and its backends, Consul).
func (sb *sandbox) leftovers() []proc {
	var out []proc
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		if st, err := os.ReadFile(filepath.Join(dir, "stat")); err != nil {
			continue
		} else if f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:])); len(f) > 0 && f[0] == "Z" {
			continue // a zombie has let go of everything; its parent reaps it
		}
		cmdline, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		exe, _ := os.Readlink(filepath.Join(dir, "exe"))
		cwd, _ := os.Readlink(filepath.Join(dir, "cwd"))
		env, _ := os.ReadFile(filepath.Join(dir, "environ"))
		if exe == sb.exe || bytes.Contains(cmdline, []byte(sb.root)) || strings.HasPrefix(cwd, sb.root) ||
			bytes.Contains(env, []byte("TMPDIR="+sb.tmp+"\x00")) {
			out = append(out, proc{pid, strings.ReplaceAll(strings.TrimSpace(string(cmdline)), "\x00", " ")})
		}
	}
	return out
}

// noLeftovers waits a little for processes that notice their parent's
// death (PostgreSQL's backends, etcd's parent watch), then fails on any
// process of the sandbox still alive.
func (sb *sandbox) noLeftovers(t *testing.T) {
	t.Helper()
	var left []proc
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if left = sb.leftovers(); len(left) == 0 {
			return
		}
	}
	t.Errorf("processes left behind:")
	for _, p := range left {
		t.Errorf("  %d %s", p.pid, p.desc)
	}
}

// checkEvents runs locksim check --json on path (a history or a run
// directory): it must accept it (exit 0 or 1, or 3 if it holds no event),
// and it returns the number of events.
func checkEvents(t *testing.T, path string) int {
	t.Helper()
	code, stdout, stderr := runCLI("check", "--json", "--linearizability=false", path)
	if code != exitOK && code != exitViolations && code != exitEmpty {
		t.Fatalf("locksim check %s: exit %d: %s", path, code, stderr)
	}
	var sum struct {
		Events int `json:"events"`
	}
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
		t.Fatalf("locksim check --json: %v: %s", err, stdout)
	}
	if (code == exitEmpty) != (sum.Events == 0) {
		t.Fatalf("locksim check %s: exit %d with %d events", path, code, sum.Events)
	}
	return sum.Events
}

// sigScenario is a long run on one server, so that a signal always comes
// in the middle; pause pauses the holder from 1 s on.
func sigScenario(t *testing.T, sb *sandbox, pause bool) string {
	t.Helper()
	y := `name: sig
backends: [etcd, postgres, postgres-advisory, memcache, consul]
cluster:
  size: 1
clients: 2
duration: 60s
lock:
  ttl: 2s
  renew_every: 500ms
  poll: 100ms
  lock_delay: 0s
workload:
  kind: counter
  hold_min: 20ms
  hold_max: 50ms
  fencing: true
`
	if pause {
		y += "faults:\n  - at: 1s\n    fault: pause\n    target: holder\n    for: 50s\n"
	}
	p := filepath.Join(sb.root, "sig.yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func runDir(sb *sandbox, backend string) string {
	return filepath.Join(sb.work, "runs", "sig", backend)
}

func clientStarted(sb *sandbox, backend string) func() bool {
	return func() bool { return fileHas(filepath.Join(runDir(sb, backend), "procs", "c1.jsonl"), `"acquire"`) }
}

// SIGINT or SIGTERM at any point of locksim run — while the servers start,
// in the middle of the workload, while a client is paused — stops every
// process it started, keeps the history so far where locksim check accepts
// it, and exits 130.
func TestRunInterrupted(t *testing.T) {
	tests := []struct {
		name    string
		backend string
		sig     syscall.Signal
		pause   bool
		when    string // startup, workload
	}{
		{"etcd-SIGINT-workload", "etcd", syscall.SIGINT, false, "workload"},
		{"postgres-SIGTERM-paused-holder", "postgres", syscall.SIGTERM, true, "paused"},
		{"memcache-SIGINT-startup", "memcache", syscall.SIGINT, false, "startup"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sb := newSandbox(t)
			sb.start(t, "run", "--backend", tc.backend, sigScenario(t, sb, tc.pause))
			switch tc.when {
			case "startup":
				time.Sleep(300 * time.Millisecond)
			case "workload":
				waitFor(t, sb, "client events", 60*time.Second, clientStarted(sb, tc.backend))
			case "paused":
				waitFor(t, sb, "a paused holder", 60*time.Second, func() bool {
					return fileHas(filepath.Join(runDir(sb, tc.backend), "procs", "nemesis.jsonl"), `"pause"`)
				})
			}
			sb.signal(t, tc.sig)
			if code := sb.wait(t, 60*time.Second); code != exitInterrupted {
				t.Fatalf("exit %d, want %d\nstderr: %s", code, exitInterrupted, sb.stderr.String())
			}
			sb.noLeftovers(t)
			dir := runDir(sb, tc.backend)
			n := checkEvents(t, filepath.Join(dir, "history.jsonl"))
			if tc.when != "startup" && n == 0 {
				t.Fatalf("history.jsonl has no events")
			}
			if m := checkEvents(t, dir); m != n {
				t.Fatalf("the run directory has %d events, history.jsonl %d", m, n)
			}
			if _, err := os.Stat(filepath.Join(dir, "verdict.json")); err != nil {
				t.Fatalf("no verdict: %v", err)
			}
			if !strings.Contains(sb.stderr.String(), "interrupted") {
				t.Fatalf("stderr does not say it was interrupted: %s", sb.stderr.String())
			}
		})
	}
}

// A SIGKILL of locksim itself, which it cannot catch, leaves no server or
// client behind (Pdeathsig, the etcd members' parent watch, PostgreSQL's
// backends noticing the postmaster's death), and the run directory is
// still checkable: every event up to the kill is in procs/.
func TestRunKilled(t *testing.T) {
	for _, backend := range []string{"etcd", "postgres", "memcache", "consul"} {
		t.Run(backend, func(t *testing.T) {
			if backend == "consul" {
				// make test builds it first; a missing one is a failure.
				if _, err := cluster.ConsulBinary(); err != nil {
					t.Fatal(err)
				}
			}
			sb := newSandbox(t)
			sb.start(t, "run", "--backend", backend, sigScenario(t, sb, false))
			waitFor(t, sb, "client events", 90*time.Second, clientStarted(sb, backend))
			time.Sleep(500 * time.Millisecond)
			before := sb.leftovers()
			var desc []string
			for _, p := range before {
				desc = append(desc, p.desc)
			}
			// locksim, its two clients, and the server (an etcd member is
			// locksim re-executed, told apart by its environment only).
			server := map[string]string{"etcd": "", "postgres": "postgres -D", "memcache": "memcached", "consul": "consul agent"}[backend]
			if len(before) < 4 || !strings.Contains(strings.Join(desc, "\n"), server) {
				t.Fatalf("want locksim, its clients and its server running, see:\n%s", strings.Join(desc, "\n"))
			}
			t.Logf("%d processes before the kill:\n%s", len(before), strings.Join(desc, "\n"))
			sb.signal(t, syscall.SIGKILL)
			if code := sb.wait(t, 10*time.Second); code != -1 {
				t.Fatalf("exit %d, want death by signal", code)
			}
			sb.noLeftovers(t)
			// A SIGKILL leaves the temporary directories (no code runs);
			// the test's sandbox removes them.
			tmps, _ := os.ReadDir(sb.tmp)
			for _, d := range tmps {
				t.Logf("left in TMPDIR after SIGKILL: %s", d.Name())
			}
			if n := checkEvents(t, runDir(sb, backend)); n == 0 {
				t.Fatalf("the killed run's directory has no events")
			}
		})
	}
}

// SIGINT or SIGTERM stops locksim sim: what ran is reported, the
// violating seeds found so far are written under --out and check accepts
// them, exit 130.
func TestSimInterrupted(t *testing.T) {
	tests := []struct {
		sig  syscall.Signal
		scen string
		bad  bool // violating seeds to write
	}{
		{syscall.SIGINT, "control.yaml", false},
		{syscall.SIGTERM, "holder-paused-past-lease-unfenced.yaml", true},
	}
	for _, tc := range tests {
		t.Run(tc.sig.String(), func(t *testing.T) {
			sb := newSandbox(t)
			out := filepath.Join(sb.work, "out")
			scen, _ := filepath.Abs(scenarios + tc.scen)
			sb.start(t, "sim", scen, "--backend", "postgres", "--seeds", "100000000", "--keep-going", "--no-progress", "--parallel", "1", "--out", out)
			time.Sleep(500 * time.Millisecond)
			sb.signal(t, tc.sig)
			if code := sb.wait(t, 60*time.Second); code != exitInterrupted {
				t.Fatalf("exit %d, want %d\nstderr: %s", code, exitInterrupted, sb.stderr.String())
			}
			if !strings.Contains(sb.stdout.String(), "violating") || !strings.Contains(sb.stderr.String(), "interrupted after") {
				t.Fatalf("stdout %q stderr %q", sb.stdout.String(), sb.stderr.String())
			}
			hs, _ := filepath.Glob(filepath.Join(out, "*", "postgres", "seed-*.jsonl"))
			if tc.bad && len(hs) == 0 {
				t.Fatalf("no violating seed written under --out: %s", sb.stdout.String())
			}
			for _, h := range hs[:min(len(hs), 3)] {
				checkEvents(t, h)
			}
			sb.noLeftovers(t)
		})
	}
}

// SIGINT or SIGTERM stops locksim compare --real mid-run: every process
// it started goes, the interrupted cell's run directory is checkable, the
// report of the cells so far is written, exit 130.
func TestCompareInterrupted(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			sb := newSandbox(t)
			out := filepath.Join(sb.work, "cmp")
			sb.start(t, "compare", "--real", "--no-progress", "--scenarios", sigScenario(t, sb, false), "--backends", "memcache", "--out", out)
			dir := filepath.Join(out, "runs", "sig", "memcache")
			waitFor(t, sb, "client events", 60*time.Second, func() bool {
				return fileHas(filepath.Join(dir, "procs", "c1.jsonl"), `"acquire"`)
			})
			sb.signal(t, sig)
			if code := sb.wait(t, 60*time.Second); code != exitInterrupted {
				t.Fatalf("exit %d, want %d\nstderr: %s", code, exitInterrupted, sb.stderr.String())
			}
			sb.noLeftovers(t)
			if n := checkEvents(t, filepath.Join(dir, "history.jsonl")); n == 0 {
				t.Fatalf("history.jsonl has no events")
			}
			if !strings.Contains(sb.stderr.String(), "interrupted") {
				t.Fatalf("stderr: %s", sb.stderr.String())
			}
		})
	}
}
