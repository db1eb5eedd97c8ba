package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/locksim/locksim/harness"
	"github.com/locksim/locksim/report"
	"github.com/locksim/locksim/scenario"
)

// exitInterrupted is the exit status after SIGINT or SIGTERM.
const exitInterrupted = 130

func init() {
	commands["run"] = command{
		summary: "run scenarios on real servers and judge the histories",
		run:     runRun,
	}
	commands[harness.ClientCommand] = command{
		summary: "run one client of a run (internal: started by locksim itself)",
		hidden:  true,
		run: func(args []string, stdout, stderr io.Writer) int {
			harness.MaybeRunClient() // exits if this is a client
			fmt.Fprintf(stderr, "locksim %s: internal command, started by locksim with %s set\n", harness.ClientCommand, harness.ClientEnv)
			return exitUsage
		},
	}
}

func runRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: locksim run [--backend B] [--seed S] [--out DIR] [--linearizability] [--junit FILE] SCENARIO...")
		fs.PrintDefaults()
		fmt.Fprintln(stderr, "exit status: 0 no violation, 1 violations, 2 bad input or a run that failed,")
		fmt.Fprintln(stderr, "3 no violation but a run recorded no event, 130 interrupted")
	}
	backend := fs.String("backend", "", "run only on backend `B` (default: every backend the scenario lists)")
	seed := fs.Uint64("seed", 1, "random seed for the workload and the nemesis")
	out := fs.String("out", "runs", "write each run's history, verdict and logs under `DIR`/SCENARIO/BACKEND")
	lin := fs.Bool("linearizability", false, "also check linearizability with porcupine")
	junit := fs.String("junit", "", "write a JUnit XML report to `FILE`: one test case per scenario and backend")
	files, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(files) == 0 {
		fmt.Fprintln(stderr, "locksim run: no scenario file given")
		fs.Usage()
		return exitUsage
	}
	// Validate every file before anything starts.
	var scens []*scenario.Scenario
	for _, f := range files {
		s, err := scenario.Load(f)
		if err != nil {
			fmt.Fprintf(stderr, "locksim run: %v\n", err)
			return exitUsage
		}
		if *backend != "" && !slices.Contains(s.Backends, *backend) {
			fmt.Fprintf(stderr, "locksim run: %s:%d: field \"backends\": scenario %s does not list backend %q (it lists %s)\n", f, scenario.FieldLine(f, "backends"), s.Name, *backend, strings.Join(s.Backends, ", "))
			return exitUsage
		}
		scens = append(scens, s)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	status, empty := exitOK, false
	var cases []report.JUnitCase
	// The JUnit file covers the runs that finished, whatever ends the loop.
	writeJUnit := func() {
		if *junit == "" {
			return
		}
		if err := report.WriteJUnit(*junit, "locksim run", cases); err != nil {
			fmt.Fprintf(stderr, "locksim run: %v\n", err)
			status = exitUsage
		}
	}
	for i, s := range scens {
		backends := s.Backends
		if *backend != "" {
			backends = []string{*backend}
		}
		for _, b := range backends {
			dir := filepath.Join(*out, s.Name, b)
			start := time.Now()
			v, err := harness.Run(ctx, harness.Options{Scenario: s, Backend: b, Seed: *seed, OutDir: dir, Progress: stderr, Linearizability: *lin})
			if v != nil {
				fmt.Fprintf(stdout, "== %s on %s (seed %d): %s\n", s.Name, b, *seed, dir)
				_ = v.WriteText(stdout)
				for _, n := range v.Notes {
					fmt.Fprintf(stdout, "note: %s\n", n)
				}
				if !v.OK && status == exitOK {
					status = exitViolations
				}
				if len(v.Empty) > 0 {
					empty = true
					warnEmpty(stderr, "run", fmt.Sprintf("the run of %s on %s holds", s.Name, b))
				}
			}
			if ctx.Err() != nil {
				fmt.Fprintln(stderr, "locksim run: interrupted; the history so far is in", dir)
				writeJUnit()
				return exitInterrupted
			}
			cases = append(cases, runJUnitCase(files[i], s.Name, b, *seed, dir, v, err, time.Since(start).Seconds()))
			if err != nil {
				fmt.Fprintf(stderr, "locksim run: %s on %s: %s\n", s.Name, b, harness.Redact(err.Error()))
				writeJUnit()
				return exitUsage
			}
		}
	}
	writeJUnit()
	if status == exitOK && empty {
		return exitEmpty
	}
	return status
}
