package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/locksim/locksim/report"
)

func init() {
	commands["agree"] = command{
		summary: "compare a simulator comparison with a real one, cell by cell",
		run:     runAgree,
	}
}

// runAgree prints the verdicts of two saved comparisons (locksim compare
// --sim and --real) side by side; exit 1 if any cell both ran disagrees.
func runAgree(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("agree", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: locksim agree SIM_DIR REAL_DIR") }
	dirs, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(dirs) != 2 {
		fs.Usage()
		return exitUsage
	}
	sim, err := report.Load(dirs[0])
	if err != nil {
		fmt.Fprintf(stderr, "locksim agree: %v\n", err)
		return exitUsage
	}
	real, err := report.Load(dirs[1])
	if err != nil {
		fmt.Fprintf(stderr, "locksim agree: %v\n", err)
		return exitUsage
	}
	if sim.Mode != report.ModeSim || real.Mode != report.ModeReal {
		fmt.Fprintf(stderr, "locksim agree: want a simulator comparison then a real one, got %s and %s\n", sim.Mode, real.Mode)
		return exitUsage
	}
	bad, err := report.WriteAgreement(stdout, report.Agree(sim, real))
	if err != nil {
		fmt.Fprintf(stderr, "locksim agree: %v\n", err)
		return exitUsage
	}
	if bad > 0 {
		return exitViolations
	}
	return exitOK
}
