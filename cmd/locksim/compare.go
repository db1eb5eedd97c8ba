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
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/locksim/locksim/checker"
	"github.com/locksim/locksim/harness"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/report"
	"github.com/locksim/locksim/scenario"
	"github.com/locksim/locksim/sim"
)

// defaultCompareSeeds is the seeds per cell of a simulator comparison
// when neither --seeds nor a baseline says otherwise.
const defaultCompareSeeds = 200

func init() {
	commands["compare"] = command{
		summary: "run every backend through every scenario and write a safety report",
		run:     runCompare,
	}
}

// compareCell is one cell to run.
type compareCell struct {
	sc      *scenario.Scenario
	file    string
	backend string
}

func runCompare(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: locksim compare [--sim|--real] [--scenarios DIR|FILE,...] [--backends B,...] [--seeds N] [--seed S] [--out DIR] [--check-baseline] [--write-baseline] [--baseline FILE] [--shard I/N] [--junit FILE] [--runs R]")
		fs.PrintDefaults()
	}
	useSim := fs.Bool("sim", false, "run the simulator, --seeds seeds per cell (the default)")
	useReal := fs.Bool("real", false, "run on real servers, --runs runs per cell, the scenario as written")
	scens := fs.String("scenarios", "scenarios", "the scenario files: a directory (its *.yaml), or files and directories separated by commas")
	backends := fs.String("backends", "", "only these backends, separated by commas (default: every backend each scenario lists)")
	seeds := fs.Uint64("seeds", 0, fmt.Sprintf("sim: seeds 1..`N` per cell (default: the baseline's with --check-baseline, else %d)", defaultCompareSeeds))
	seed := fs.Uint64("seed", 1, "real: the seed of the first run of every cell (the next runs take the next seeds)")
	runs := fs.Uint64("runs", 1, "real: runs per cell, seeds --seed.. (a verdict is the kinds of any run; locksim agree compares each kind's share of runs with the simulator's)")
	out := fs.String("out", "", "write the report and each cell's run under `DIR` (default reports, or reports/real with --real)")
	parallel := fs.Int("parallel", runtime.GOMAXPROCS(0), "sim: run `P` seeds at once")
	lin := fs.Bool("linearizability", false, "also check linearizability with porcupine (sim: of the run drawn for each cell; real: of every run)")
	checkBase := fs.Bool("check-baseline", false, "exit 1, naming the cells, if a verdict differs from the baseline's")
	writeBase := fs.Bool("write-baseline", false, "record this comparison's verdicts in the baseline")
	basePath := fs.String("baseline", filepath.Join("reports", report.BaselineFile), "the baseline `FILE`")
	quiet := fs.Bool("no-progress", false, "no progress bar")
	var shard shardFlag
	fs.Var(&shard, "shard", "run shard `I/N` (I from 0: sim, a block of every cell's seeds; real, every N-th cell) and write a result for locksim merge to --out/shard.json instead of the report")
	junit := fs.String("junit", "", "write a JUnit XML report to `FILE`: one test case per cell (with --check-baseline, failing only where the verdict changed)")
	rest, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	switch {
	case len(rest) > 0:
		fmt.Fprintf(stderr, "locksim compare: unexpected argument %q (scenarios go in --scenarios)\n", rest[0])
		return exitUsage
	case *useSim && *useReal:
		fmt.Fprintln(stderr, "locksim compare: --sim and --real exclude each other")
		return exitUsage
	case *parallel < 1:
		fmt.Fprintln(stderr, "locksim compare: --parallel must be at least 1")
		return exitUsage
	case *runs < 1:
		fmt.Fprintln(stderr, "locksim compare: --runs must be at least 1")
		return exitUsage
	case *runs > 1 && !*useReal:
		fmt.Fprintln(stderr, "locksim compare: --runs is for --real (the simulator takes --seeds)")
		return exitUsage
	case shard.set && (*checkBase || *writeBase || *junit != ""):
		fmt.Fprintln(stderr, "locksim compare: --shard excludes --check-baseline, --write-baseline and --junit (give them to locksim merge)")
		return exitUsage
	}
	mode := report.ModeSim
	if *useReal {
		mode = report.ModeReal
	}
	if *out == "" {
		*out = "reports"
		if mode == report.ModeReal {
			*out = filepath.Join("reports", "real")
		}
	}
	var base *report.Baseline
	var err error
	if *checkBase || *writeBase {
		base, err = report.LoadBaseline(*basePath)
		switch {
		case errors.Is(err, os.ErrNotExist) && !*checkBase:
			base = &report.Baseline{}
		case err != nil:
			fmt.Fprintf(stderr, "locksim compare: baseline: %v\n", err)
			return exitUsage
		}
	}
	if mode == report.ModeSim && *seeds == 0 {
		*seeds = defaultCompareSeeds
		if *checkBase && base.Sim != nil && base.Sim.Seeds > 0 {
			*seeds = base.Sim.Seeds
		}
	}

	cells, sum, err := planCompare(mode, *scens, *backends)
	if err != nil {
		fmt.Fprintf(stderr, "locksim compare: %v\n", err)
		return exitUsage
	}
	sum.Seeds, sum.Seed = *seeds, *seed
	if mode == report.ModeReal {
		sum.Seeds = 0
	} else {
		sum.Seed = 0
	}
	// The runs of an earlier comparison in the same place would mix with
	// this one's.
	if err := os.RemoveAll(filepath.Join(*out, report.RunsDir)); err != nil {
		fmt.Fprintf(stderr, "locksim compare: %v\n", err)
		return exitUsage
	}
	var plan []string
	for _, cc := range cells {
		plan = append(plan, cc.sc.Name+"/"+cc.backend)
	}
	first, n := uint64(1), *seeds
	if shard.set {
		if err := startShard(*out); err != nil {
			fmt.Fprintf(stderr, "locksim compare: %v\n", err)
			return exitUsage
		}
		if mode == report.ModeSim {
			first, n = report.SeedRange(*seeds, shard.index, shard.count)
		} else {
			mine := cells[:0:0]
			for i, cc := range cells {
				if report.RealCell(i, shard.index, shard.count) {
					mine = append(mine, cc)
				}
			}
			cells = mine
		}
	}
	times := map[string]float64{}
	var parts []report.ShardPart

	var bar *progressbar.ProgressBar
	total := int64(len(cells))
	if mode == report.ModeSim {
		total *= int64(n)
	}
	if !*quiet && isTerminal(stderr) {
		bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(stderr),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString(map[bool]string{true: "seeds", false: "runs"}[mode == report.ModeSim]),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	if mode == report.ModeSim {
		defer debug.SetGCPercent(debug.SetGCPercent(400))
	}
	for _, cc := range cells {
		if bar != nil {
			bar.Describe(fmt.Sprintf("%s on %s", cc.sc.Name, cc.backend))
		} else if mode == report.ModeReal && !*quiet {
			fmt.Fprintf(stderr, "locksim compare: %s on %s ...\n", cc.sc.Name, cc.backend)
		}
		var c report.Cell
		cellStart := time.Now()
		if mode == report.ModeSim {
			c, err = compareSim(ctx, cc, first, n, *parallel, *lin, *out, bar)
		} else {
			c, err = compareReal(ctx, cc, *seed, *runs, *lin, *out)
			if bar != nil {
				_ = bar.Add(1)
			}
		}
		if ctx.Err() != nil {
			if bar != nil {
				_ = bar.Finish()
			}
			if shard.set {
				fmt.Fprintln(stderr, "locksim compare: interrupted; the shard wrote no result")
				return exitInterrupted
			}
			fmt.Fprintln(stderr, "locksim compare: interrupted; the report covers the cells that ran")
			if err := report.Render(*out, sum); err != nil {
				fmt.Fprintf(stderr, "locksim compare: %v\n", err)
			}
			if *junit != "" {
				if err := report.WriteJUnit(*junit, "locksim compare --"+mode, report.JUnitCases(sum, nil, times)); err != nil {
					fmt.Fprintf(stderr, "locksim compare: %v\n", err)
				}
			}
			return exitInterrupted
		}
		if err != nil {
			c.Error = err.Error()
		}
		if c.Kinds == nil {
			c.Kinds = []checker.Kind{}
		}
		sum.Cells = append(sum.Cells, c)
		times[c.Name()] = time.Since(cellStart).Seconds()
		part := report.ShardPart{Cell: c.Name(), First: first, Seeds: n, Time: times[c.Name()]}
		if mode == report.ModeReal {
			part.First, part.Seeds = *seed, *runs
		}
		parts = append(parts, part)
	}
	if bar != nil {
		_ = bar.Finish()
	}
	if shard.set {
		printCells(stdout, mode, sum)
		sh := &report.Shard{Command: report.ShardCompare, Index: shard.index, Count: shard.count, Plan: plan, Summary: *sum, Parts: parts}
		if err := sh.Save(*out); err != nil {
			fmt.Fprintf(stderr, "locksim compare: %v\n", err)
			return exitUsage
		}
		what := fmt.Sprintf("%s of each of %d cells", seedsText(first, n), len(plan))
		if mode == report.ModeReal {
			what = fmt.Sprintf("%d of %d cells", len(sum.Cells), len(plan))
		}
		// A shard's verdicts are the merge's to judge: exit 0 once its
		// result is written (a Kubernetes Job retries a pod that fails).
		fmt.Fprintf(stdout, "shard %d/%d: %s in %.1f s; result: %s (locksim merge DIR... writes the report)\n",
			shard.index, shard.count, what, time.Since(start).Seconds(), filepath.Join(*out, report.ShardFile))
		return exitOK
	}
	headline := fmt.Sprintf("%d cells in %.1f s", len(sum.Cells), time.Since(start).Seconds())
	return finishCompare(stdout, stderr, "locksim compare", sum, *out, headline, compareOutputs{
		writeBase: *writeBase, checkBase: *checkBase, base: base, basePath: *basePath, junit: *junit, times: times})
}

// compareOutputs is what a comparison writes besides its report.
type compareOutputs struct {
	writeBase, checkBase bool
	base                 *report.Baseline
	basePath             string
	junit                string
	times                map[string]float64 // seconds per cell, for the JUnit file
}

// printCells prints one line per skipped cell and per cell, and returns
// the exit status the verdicts give.
func printCells(stdout io.Writer, mode string, sum *report.Summary) int {
	status := exitOK
	for _, k := range sum.Skipped {
		fmt.Fprintf(stdout, "%s on %s: not run: %s\n", k.Scenario, k.Backend, k.Reason)
	}
	for i := range sum.Cells {
		c := &sum.Cells[i]
		switch {
		case c.Error != "":
			fmt.Fprintf(stdout, "%s on %s: error: %s\n", c.Scenario, c.Backend, c.Error)
			status = exitUsage
		case len(c.Kinds) > 0:
			fmt.Fprintf(stdout, "%s on %s: %s\n", c.Scenario, c.Backend, cellLine(mode, c))
			if status == exitOK {
				status = exitViolations
			}
		default:
			fmt.Fprintf(stdout, "%s on %s: safe\n", c.Scenario, c.Backend)
		}
	}
	return status
}

// finishCompare prints the verdicts of a whole comparison (run, or merged
// from shards), renders its report into out, records or checks the
// baseline and writes the JUnit file; it returns the exit status.
func finishCompare(stdout, stderr io.Writer, cmd string, sum *report.Summary, out, headline string, o compareOutputs) int {
	mode := sum.Mode
	sum.Sort()
	status := printCells(stdout, mode, sum)
	if err := report.Render(out, sum); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return exitUsage
	}
	fmt.Fprintf(stdout, "%s; report: %s, %s, %s\n", headline,
		filepath.Join(out, report.MarkdownFile), filepath.Join(out, report.HTMLFile), filepath.Join(out, report.SummaryFile))
	if o.writeBase {
		o.base.Record(sum)
		if err := o.base.Save(o.basePath); err != nil {
			fmt.Fprintf(stderr, "%s: baseline: %v\n", cmd, err)
			return exitUsage
		}
		fmt.Fprintf(stdout, "baseline %s: recorded the %s verdicts of %d cells\n", o.basePath, mode, len(sum.Cells))
	}
	var changes []report.Change
	if o.checkBase {
		status, changes = checkBaseline(stdout, stderr, o.base, o.basePath, sum, status)
	}
	if o.junit != "" {
		// Named alike whether run or merged, so that the files compare.
		if err := report.WriteJUnit(o.junit, "locksim compare --"+mode, report.JUnitCases(sum, changes, o.times)); err != nil {
			fmt.Fprintf(stderr, "%s: junit: %v\n", cmd, err)
			return exitUsage
		}
	}
	return status
}

// checkBaseline compares sum with the baseline and returns the exit
// status: 1 if a cell changed, 2 if the baseline does not apply or a cell
// could not run, else 0 (violations the baseline expects are no failure);
// and the changed cells (nil if the baseline does not apply).
func checkBaseline(stdout, stderr io.Writer, base *report.Baseline, path string, sum *report.Summary, status int) (int, []report.Change) {
	changes, err := base.Check(sum)
	if err != nil {
		fmt.Fprintf(stderr, "locksim compare: baseline %s: %v\n", path, err)
		return exitUsage, nil
	}
	if changes == nil {
		changes = []report.Change{}
	}
	if len(changes) > 0 {
		fmt.Fprintf(stdout, "baseline %s: %s changed:\n", path, map[bool]string{true: "1 cell", false: fmt.Sprintf("%d cells", len(changes))}[len(changes) == 1])
		for _, c := range changes {
			fmt.Fprintf(stdout, "  %s\n", c)
		}
		fmt.Fprintf(stdout, "if the change is intended, record it with --write-baseline and commit %s\n", path)
		return exitViolations, changes
	}
	if status == exitUsage {
		return exitUsage, changes
	}
	checked := 0
	mb := base.Mode(sum.Mode)
	for _, c := range sum.Cells {
		if _, ok := mb.Cells[c.Name()]; ok {
			checked++
		}
	}
	fmt.Fprintf(stdout, "baseline %s: the %d cells it lists are as expected\n", path, checked)
	return exitOK, changes
}

func cellLine(mode string, c *report.Cell) string {
	var parts []string
	for _, k := range c.Kinds {
		if mode == report.ModeSim {
			parts = append(parts, fmt.Sprintf("%s %d/%d seeds ×%d", k, c.SeedsWithKind[k], c.Seeds, c.Counts[k]))
		} else if c.SeedsWithKind != nil {
			parts = append(parts, fmt.Sprintf("%s %d/%d runs ×%d", k, c.SeedsWithKind[k], c.Seeds, c.Counts[k]))
		} else {
			parts = append(parts, fmt.Sprintf("%s ×%d", k, c.Counts[k]))
		}
	}
	s := strings.Join(parts, ", ")
	if c.Shown != nil {
		s += "\n  replay: " + c.Shown.Replay
	}
	return s
}

// planCompare loads the scenarios and lists the cells, every file checked
// before anything runs.
func planCompare(mode, scens, backends string) ([]compareCell, *report.Summary, error) {
	var files []string
	for _, p := range strings.Split(scens, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, nil, fmt.Errorf("--scenarios: %w", err)
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		m, err := filepath.Glob(filepath.Join(p, "*.yaml"))
		if err != nil {
			return nil, nil, err
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		return nil, nil, fmt.Errorf("--scenarios %s: no scenario files", scens)
	}
	known := scenario.Backends
	if mode == report.ModeSim {
		known = sim.Backends
	}
	var want []string
	for _, b := range strings.Split(backends, ",") {
		if b = strings.TrimSpace(b); b == "" {
			continue
		}
		if !slices.Contains(known, b) {
			return nil, nil, fmt.Errorf("--backends: unknown backend %q (have %s)", b, strings.Join(known, ", "))
		}
		want = append(want, b)
	}
	sum := &report.Summary{Mode: mode}
	var cells []compareCell
	used := map[string]bool{}
	names := map[string]string{}
	var loaded []*scenario.Scenario
	for _, f := range files {
		sc, err := scenario.Load(f)
		if err != nil {
			return nil, nil, err
		}
		if prev, ok := names[sc.Name]; ok {
			return nil, nil, fmt.Errorf("%s: scenario name %q is also that of %s", f, sc.Name, prev)
		}
		names[sc.Name] = f
		var bs []string
		for _, b := range sc.Backends {
			if (len(want) == 0 || slices.Contains(want, b)) && slices.Contains(known, b) {
				bs = append(bs, b)
			}
		}
		if mode == report.ModeSim {
			runnable := bs[:0]
			for _, b := range bs {
				skip, err := simValidate(f, sc, b)
				if err != nil {
					return nil, nil, err
				}
				if skip != "" {
					sum.Skipped = append(sum.Skipped, report.Skip{Scenario: sc.Name, Backend: b, Reason: skip})
					continue
				}
				runnable = append(runnable, b)
			}
			bs = runnable
		}
		if len(bs) == 0 {
			continue
		}
		sum.Scenarios = append(sum.Scenarios, report.ScenarioInfo{Name: sc.Name, File: filepath.ToSlash(f), Description: strings.TrimSpace(sc.Description),
			Fencing: string(sc.Workload.Fencing.Mode())})
		loaded = append(loaded, sc)
		for _, b := range bs {
			used[b] = true
			cells = append(cells, compareCell{sc: sc, file: f, backend: b})
		}
	}
	if len(cells) == 0 {
		return nil, nil, fmt.Errorf("no scenario in %s runs on the backends asked for%s", scens, map[bool]string{true: " in the simulator", false: ""}[len(sum.Skipped) > 0])
	}
	for i, fam := range scenario.Families(loaded) {
		sum.Scenarios[i].Family = fam
	}
	slices.SortStableFunc(sum.Scenarios, func(a, b report.ScenarioInfo) int { return strings.Compare(a.Name, b.Name) })
	for _, b := range known {
		if used[b] {
			sum.Backends = append(sum.Backends, b)
		}
	}
	return cells, sum, nil
}

// simValidate sets seed 1 up without running it (sim.Validate): a fault
// target the backend has no node for is bad input, found before the
// comparison starts. Any other refusal (a workload the simulator does not
// model) is returned as the reason to skip the cell.
func simValidate(path string, sc *scenario.Scenario, backend string) (skip string, err error) {
	err = sim.Validate(sim.Config{Scenario: sc, Backend: backend, Seed: 1})
	var fe *sim.FaultError
	if errors.As(err, &fe) {
		return "", fmt.Errorf("%s:%d: field \"faults[%d].%s\": backend %s: %s", path, faultLine(path, fe.Index, fe.Field), fe.Index, fe.Field, backend, fe.Msg)
	}
	if err != nil {
		return err.Error(), nil
	}
	return "", nil
}

// compareSim sweeps seeds first..first+n-1 of one cell and replays the
// first violating seed (or seed 1, if it is among them) with its history
// kept, under out/runs.
func compareSim(ctx context.Context, cc compareCell, first, n uint64, parallel int, lin bool, out string, bar *progressbar.ProgressBar) (report.Cell, error) {
	c := report.Cell{Scenario: cc.sc.Name, Backend: cc.backend, Seeds: n,
		Counts: map[checker.Kind]int{}, SeedsWithKind: map[checker.Kind]int{}, Notes: cc.sc.Notes(cc.backend)}
	sw := &sweep{sc: cc.sc, path: cc.file, backend: cc.backend, first: first, n: n, parallel: parallel, keepGoing: true, bar: bar, ctx: ctx}
	bad := sw.run()
	if ctx.Err() != nil {
		return c, ctx.Err()
	}
	if got := sw.done.Load(); got != n {
		return c, fmt.Errorf("%d of %d seeds failed to run", n-got, n)
	}
	c.Violating = uint64(len(bad))
	c.Liveness = sw.live
	shown := uint64(1)
	for _, res := range bad {
		for k, v := range res.Verdict.Counts() {
			c.Counts[k] += v
			c.SeedsWithKind[k]++
		}
	}
	if len(bad) > 0 {
		shown = bad[0].Seed
	}
	c.Kinds = kindsOf(c.Counts)
	if len(bad) == 0 && (first != 1 || n == 0) {
		return c, nil // a shard without seed 1 draws no run unless one violates
	}
	dir := filepath.Join(report.RunsDir, cc.sc.Name, cc.backend)
	abs := filepath.Join(out, dir)
	res, err := sim.Run(sim.Config{Scenario: cc.sc, Backend: cc.backend, Seed: shown})
	if err != nil {
		return c, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return c, err
	}
	f, err := os.Create(filepath.Join(abs, report.HistoryFile))
	if err != nil {
		return c, err
	}
	if err := res.WriteHistory(f); err != nil {
		f.Close()
		return c, err
	}
	if err := f.Close(); err != nil {
		return c, err
	}
	// Checked again from the file, so that the violations name its lines.
	hist := filepath.Join(abs, report.HistoryFile)
	hr, err := history.Open(hist)
	if err != nil {
		return c, err
	}
	verdict, err := checker.Check(hr, checker.Options{Linearizability: lin, HTMLDir: filepath.Join(abs, "linearizability")})
	hr.Close()
	if err != nil {
		return c, err
	}
	v := harness.Verdict{
		Summary:  checker.Summarize([]string{hist}, []checker.Result{verdict}),
		Scenario: cc.sc.Name, Backend: cc.backend, Seed: shown, Notes: c.Notes,
	}
	if err := writeVerdict(filepath.Join(abs, "verdict.json"), &v); err != nil {
		return c, err
	}
	c.Shown = shownRun(out, dir, shown, fmt.Sprintf("locksim sim %s --backend %s --seed %d", shellQuote(filepath.ToSlash(cc.file)), cc.backend, shown), cc.sc, v.Violations, v.Linearizability)
	return c, nil
}

// compareReal runs one cell on real servers with harness.Run, runs times
// with the seeds first, first+1, …: each run is one sample of the cell,
// and the cell counts, per kind, the runs that showed it. The report
// draws the first violating run (else the first). With one run its
// directory is runs/SCENARIO/BACKEND, with more runs/SCENARIO/BACKEND/seed-S.
func compareReal(ctx context.Context, cc compareCell, first, runs uint64, lin bool, out string) (report.Cell, error) {
	c := report.Cell{Scenario: cc.sc.Name, Backend: cc.backend, Counts: map[checker.Kind]int{}}
	if runs > 1 {
		c.SeedsWithKind = map[checker.Kind]int{}
	}
	for seed := first; seed < first+runs; seed++ {
		dir := filepath.Join(report.RunsDir, cc.sc.Name, cc.backend)
		if runs > 1 {
			dir = filepath.Join(dir, fmt.Sprintf("seed-%d", seed))
		}
		v, err := harness.Run(ctx, harness.Options{Scenario: cc.sc, Backend: cc.backend, Seed: seed, OutDir: filepath.Join(out, dir), Linearizability: lin})
		if v == nil {
			if err == nil {
				err = errors.New("no verdict")
			}
			return c, err
		}
		c.Seeds++
		c.Liveness = report.AddLiveness(c.Liveness, seed, v.Liveness)
		seen := map[checker.Kind]bool{}
		for _, x := range v.Violations {
			c.Counts[x.Kind]++
			seen[x.Kind] = true
		}
		for k := range seen {
			if c.SeedsWithKind != nil {
				c.SeedsWithKind[k]++
			}
		}
		for _, n := range v.Notes {
			if !slices.Contains(c.Notes, n) {
				c.Notes = append(c.Notes, n)
			}
		}
		if len(seen) > 0 {
			c.Violating++
		}
		if c.Shown == nil || len(seen) > 0 && len(c.Shown.Violations) == 0 {
			c.Shown = shownRun(out, dir, seed, fmt.Sprintf("locksim run --backend %s --seed %d %s", cc.backend, seed, shellQuote(filepath.ToSlash(cc.file))), cc.sc, v.Violations, v.Linearizability)
		}
		if err != nil || ctx.Err() != nil {
			c.Kinds = kindsOf(c.Counts)
			return c, err
		}
	}
	c.Kinds = kindsOf(c.Counts)
	return c, nil
}

// shownRun describes the run a cell's report draws; paths are made
// relative to the comparison directory out.
func shownRun(out, dir string, seed uint64, replay string, sc *scenario.Scenario, vs []checker.Violation, ls []checker.LinResult) *report.Run {
	r := &report.Run{Seed: seed, Dir: filepath.ToSlash(dir), Replay: replay, TTL: int64(sc.Lock.TTL), Violations: vs}
	if r.Violations == nil {
		r.Violations = []checker.Violation{}
	}
	for i := range r.Violations {
		r.Violations[i].File = ""
	}
	for _, l := range ls {
		l.File = ""
		if l.HTML != "" {
			if rel, err := filepath.Rel(out, l.HTML); err == nil {
				l.HTML = filepath.ToSlash(rel)
			}
		}
		r.Linearizability = append(r.Linearizability, l)
	}
	return r
}

func kindsOf(counts map[checker.Kind]int) []checker.Kind {
	out := []checker.Kind{}
	for _, k := range checker.Kinds {
		if counts[k] > 0 {
			out = append(out, k)
		}
	}
	return out
}

func writeVerdict(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
