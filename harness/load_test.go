package harness

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/locksim/locksim/checker"
	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/scenario"
)

// loadClients is how many clients contend in TestLoad.
const loadClients = 64

// TestLoad puts each backend under 64 concurrent clients, each with its own
// connection and locker, on one key, with no faults, for
// $LOCKSIM_LOAD_DURATION (default 3s): the counter workload (acquire, read
// the fenced resource, write read+1 with the token, release). The history
// must have no violation and no error but contention (an acquire still
// waiting when the run ends). It logs acquisitions per second and the p50
// and p99 acquire latency (invoke to ok, waiting included):
//
//	LOCKSIM_LOAD_DURATION=10s go test -count=1 -run '^TestLoad$' -v ./harness
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real servers")
	}
	d := 3 * time.Second
	if s := os.Getenv("LOCKSIM_LOAD_DURATION"); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			t.Fatalf("LOCKSIM_LOAD_DURATION: %v", err)
		}
	}
	for _, b := range []string{"etcd", "postgres", "postgres-advisory", "memcache", "consul-ttl"} {
		t.Run(b, func(t *testing.T) {
			st := loadRun(t, b, d)
			t.Logf("%-17s %d clients, %v: %d acquisitions, %.1f/s, acquire latency p50 %v p99 %v max %v; %d waits cut by the end",
				b, loadClients, st.elapsed.Round(100*time.Millisecond), st.grants, float64(st.grants)/st.elapsed.Seconds(), st.p(50), st.p(99), st.p(100), st.contention)
			if len(st.errors) > 0 {
				t.Errorf("%d errors other than contention, e.g.:\n%s", len(st.errors), strings.Join(st.errors[:min(len(st.errors), 10)], "\n"))
			}
			if st.grants < loadClients/4 {
				t.Errorf("only %d acquisitions", st.grants)
			}
		})
	}
}

// acceptedWrites counts the writes the resource has accepted so far.
func acceptedWrites(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), `"f":"accept"`)
}

type loadStats struct {
	elapsed    time.Duration // how long the clients ran
	grants     int
	contention int
	latencies  []time.Duration // sorted
	errors     []string
}

// p is the q-th percentile of the acquire latencies.
func (s *loadStats) p(q int) time.Duration {
	if len(s.latencies) == 0 {
		return 0
	}
	i := min(len(s.latencies)-1, len(s.latencies)*q/100)
	return s.latencies[i].Round(100 * time.Microsecond)
}

// loadRun runs the load on backend b for d and judges the history.
func loadRun(t *testing.T, b string, d time.Duration) *loadStats {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	procs := filepath.Join(dir, "procs")
	if err := os.Mkdir(procs, 0o755); err != nil {
		t.Fatal(err)
	}
	net := faults.NewNetwork()
	defer net.Close()
	dep, err := deploy(deployArgs{kind: b, size: 3, dir: dir, net: net, exe: exe})
	if err != nil {
		t.Fatalf("start %s: %v", b, err)
	}
	defer dep.close()
	clock := NewRunClock()
	resLog, err := CreateProcLog(filepath.Join(procs, history.ProcResource+".jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer resLog.Close()
	srv, err := serveResource(scenario.FenceWrites, recorder{clock, resLog})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	// Cancelled, not timed out: the clients record an acquire cut short
	// by the end of the run as failed, which is contention.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The run lasts d, or longer on a machine too busy for loadClients/4
	// acquisitions in d (every write the resource accepts is one), up to
	// 10 d: the test is about what happens under contention, not about
	// this machine's speed (which the figures it logs show).
	resPath := filepath.Join(procs, history.ProcResource+".jsonl")
	go func() {
		defer cancel()
		start := time.Now()
		time.Sleep(d)
		for time.Since(start) < 10*d && acceptedWrites(resPath) < loadClients/4 {
			time.Sleep(100 * time.Millisecond)
		}
	}()
	var wg sync.WaitGroup
	errs := make([]error, loadClients)
	began := time.Now()
	for i := range loadClients {
		name := "c" + strconv.Itoa(i+1)
		bc := BackendClient{Kind: b, Endpoints: dep.upstreams, Home: i % len(dep.upstreams), LockDelay: -1}
		if dep.dsn != nil {
			bc.DSN = dep.dsn(dep.upstreams[0])
		}
		if b == "postgres" {
			// Two connections a client (its lock and its renewals): 128
			// of the server's 200.
			bc.DSN += "&pool_max_conns=2"
		}
		cfg := ClientConfig{
			Proc: name, RunStart: clock.Start, Seed: uint64(i + 1), Backend: bc,
			ResourceURL: srv.URL(), Keys: []string{"load"}, Workload: "counter",
			HoldMin: time.Millisecond, HoldMax: 2 * time.Millisecond,
			TTL: 5 * time.Second, RenewEvery: time.Second, Poll: 20 * time.Millisecond,
		}
		f, err := os.Create(filepath.Join(procs, name+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		control, stop := io.Pipe()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer f.Close()
			defer stop.Close() // ends the client's control reader
			errs[i] = RunClient(ctx, cfg, control, f)
		}()
	}
	wg.Wait()
	elapsed := time.Since(began)
	resLog.Close()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("client c%d: %v", i+1, err)
		}
	}

	files, err := procFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	histPath := filepath.Join(dir, "history.jsonl")
	hf, err := os.Create(histPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Merge(hf, files); err != nil {
		t.Fatal(err)
	}
	hf.Close()
	r, err := history.Open(histPath)
	if err != nil {
		t.Fatal(err)
	}
	res, err := checker.Check(r, checker.Options{})
	r.Close()
	if err != nil {
		t.Fatalf("history: %v", err)
	}
	if len(res.Violations) > 0 {
		t.Errorf("%d violations under load, first: %+v", len(res.Violations), res.Violations[0])
	}

	r, err = history.Open(histPath)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	events, err := history.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	st := loadStatsOf(events)
	st.elapsed = elapsed
	return st
}

// loadStatsOf measures a history: grants, acquire latencies, and every
// event that is an error rather than contention.
func loadStatsOf(events []history.Event) *loadStats {
	st := &loadStats{}
	invoked := map[string]int64{} // proc → t of its open acquire
	for _, e := range events {
		if e.Proc == history.ProcResource {
			if e.F == history.FReject {
				st.errors = append(st.errors, fmt.Sprintf("t=%d resource rejected token %d", e.T, e.Token))
			}
			continue
		}
		switch {
		case e.F == history.FAcquire && e.Type == history.Invoke:
			invoked[e.Proc] = e.T
		case e.F == history.FAcquire && e.Type == history.OK:
			st.grants++
			st.latencies = append(st.latencies, time.Duration(e.T-invoked[e.Proc]))
		case e.F == history.FAcquire && e.Type == history.Fail &&
			(strings.Contains(string(e.Value), "context canceled") || strings.Contains(string(e.Value), "operation was canceled")):
			st.contention++ // still waiting (or still connecting) when the run ended
		case e.Type == history.Fail || e.Type == history.Info:
			st.errors = append(st.errors, fmt.Sprintf("t=%d %s %s %s %s", e.T, e.Proc, e.Type, e.F, e.Value))
		}
	}
	slices.Sort(st.latencies)
	return st
}
