package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/faults/kinds"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/scenario"
)

// fakeNode is a cluster.Node that records what the nemesis does to it.
type fakeNode struct {
	name string
	ops  *opLog
}

type opLog struct {
	mu  sync.Mutex
	ops []string
}

func (l *opLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ops = append(l.ops, s)
}

func (l *opLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.ops
	l.ops = nil
	return out
}

func (n *fakeNode) Name() string    { return n.name }
func (n *fakeNode) Stop() error     { n.ops.add("stop " + n.name); return nil }
func (n *fakeNode) Kill() error     { n.ops.add("kill " + n.name); return nil }
func (n *fakeNode) Pause() error    { n.ops.add("pause " + n.name); return nil }
func (n *fakeNode) Resume() error   { n.ops.add("resume " + n.name); return nil }
func (n *fakeNode) Restart() error  { n.ops.add("restart " + n.name); return nil }
func (n *fakeNode) PID() int        { return 0 }
func (n *fakeNode) LogPath() string { return "" }

// fakeMemcached answers every set with STORED and counts them.
func fakeMemcached(t *testing.T, sets *atomic.Int64) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if strings.HasPrefix(line, "set ") {
						if _, err := r.ReadString('\n'); err != nil {
							return
						}
						sets.Add(1)
						if _, err := io.WriteString(c, "STORED\r\n"); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

// TestNemesisAppliesEveryKind: the harness's nemesis carries out every
// kind of the registry (package faults/kinds) on the real world of a run
// (here, fake servers, one client's control pipe and a network without
// proxies): each records its start under its name, not skipped, and does
// what it says to the processes, links, clocks or services; its end, if
// it has one, records Kind.End and undoes it. A kind the harness ignored
// would fail here.
func TestNemesisAppliesEveryKind(t *testing.T) {
	ops := &opLog{}
	var sets atomic.Int64
	var consulGets atomic.Int64
	consul := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/kv/") {
			consulGets.Add(1)
		}
		http.NotFound(w, r)
	}))
	defer consul.Close()
	dep := &deployment{kind: "fake", upstreams: []string{strings.TrimPrefix(consul.URL, "http://"), fakeMemcached(t, &sets), "127.0.0.1:1"}}
	for _, name := range []string{"s1", "s2", "s3"} {
		dep.nodes = append(dep.nodes, &fakeNode{name: name, ops: ops})
	}
	dep.setServerClock = func(node string, off time.Duration) error {
		ops.add(fmt.Sprintf("server-clock %s %v", node, off))
		return nil
	}
	dir := t.TempDir()
	nlog, err := CreateProcLog(filepath.Join(dir, "nemesis.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	stdin := &pipeLog{ops: ops}
	r := &runState{clock: NewRunClock(), net: faults.NewNetwork(), dep: dep, keys: []string{"k"}, log: io.Discard, nemesisLog: nlog,
		clients: []*clientProc{{name: "c1", cmd: &exec.Cmd{}, stdin: stdin}}, held: map[string]map[string]bool{}}
	defer r.net.Close()
	n := newNemesis(r, 1)

	// What each kind must have done, checked after its start and its end.
	type check struct {
		target       string
		start, ended func() error
	}
	cut := func(a, b string, want bool) func() error {
		return func() error {
			if r.net.IsCut(a, b) != want {
				return fmt.Errorf("%s>%s cut %v, want %v", a, b, !want, want)
			}
			return nil
		}
	}
	did := func(want ...string) func() error {
		return func() error {
			if got := ops.take(); !slices.Equal(got, want) {
				return fmt.Errorf("did %q, want %q", got, want)
			}
			return nil
		}
	}
	split := func() error { // the servers in a minority and a majority, the clients' links whole
		n := 0
		for _, a := range []string{"s1", "s2", "s3"} {
			for _, b := range []string{"s1", "s2", "s3"} {
				if r.net.IsCut(a, b) {
					n++
				}
			}
			if r.net.IsCut("c1", a) || r.net.IsCut(a, "c1") {
				return fmt.Errorf("c1's link to %s cut", a)
			}
		}
		if n != 4 {
			return fmt.Errorf("%d links between servers cut, want 4", n)
		}
		return nil
	}
	slowed := func(want bool) func() error {
		return func() error {
			if r.net.IsSlow("c1", "s1") != want || r.net.IsSlow("s2", "c1") != want {
				return fmt.Errorf("c1's links slowed %v, want %v", !want, want)
			}
			return nil
		}
	}
	checks := map[string]check{
		"pause":        {"s1", did("pause s1"), did("resume s1")},
		"kill":         {"s1", did("kill s1"), did("restart s1")},
		"restart":      {"s2", did("kill s2"), did("restart s2")}, // with for: down until its end, as in the simulator
		"partition":    {"servers", split, cut("s1", "s2", false)},
		"isolate":      {"c1", cut("s3", "c1", true), cut("s3", "c1", false)},
		"halves":       {"servers", split, cut("s1", "s2", false)},
		"bridge":       {"servers", cut("s1", "s3", true), cut("s1", "s3", false)},
		"ring":         {"servers", cut("s3", "s1", true), cut("s3", "s1", false)},
		"one-way":      {"c1", cut("c1", "s2", true), cut("c1", "s2", false)},
		"cut-holder":   {"c1", cut("s2", "c1", true), cut("s2", "c1", false)},
		"heal":         {"", cut("c1", "s1", false), nil},
		"slow":         {"c1", slowed(true), slowed(false)},
		"clock-offset": {"c1", did("c1: clock offset 3s"), did("c1: clock offset 0s")},
		"clock-drift":  {"c1", did("c1: clock drift 0.5"), did("c1: clock drift 0")},
		"clock-step":   {"c1", did("c1: clock step 3s"), nil},
		"server-clock": {"s3", did("server-clock s3 3s"), did("server-clock s3 0s")},
		"evict": {"s2", func() error {
			if sets.Load() == 0 {
				return fmt.Errorf("no junk set on s2's memcached")
			}
			return nil
		}, nil},
		"session-destroy": {"c1", func() error {
			if consulGets.Load() == 0 {
				return fmt.Errorf("no read of the run's keys from Consul")
			}
			return nil
		}, nil},
	}
	for _, k := range kinds.All {
		c, ok := checks[k.Name]
		if !ok {
			t.Errorf("kind %s: no check in the test", k.Name)
			continue
		}
		if k.Name == "heal" {
			r.net.Cut("c1", "s1", faults.Both)
		}
		f := scenario.Fault{Fault: k.Name, Target: c.target, For: time.Second, Offset: 3 * time.Second, Drift: 0.5,
			Latency: 20 * time.Millisecond, LatencyJitter: 5 * time.Millisecond}
		end := n.apply(context.Background(), f)
		if err := c.start(); err != nil {
			t.Errorf("%s on %s: %v", k.Name, c.target, err)
		}
		if (end != nil) != (c.ended != nil) {
			t.Errorf("%s: an end %v, want %v", k.Name, end != nil, c.ended != nil)
		}
		if end != nil {
			end()
			if c.ended != nil {
				if err := c.ended(); err != nil {
					t.Errorf("%s on %s, ended: %v", k.Name, c.target, err)
				}
			}
		}
		ops.take()
	}
	nlog.Close()

	// Each kind's start recorded under its name, its end under Kind.End.
	hr, err := history.Open(filepath.Join(dir, "nemesis.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	events, err := history.ReadAll(hr)
	hr.Close()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, k := range kinds.All {
		want = append(want, k.Name)
		if checks[k.Name].ended != nil {
			want = append(want, k.End)
		}
	}
	var got []string
	for _, e := range events {
		var v map[string]any
		if err := json.Unmarshal(e.Value, &v); err != nil {
			t.Fatalf("event %s: %v", e.Value, err)
		}
		if v["skipped"] != nil {
			t.Errorf("%s skipped: %v", e.F, v["skipped"])
		}
		got = append(got, e.F)
	}
	if !slices.Equal(got, want) {
		t.Errorf("nemesis events %v, want %v", got, want)
	}
}

// pipeLog is a client's control pipe that records the commands written.
type pipeLog struct{ ops *opLog }

func (p *pipeLog) Write(b []byte) (int, error) {
	p.ops.add("c1: " + strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

func (p *pipeLog) Close() error { return nil }
