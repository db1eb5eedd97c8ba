package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/locksim/locksim/checker"
	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/scenario"
)

// Options configure one run.
type Options struct {
	Scenario *scenario.Scenario
	Backend  string // one of the scenario's backends
	Seed     uint64
	// OutDir receives history.jsonl, verdict.json, procs/ (each proc's
	// own history, appended as the run goes) and logs/.
	OutDir string
	// Executable is the program started as client processes and etcd
	// members (default os.Executable()); its main or TestMain calls
	// MaybeRunClient and cluster.MaybeRunEtcdMember first.
	Executable string
	// Progress, if set, gets a progress line about once a second.
	Progress io.Writer
	// Linearizability also checks the history for linearizability.
	Linearizability bool
}

// Verdict is what a run found, as written to verdict.json: the shape of
// `locksim check --json`, plus what the run could not apply.
type Verdict struct {
	checker.Summary
	Scenario string   `json:"scenario"`
	Backend  string   `json:"backend"`
	Seed     uint64   `json:"seed"`
	Notes    []string `json:"notes,omitempty"`
}

// runState is one run in progress.
type runState struct {
	opts       Options
	clock      RunClock
	net        *faults.Network
	dep        *deployment
	keys       []string
	log        io.Writer
	nemesisLog *ProcLog

	mu      sync.Mutex
	clients []*clientProc
	held    map[string]map[string]bool // key → procs that believe they hold it
	events  int
	started time.Time // when the clients started on the workload
	notes   []string  // what the verdict must say about this run

	stopping atomic.Bool // the clients are being stopped
}

// note adds a line to the verdict's notes.
func (r *runState) note(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, s)
}

// clientProc is a client child process.
type clientProc struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	log   *ProcLog
	done  chan struct{} // its output has been read to the end
	mu    sync.Mutex
	dead  bool
}

func (c *clientProc) signal(sig syscall.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead || c.cmd.Process == nil {
		return errors.New("harness: client not running")
	}
	return syscall.Kill(-c.cmd.Process.Pid, sig)
}

// pause stops the client and returns once every thread of it has stopped.
func (c *clientProc) pause() error {
	if err := c.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	cluster.WaitStopped(c.cmd.Process.Pid, time.Second)
	return nil
}

func (c *clientProc) resume() error { return c.signal(syscall.SIGCONT) }

func (c *clientProc) kill() {
	_ = c.signal(syscall.SIGKILL)
	c.mu.Lock()
	c.dead = true
	c.mu.Unlock()
}

func (r *runState) client(name string) *clientProc {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.clients {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (r *runState) clientNames() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, len(r.clients))
	for i, c := range r.clients {
		names[i] = c.name
	}
	return names
}

// holders are the clients that believe they hold any key now, sorted.
func (r *runState) holders() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, key := range r.keys {
		for p := range r.held[key] {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	sort.Strings(out)
	return out
}

func (r *runState) clientCommand(name, cmd string) {
	if c := r.client(name); c != nil {
		_, _ = io.WriteString(c.stdin, cmd+"\n")
	}
}

// observe tracks beliefs from a client's events.
func (r *runState) observe(e *history.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events++
	switch {
	case e.F == history.FAcquire && e.Type == history.OK:
		if r.held[e.Key] == nil {
			r.held[e.Key] = map[string]bool{}
		}
		r.held[e.Key][e.Proc] = true
	case e.F == history.FRelease && e.Type == history.Invoke, e.F == history.FLost:
		delete(r.held[e.Key], e.Proc)
	}
}

// recorder stamps and writes the resource's events.
type recorder struct {
	clock RunClock
	log   *ProcLog
}

func (r recorder) Now() int64              { return r.clock.Now() }
func (r recorder) Record(e *history.Event) { _ = r.log.Write(e) }
func (r *runState) procPath(n string) string {
	return filepath.Join(r.opts.OutDir, "procs", n+".jsonl")
}

// Run runs one scenario on one backend on real servers and judges the
// history. Everything it starts is stopped when it returns, whether the
// run ends, fails, or ctx is cancelled (then the history recorded so far is
// merged and judged, and ctx.Err() is returned with the verdict).
func Run(ctx context.Context, opts Options) (*Verdict, error) {
	s := opts.Scenario
	if !slices.Contains(s.Backends, opts.Backend) {
		return nil, fmt.Errorf("harness: scenario %s does not run on backend %q (it lists %v)", s.Name, opts.Backend, s.Backends)
	}
	if opts.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		opts.Executable = exe
	}
	for _, d := range []string{"procs", "logs", "timing"} {
		if err := os.MkdirAll(filepath.Join(opts.OutDir, d), 0o755); err != nil {
			return nil, err
		}
	}
	logFile, err := os.Create(filepath.Join(opts.OutDir, "logs", "harness.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	tmp, err := cluster.MakeTempDir("", "locksim-run-", 0o600)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	r := &runState{opts: opts, clock: NewRunClock(), net: faults.NewNetwork(), log: logFile, held: map[string]map[string]bool{}}
	defer r.net.Close()
	for i := 0; i < s.Workload.Keys; i++ {
		r.keys = append(r.keys, "locksim-"+strconv.Itoa(i))
	}
	if r.nemesisLog, err = CreateProcLog(r.procPath(history.ProcNemesis)); err != nil {
		return nil, err
	}
	defer r.nemesisLog.Close()

	for _, n := range s.Notes(opts.Backend) {
		r.note(n)
	}
	has := func(kind string) bool {
		return slices.ContainsFunc(s.Faults, func(f scenario.Fault) bool { return f.Fault == kind })
	}
	names := make([]string, s.Clients)
	for i := range names {
		names[i] = "c" + strconv.Itoa(i+1) // as startClient names them
	}
	r.dep, err = deploy(deployArgs{kind: opts.Backend, size: s.Cluster.Size, dir: tmp, serverClock: has("server-clock"), evict: has("evict"),
		net: r.net, exe: opts.Executable, clients: names})
	if err != nil {
		return nil, fmt.Errorf("harness: start %s: %w", opts.Backend, err)
	}
	defer r.dep.close()
	// Runs before close, while the servers' directories exist.
	defer r.saveServerLogs()

	resLog, err := CreateProcLog(r.procPath(history.ProcResource))
	if err != nil {
		return nil, err
	}
	defer resLog.Close()
	srv, err := serveResource(s.Workload.Fencing, recorder{r.clock, resLog})
	if err != nil {
		return nil, err
	}
	defer srv.Close()

	// The seed draws each client's start offset and each fault's start
	// (scenario.Timing), as the simulator draws them: clients that start
	// together keep their renew and poll timers in phase for the whole
	// run, and every run would meet a fault at the same point of them.
	// Each client waits out its own offset, so the workload starts now.
	timing := s.Timing(opts.Seed)
	var readers sync.WaitGroup
	defer r.stopClients(&readers)
	for i := 1; i <= s.Clients; i++ {
		if err := r.startClient(i, srv.URL(), timing.ClientStart[i-1], &readers); err != nil {
			return nil, err
		}
	}

	runCtx, cancel := context.WithTimeout(ctx, s.Duration)
	defer cancel()
	r.started = time.Now()
	nem := newNemesis(r, opts.Seed)
	nemDone := make(chan struct{})
	go func() {
		defer close(nemDone)
		nem.run(runCtx, s.Faults, timing.FaultAt)
	}()
	r.progress(runCtx)
	<-nemDone
	nem.healAll()
	r.stopClients(&readers)
	if s.Workload.Kind == "list" {
		r.readLists()
	}
	r.nemesisLog.Close()
	resLog.Close()

	v, err := r.judge()
	if err != nil {
		return nil, err
	}
	return v, ctx.Err()
}

// saveServerLogs copies every server's log into the run's logs/ directory
// (logs/<node>.log).
func (r *runState) saveServerLogs() {
	for _, n := range r.dep.nodes {
		src, err := os.Open(n.LogPath())
		if err != nil {
			continue
		}
		dst, err := os.Create(filepath.Join(r.opts.OutDir, "logs", n.Name()+".log"))
		if err == nil {
			_, err = io.Copy(dst, src)
			err = errors.Join(err, dst.Close())
		}
		src.Close()
		if err != nil {
			fmt.Fprintf(r.log, "saving the log of %s: %v\n", n.Name(), err)
		}
	}
}

// progress prints a progress line every second until ctx ends.
func (r *runState) progress(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if r.opts.Progress != nil {
				fmt.Fprintln(r.opts.Progress)
			}
			return
		case <-t.C:
			if r.opts.Progress != nil {
				r.mu.Lock()
				n := r.events
				r.mu.Unlock()
				fmt.Fprintf(r.opts.Progress, "\r%s on %s: %5.1fs / %v, %d client events, holding: %v   ",
					r.opts.Scenario.Name, r.opts.Backend, time.Since(r.started).Seconds(), r.opts.Scenario.Duration, n, r.holders())
			}
		}
	}
}

// startClient starts client i as a child process, with its own proxy to
// every server.
func (r *runState) startClient(i int, resourceURL string, startDelay time.Duration, readers *sync.WaitGroup) error {
	s := r.opts.Scenario
	name := "c" + strconv.Itoa(i)
	var endpoints []string
	if agent, ok := r.dep.agents[name]; ok {
		// Its own Consul agent, on its machine: no link between them
		// (the agent's links to the servers are the client's).
		endpoints = []string{agent}
	} else {
		for j, up := range r.dep.upstreams {
			l, err := r.net.AddLink(name, r.dep.nodes[j].Name(), up)
			if err != nil {
				return err
			}
			endpoints = append(endpoints, l.Addr())
		}
	}
	b := BackendClient{Kind: r.opts.Backend, Endpoints: endpoints, Home: (i - 1) % len(endpoints), PGClock: s.Lock.Clock, PGRenewErrors: s.Lock.RenewErrors,
		LockDelay: consulLockDelay(s.Lock), NoFailover: s.Lock.NoFailover(), Pooled: s.Lock.Pooled()}
	if r.dep.dsn != nil {
		b.DSN = r.dep.dsn(endpoints[0])
	}
	cfg := ClientConfig{
		Proc: name, RunStart: r.clock.Start, Seed: r.opts.Seed*1000 + uint64(i), StartDelay: startDelay,
		Backend: b, ResourceURL: resourceURL, Keys: r.keys, Workload: s.Workload.Kind, Items: s.Workload.Items,
		HoldMin: s.Workload.HoldMin, HoldMax: s.Workload.HoldMax, Fencing: string(s.Workload.Fencing.Mode()),
		TimingFile: filepath.Join(r.opts.OutDir, "timing", name+".json"),
	}
	cfg.setLock(s.Lock)
	conf, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	log, err := CreateProcLog(r.procPath(name))
	if err != nil {
		return err
	}
	stderr, err := os.Create(filepath.Join(r.opts.OutDir, "logs", name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(r.opts.Executable, ClientCommand)
	cmd.Env = append(os.Environ(), ClientEnv+"="+string(conf))
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		stderr.Close()
		return fmt.Errorf("harness: start client %s: %w", name, err)
	}
	stderr.Close()
	c := &clientProc{name: name, cmd: cmd, stdin: stdin, log: log, done: make(chan struct{})}
	r.mu.Lock()
	r.clients = append(r.clients, c)
	r.mu.Unlock()
	readers.Add(1)
	go func() {
		defer readers.Done()
		defer close(c.done)
		hr := history.NewReader(stdout, name)
		for {
			e, err := hr.Next()
			if err != nil {
				if err != io.EOF {
					r.logf("client %s: output: %v", name, err)
				}
				_, _ = io.Copy(io.Discard, stdout)
				c.mu.Lock()
				killed := c.dead
				c.mu.Unlock()
				if !killed && !r.stopping.Load() {
					r.note(fmt.Sprintf("client %s exited before the end of the run: see logs/%s.log", name, name))
				}
				return
			}
			r.observe(&e)
			_ = log.Write(&e)
		}
	}()
	return nil
}

// stopClients asks every client to stop, waits for a while, then kills
// what is left, and waits until every output is read. Safe to call twice.
func (r *runState) stopClients(readers *sync.WaitGroup) {
	r.stopping.Store(true)
	r.mu.Lock()
	clients := slices.Clone(r.clients)
	r.mu.Unlock()
	for _, c := range clients {
		_ = c.resume()
		_, _ = io.WriteString(c.stdin, "stop\n")
		_ = c.stdin.Close()
	}
	deadline := time.After(10 * time.Second)
	for _, c := range clients {
		select {
		case <-c.done:
		case <-deadline:
		}
	}
	for _, c := range clients {
		c.kill()
	}
	readers.Wait()
	for _, c := range clients {
		c.mu.Lock()
		if c.cmd.ProcessState == nil {
			_ = c.cmd.Wait()
		}
		c.mu.Unlock()
		_ = c.log.Close()
	}
}

// judge merges the per-proc histories and checks the result.
func (r *runState) judge() (*Verdict, error) {
	files, err := procFiles(r.opts.OutDir)
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	histPath := filepath.Join(r.opts.OutDir, "history.jsonl")
	f, err := os.Create(histPath)
	if err != nil {
		return nil, err
	}
	if _, err := Merge(f, files); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	hr, err := history.Open(histPath)
	if err != nil {
		return nil, err
	}
	defer hr.Close()
	res, err := checker.Check(hr, checker.Options{Linearizability: r.opts.Linearizability, HTMLDir: filepath.Join(r.opts.OutDir, "linearizability")})
	if err != nil {
		return nil, fmt.Errorf("harness: the merged history is malformed: %w", err)
	}
	v := &Verdict{
		Summary:  checker.Summarize([]string{histPath}, []checker.Result{res}),
		Scenario: r.opts.Scenario.Name, Backend: r.opts.Backend, Seed: r.opts.Seed,
		Notes: append(slices.Clone(r.dep.notes), r.notes...),
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return v, os.WriteFile(filepath.Join(r.opts.OutDir, "verdict.json"), append(b, '\n'), 0o644)
}

// consulLockDelay maps the scenario's lock-delay to locks/consul's: unset
// is Consul's default (0 there), an explicit 0 is none (negative there).
func consulLockDelay(l scenario.Lock) time.Duration {
	switch {
	case !l.LockDelaySet:
		return 0
	case l.LockDelay == 0:
		return -1
	}
	return l.LockDelay
}
