package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"gopkg.in/yaml.v3"

	"github.com/locksim/locksim/checker"
	"github.com/locksim/locksim/report"
	"github.com/locksim/locksim/scenario"
	"github.com/locksim/locksim/sim"
)

func init() {
	commands["sim"] = command{
		summary: "run a scenario in the deterministic simulator, many seeds at once",
		run:     runSim,
	}
}

func runSim(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: locksim sim SCENARIO [--backend B] [--seeds N | --seed S] [--parallel P] [--out DIR] [--keep-going] [--shrink] [--shard I/N] [--junit FILE] [--sweep FROM:TO:STEP [--max-jump PP]]")
		fs.PrintDefaults()
		fmt.Fprintln(stderr, "exit status: 0 no violation, 1 violations, 2 bad input, 3 no violation but a seed's history holds no event")
		fmt.Fprintln(stderr, "(the scenario ends before the clients do anything), 130 interrupted")
	}
	backend := fs.String("backend", "", "simulate only backend `B` (default: every backend the scenario lists)")
	seeds := fs.Uint64("seeds", 1000, "run seeds 1..`N`")
	seed := fs.Uint64("seed", 0, "run only seed `S` (replays one run exactly)")
	parallel := fs.Int("parallel", runtime.GOMAXPROCS(0), "run `P` seeds at once")
	out := fs.String("out", "", "write the history and verdict of every violating seed (or of --seed) under `DIR`/SCENARIO/BACKEND")
	keepGoing := fs.Bool("keep-going", false, "go on after the first violating seed of a backend")
	shrink := fs.Bool("shrink", false, "shrink the first violating seed of each backend to a smaller scenario (written under --out, or the current directory)")
	lin := fs.Bool("linearizability", false, "also check linearizability with porcupine (slow)")
	quiet := fs.Bool("no-progress", false, "no progress bar")
	sweepFlag := fs.String("sweep", "", "shift every fault by each of `FROM:TO:STEP` (e.g. 0:500ms:25ms) and report the violating share per shift (exit 1 if it jumps more than --max-jump between neighbours)")
	maxJump := fs.Float64("max-jump", 25, "with --sweep: the largest change of the violating share between neighbouring shifts, in percentage `points`")
	var shard shardFlag
	fs.Var(&shard, "shard", "run shard `I/N` of the seeds (I from 0) and write a result for locksim merge to --out/shard.json")
	junit := fs.String("junit", "", "write a JUnit XML report to `FILE`: one test case per backend")
	files, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	seedSet, seedsSet := false, false
	fs.Visit(func(f *flag.Flag) {
		seedSet = seedSet || f.Name == "seed"
		seedsSet = seedsSet || f.Name == "seeds"
	})
	switch {
	case len(files) != 1:
		fmt.Fprintln(stderr, "locksim sim: give exactly one scenario file")
		fs.Usage()
		return exitUsage
	case seedSet && seedsSet:
		fmt.Fprintln(stderr, "locksim sim: --seed and --seeds exclude each other")
		return exitUsage
	case !seedSet && *seeds == 0:
		fmt.Fprintln(stderr, "locksim sim: --seeds must be at least 1")
		return exitUsage
	case *parallel < 1:
		fmt.Fprintln(stderr, "locksim sim: --parallel must be at least 1")
		return exitUsage
	case shard.set && seedSet:
		fmt.Fprintln(stderr, "locksim sim: --shard splits --seeds; it excludes --seed")
		return exitUsage
	case shard.set && *shrink:
		fmt.Fprintln(stderr, "locksim sim: --shard excludes --shrink (shrink the seed the merge reports: locksim sim SCENARIO --seed S --shrink)")
		return exitUsage
	case shard.set && *out == "":
		fmt.Fprintln(stderr, "locksim sim: --shard needs --out DIR, where the shard's result goes")
		return exitUsage
	case shard.set && *junit != "":
		fmt.Fprintln(stderr, "locksim sim: --shard excludes --junit (write it when merging: locksim merge --junit FILE)")
		return exitUsage
	case *sweepFlag != "" && (shard.set || seedSet || *junit != "" || *out != "" || *shrink):
		fmt.Fprintln(stderr, "locksim sim: --sweep runs seeds 1..--seeds at every shift; it excludes --seed, --shard, --junit, --out and --shrink")
		return exitUsage
	}
	path := files[0]
	sc, err := scenario.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "locksim sim: %v\n", err)
		return exitUsage
	}
	backends := sc.Backends
	if *backend != "" {
		if !slices.Contains(sim.Backends, *backend) {
			fmt.Fprintf(stderr, "locksim sim: --backend: no model of %q (have %s)\n", *backend, strings.Join(sim.Backends, ", "))
			return exitUsage
		}
		backends = []string{*backend}
	}
	first, n := uint64(1), *seeds
	if seedSet {
		first, n = *seed, 1
	}
	if shard.set {
		first, n = report.SeedRange(*seeds, shard.index, shard.count)
		if err := startShard(*out); err != nil {
			fmt.Fprintf(stderr, "locksim sim: %v\n", err)
			return exitUsage
		}
	}
	opts := checker.Options{Linearizability: *lin}
	// Bad input (a fault target the backend has no node for) is found
	// before the sweep starts.
	for _, b := range backends {
		if err := sim.Validate(sim.Config{Scenario: sc, Backend: b, Seed: first, Checker: opts}); err != nil {
			var fe *sim.FaultError
			if errors.As(err, &fe) {
				fmt.Fprintf(stderr, "locksim sim: %s:%d: field \"faults[%d].%s\": backend %s: %s\n", path, faultLine(path, fe.Index, fe.Field), fe.Index, fe.Field, b, fe.Msg)
			} else {
				fmt.Fprintf(stderr, "locksim sim: %s: %v\n", path, err)
			}
			return exitUsage
		}
	}

	// Each run allocates a few MB that die with it: collect less often.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	// SIGINT or SIGTERM stops handing out seeds: what ran is reported (and
	// written under --out), no shrinking, exit 130.
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	if *sweepFlag != "" {
		shifts, err := parseSweep(*sweepFlag)
		if err != nil {
			fmt.Fprintf(stderr, "locksim sim: %v\n", err)
			return exitUsage
		}
		return runShiftSweep(ctx, sc, backends, shifts, n, *parallel, *maxJump, stdout, stderr)
	}
	status, empty := exitOK, false
	res := simResult{name: sc.Name, path: path}
	for _, b := range backends {
		sw := &sweep{
			sc: sc, path: path, backend: b, first: first, n: n, parallel: *parallel,
			keepGoing: *keepGoing || seedSet, opts: opts, ctx: ctx,
		}
		if !*quiet && n == 1 && sc.Duration >= longSeed && isTerminal(stderr) {
			// One long seed: a bar over its virtual time.
			bar := progressbar.NewOptions64(int64(sc.Duration/time.Second),
				progressbar.OptionSetWriter(stderr),
				progressbar.OptionSetDescription(fmt.Sprintf("seed %d of %s on %s, virtual seconds", first, sc.Name, b)),
				progressbar.OptionShowCount(),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionClearOnFinish(),
			)
			sw.progress = func(d time.Duration) { _ = bar.Set64(int64(d / time.Second)) }
			defer func() { _ = bar.Finish() }()
		}
		if !*quiet && n > 1 && isTerminal(stderr) {
			sw.bar = progressbar.NewOptions64(int64(n),
				progressbar.OptionSetWriter(stderr),
				progressbar.OptionSetDescription(fmt.Sprintf("%s on %s", sc.Name, b)),
				progressbar.OptionShowCount(),
				progressbar.OptionShowIts(),
				progressbar.OptionSetItsString("seeds"),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionClearOnFinish(),
			)
		}
		start := time.Now()
		bad := sw.run()
		elapsed := time.Since(start)
		if sw.bar != nil {
			_ = sw.bar.Finish()
		}
		ran := sw.done.Load()
		if ctx.Err() != nil {
			stopSignals() // a second signal ends the process at once
		}
		part := res.add(b, first, n, ran, elapsed.Seconds(), bad, !sw.keepGoing && len(bad) > 0)
		res.print(stdout, part, fmt.Sprintf(", %.1f s (%.0f seeds/s)", elapsed.Seconds(), float64(ran)/max(elapsed.Seconds(), 1e-9)))
		if len(bad) > 0 {
			status = exitViolations
		}
		if e := sw.empty.Load(); e > 0 {
			empty = true
			what := fmt.Sprintf("%d of %d seeds of %s on %s (the first: seed %d) hold", e, ran, sc.Name, b, sw.firstEmpty)
			if ran == 1 {
				what = fmt.Sprintf("seed %d of %s on %s holds", sw.firstEmpty, sc.Name, b)
			}
			warnEmpty(stderr, "sim", what)
		}
		if *out != "" {
			write := bad
			if seedSet && len(bad) == 0 {
				write = sw.all
			}
			for _, res := range write {
				if err := writeRun(*out, sc, opts, res); err != nil {
					fmt.Fprintf(stderr, "locksim sim: %v\n", err)
					return exitUsage
				}
			}
		}
		if ctx.Err() != nil {
			fmt.Fprintf(stderr, "locksim sim: interrupted after %d seeds of %s on %s\n", ran, sc.Name, b)
			if *junit != "" {
				if err := res.writeJUnit(*junit); err != nil {
					fmt.Fprintf(stderr, "locksim sim: %v\n", err)
				}
			}
			return exitInterrupted
		}
		if *shrink && len(bad) > 0 {
			if code := shrinkRun(ctx, stdout, stderr, sc, b, bad[0].Seed, opts, *out); code != exitOK {
				return code
			}
		}
	}
	if *junit != "" {
		if err := res.writeJUnit(*junit); err != nil {
			fmt.Fprintf(stderr, "locksim sim: %v\n", err)
			return exitUsage
		}
	}
	if shard.set {
		// A shard's verdicts are the merge's to judge: exit 0 once its
		// result is written (a Kubernetes Job retries a pod that fails).
		sh := res.shard(shard, *seeds, *keepGoing)
		if err := sh.Save(*out); err != nil {
			fmt.Fprintf(stderr, "locksim sim: %v\n", err)
			return exitUsage
		}
		fmt.Fprintf(stdout, "shard %d/%d: %s; result: %s (locksim merge DIR... combines the shards)\n",
			shard.index, shard.count, seedsText(first, n), filepath.Join(*out, report.ShardFile))
		return exitOK
	}
	if status == exitOK && empty {
		return exitEmpty
	}
	return status
}

// longSeed is the scenario duration from which locksim sim --seed shows a
// bar over the seed's virtual time (a simulated hour takes from about a
// second to a minute and a half).
const longSeed = 10 * time.Minute

// sweep runs the seeds of one backend on a pool of workers.
type sweep struct {
	sc        *scenario.Scenario
	path      string
	backend   string
	first, n  uint64
	parallel  int
	keepGoing bool
	opts      checker.Options
	bar       *progressbar.ProgressBar
	ctx       context.Context     // no seed is handed out once it ends, and a seed running stops
	progress  func(time.Duration) // with one seed: its virtual time, now and then

	next  atomic.Uint64
	done  atomic.Uint64
	empty atomic.Uint64 // seeds whose history holds no event
	stop  atomic.Bool
	mu    sync.Mutex
	bad   []*sim.Result
	all   []*sim.Result        // with one seed only
	live  []report.KeyLiveness // every seed's liveness, folded (under mu)

	firstEmpty uint64 // the lowest of the empty seeds (under mu)
}

// run returns the violating runs in seed order. Without keepGoing it stops
// handing out seeds at the first violation, and reports only the lowest
// violating seed among those that ran.
func (s *sweep) run() []*sim.Result {
	if s.ctx == nil {
		s.ctx = context.Background()
	}
	var wg sync.WaitGroup
	for range min(uint64(s.parallel), s.n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !s.stop.Load() && s.ctx.Err() == nil {
				i := s.next.Add(1) - 1
				if i >= s.n {
					return
				}
				// The sweep keeps no history; writeRun replays a seed to get it.
				res, err := sim.Run(sim.Config{Scenario: s.sc, Backend: s.backend, Seed: s.first + i, Checker: s.opts, NoHistory: true, Context: s.ctx, Progress: s.progress})
				if err != nil {
					continue // checked before the sweep, or interrupted
				}
				s.done.Add(1)
				s.mu.Lock()
				s.live = report.AddLiveness(s.live, res.Seed, res.Verdict.Liveness)
				s.mu.Unlock()
				if res.Verdict.Events == 0 {
					s.mu.Lock()
					if s.empty.Add(1) == 1 || res.Seed < s.firstEmpty {
						s.firstEmpty = res.Seed
					}
					s.mu.Unlock()
				}
				if s.bar != nil {
					_ = s.bar.Add(1)
				}
				if s.n == 1 {
					s.mu.Lock()
					s.all = append(s.all, res)
					s.mu.Unlock()
				}
				if res.OK() {
					continue
				}
				s.mu.Lock()
				s.bad = append(s.bad, res)
				s.mu.Unlock()
				if !s.keepGoing {
					s.stop.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	slices.SortFunc(s.bad, func(a, b *sim.Result) int {
		switch {
		case a.Seed < b.Seed:
			return -1
		case a.Seed > b.Seed:
			return 1
		}
		return 0
	})
	if !s.keepGoing && len(s.bad) > 1 {
		s.bad = s.bad[:1]
	}
	return s.bad
}

func kindList(res *sim.Result) string { return countsList(res.Verdict.Counts()) }

// countsList is the violation counts in checker.Kinds order: "kind ×n, ...".
func countsList(counts map[checker.Kind]int) string {
	var parts []string
	for _, k := range checker.Kinds {
		if counts[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s ×%d", k, counts[k]))
		}
	}
	return strings.Join(parts, ", ")
}

// writeRun replays res's seed with its history kept and writes
// DIR/SCENARIO/BACKEND/seed-S.jsonl and seed-S.json (the verdict, in
// locksim check --json's shape).
func writeRun(dir string, sc *scenario.Scenario, opts checker.Options, res *sim.Result) error {
	res, err := sim.Run(sim.Config{Scenario: sc, Backend: res.Backend, Seed: res.Seed, Checker: opts})
	if err != nil {
		return err
	}
	d := filepath.Join(dir, res.Scenario, res.Backend)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	base := filepath.Join(d, fmt.Sprintf("seed-%d", res.Seed))
	f, err := os.Create(base + ".jsonl")
	if err != nil {
		return err
	}
	if err := res.WriteHistory(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	sum := checker.Summarize([]string{base + ".jsonl"}, []checker.Result{res.Verdict})
	data, err := json.Marshal(sum)
	if err != nil {
		return err
	}
	return os.WriteFile(base+".json", append(data, '\n'), 0o644)
}

// shrinkRun shrinks one violating seed and writes the smaller scenario;
// if ctx ends first it gives up and returns exitInterrupted.
func shrinkRun(ctx context.Context, stdout, stderr io.Writer, sc *scenario.Scenario, backend string, seed uint64, opts checker.Options, out string) int {
	type shrunk struct {
		sr  *sim.ShrinkResult
		err error
	}
	ch := make(chan shrunk, 1)
	go func() {
		sr, err := sim.Shrink(sim.Config{Scenario: sc, Backend: backend, Seed: seed, Checker: opts}, 0)
		ch <- shrunk{sr, err}
	}()
	var sr *sim.ShrinkResult
	var err error
	select {
	case <-ctx.Done():
		fmt.Fprintf(stderr, "locksim sim: interrupted while shrinking seed %d on %s\n", seed, backend)
		return exitInterrupted
	case r := <-ch:
		sr, err = r.sr, r.err
	}
	if err != nil {
		fmt.Fprintf(stderr, "locksim sim: shrink: %v\n", err)
		return exitUsage
	}
	dir := out
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(stderr, "locksim sim: %v\n", err)
		return exitUsage
	}
	file := filepath.Join(dir, fmt.Sprintf("%s-%s-seed%d.yaml", sr.Scenario.Name, backend, seed))
	if err := scenario.Write(file, sr.Scenario); err != nil {
		fmt.Fprintf(stderr, "locksim sim: %v\n", err)
		return exitUsage
	}
	s := sr.Scenario
	fmt.Fprintf(stdout, "  shrunk in %d runs to %d faults, %d clients, %v: %s\n", sr.Runs, len(s.Faults), s.Clients, s.Duration, kindList(sr.Result))
	fmt.Fprintf(stdout, "    replay: locksim sim %s --seed %d\n", shellQuote(file), seed)
	return exitOK
}

// faultLine is the line of field in the i-th fault of the scenario file
// at path (1 if it cannot be found).
func faultLine(path string, i int, field string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 1
	}
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil || len(root.Content) == 0 {
		return 1
	}
	m := root.Content[0]
	for k := 0; k+1 < len(m.Content); k += 2 {
		if m.Content[k].Value != "faults" || i >= len(m.Content[k+1].Content) {
			continue
		}
		f := m.Content[k+1].Content[i]
		for j := 0; j+1 < len(f.Content); j += 2 {
			if f.Content[j].Value == field {
				return f.Content[j].Line
			}
		}
		return f.Line
	}
	return 1
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// shellQuote quotes s for a POSIX shell if it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=+:,@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
