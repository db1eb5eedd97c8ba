package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/locksim/locksim/checker"
	"github.com/locksim/locksim/harness"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/report"
)

func init() {
	commands["check"] = command{
		summary: "check histories for mutual-exclusion and fencing violations",
		run:     runCheck,
	}
}

func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: locksim check [--json] [--html DIR] [--linearizability=false] [--lin-timeout D] [--junit FILE] FILE|RUNDIR...")
		fs.PrintDefaults()
		fmt.Fprintln(stderr, "exit status: 0 no violation, 1 violations (or linearizability unknown), 2 bad input or usage,")
		fmt.Fprintln(stderr, "3 no violation but a history holds no event (nothing was recorded: listed in --json's \"empty\")")
	}
	asJSON := fs.Bool("json", false, "print exactly one JSON object on stdout")
	htmlDir := fs.String("html", "", "write porcupine's visualization of each non-linearizable key to `DIR` (keeps every operation in memory)")
	lin := fs.Bool("linearizability", true, "also check linearizability (lock and register models, key by key)")
	linTimeout := fs.Duration("lin-timeout", 10*time.Second, "linearizability's time limit per key and model; beyond it the result is unknown")
	junit := fs.String("junit", "", "write a JUnit XML report to `FILE`: one test case per history")
	files, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(files) == 0 {
		fmt.Fprintln(stderr, "locksim check: no history file given")
		fs.Usage()
		return exitUsage
	}
	if *linTimeout <= 0 {
		fmt.Fprintf(stderr, "locksim check: --lin-timeout must be positive, got %v (to skip linearizability: --linearizability=false)\n", *linTimeout)
		return exitUsage
	}
	opts := checker.Options{Linearizability: *lin, LinTimeout: *linTimeout, HTMLDir: *htmlDir}
	results := make([]checker.Result, 0, len(files))
	var cases []report.JUnitCase
	for _, f := range files {
		start := time.Now()
		res, err := checkFile(f, opts)
		if err != nil {
			hint := ""
			if ext := filepath.Ext(f); ext == ".yaml" || ext == ".yml" {
				hint = " (a scenario file? check reads histories; locksim sim or locksim run runs a scenario)"
			}
			fmt.Fprintf(stderr, "locksim check: %v%s\n", err, hint)
			return exitUsage
		}
		results = append(results, res)
		cases = append(cases, checkJUnitCase(f, res, time.Since(start).Seconds()))
	}
	if *junit != "" {
		if err := report.WriteJUnit(*junit, "locksim check", cases); err != nil {
			fmt.Fprintf(stderr, "locksim check: %v\n", err)
			return exitUsage
		}
	}
	sum := checker.Summarize(files, results)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(sum); err != nil {
			fmt.Fprintf(stderr, "locksim check: %v\n", err)
			return exitUsage
		}
	} else if err := sum.WriteText(stdout); err != nil {
		fmt.Fprintf(stderr, "locksim check: %v\n", err)
		return exitUsage
	}
	if !sum.OK {
		return exitViolations
	}
	if len(sum.Empty) > 0 {
		warnEmpty(stderr, "check", strings.Join(sum.Empty, ", ")+map[bool]string{true: " holds", false: " hold"}[len(sum.Empty) == 1])
		return exitEmpty
	}
	return exitOK
}

// warnEmpty is the one warning line for runs or histories that recorded
// no event; what names them ("h.jsonl holds", "3 of 100 seeds hold").
func warnEmpty(stderr io.Writer, cmd, what string) {
	fmt.Fprintf(stderr, "locksim %s: warning: %s no event: nothing was recorded, so nothing was checked (exit %d)\n", cmd, what, exitEmpty)
}

func checkFile(path string, opts checker.Options) (checker.Result, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return checkRunDir(path, opts)
	}
	r, err := history.Open(path)
	if err != nil {
		return checker.Result{}, err
	}
	defer r.Close()
	return checker.Check(r, opts)
}

// checkRunDir checks the run directory dir of locksim run: its per-proc
// histories (procs/*.jsonl, appended and flushed event by event) merged in
// time order, as the run would have merged them. A run killed mid-way
// leaves no history.jsonl, or a partial one, but every event up to the
// crash is in procs/; a torn last line of a proc file is dropped.
func checkRunDir(dir string, opts checker.Options) (checker.Result, error) {
	files, err := filepath.Glob(filepath.Join(dir, "procs", "*.jsonl"))
	if err != nil {
		return checker.Result{}, err
	}
	if len(files) == 0 {
		return checker.Result{}, fmt.Errorf("%s: a directory, but not a run directory: no procs/*.jsonl in it", dir)
	}
	sort.Strings(files)
	pr, pw := io.Pipe()
	go func() {
		_, err := harness.Merge(pw, files)
		pw.CloseWithError(err)
	}()
	defer pr.Close() // stops the merge if the check ends first
	return checker.Check(history.NewReader(pr, dir+" (merged procs/*.jsonl)"), opts)
}

// parseFlags is parseInterspersed for a subcommand: ok is false when the
// subcommand should exit at once with code (0 after -h, 2 after a bad
// flag, which parseInterspersed has reported).
func parseFlags(fs *flag.FlagSet, args []string) (pos []string, code int, ok bool) {
	pos, err := parseInterspersed(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return nil, exitOK, false
	case err != nil:
		return nil, exitUsage, false
	}
	return pos, exitOK, true
}

// parseInterspersed parses flags that may come before, between or after the
// positional arguments, and returns the positional ones. A bad flag is
// reported in one line on fs's output; -h prints the usage.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	out, usage := fs.Output(), fs.Usage
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	defer func() { fs.SetOutput(out); fs.Usage = usage }()
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(out)
				usage()
			} else {
				fmt.Fprintf(out, "locksim %s: %v (locksim %s -h: usage)\n", fs.Name(), err, fs.Name())
			}
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
