package main

import (
	"fmt"
	"strings"

	"github.com/locksim/locksim/checker"
	"github.com/locksim/locksim/harness"
	"github.com/locksim/locksim/report"
)

// JUnit test cases of locksim check (one per history) and locksim run (one
// per scenario and backend); compare's are report.JUnitCases, sim's
// simResult.writeJUnit.

// verdictMessage names what failed in a verdict: the violation kinds and
// the linearizability checks that failed or timed out ("" if none did).
func verdictMessage(sum *checker.Summary) string {
	counts := map[checker.Kind]int{}
	for _, v := range sum.Violations {
		counts[v.Kind]++
	}
	var parts []string
	for _, k := range kindsOf(counts) {
		parts = append(parts, string(k))
	}
	var illegal, unknown bool
	for _, l := range sum.Linearizability {
		illegal = illegal || l.Result == checker.LinIllegal
		unknown = unknown || l.Result == checker.LinUnknown
	}
	if illegal {
		parts = append(parts, "not linearizable")
	}
	if unknown {
		parts = append(parts, "linearizability unknown")
	}
	return strings.Join(parts, ", ")
}

// checkJUnitCase is one history of locksim check.
func checkJUnitCase(file string, res checker.Result, seconds float64) report.JUnitCase {
	sum := checker.Summarize([]string{file}, []checker.Result{res})
	var b strings.Builder
	_ = sum.WriteText(&b)
	fmt.Fprintf(&b, "replay: locksim check %s\n", shellQuote(file))
	tc := report.JUnitCase{Name: file, Classname: "locksim.check", Time: report.JUnitTime(seconds)}
	if sum.OK {
		tc.SystemOut = b.String()
	} else {
		tc.Failure = &report.JUnitProblem{Message: verdictMessage(&sum), Type: "violation", Text: b.String()}
	}
	return tc
}

// runJUnitCase is one run of locksim run: it fails on a violation, is an
// error if the run could not finish.
func runJUnitCase(file, scenario, backend string, seed uint64, dir string, v *harness.Verdict, runErr error, seconds float64) report.JUnitCase {
	tc := report.JUnitCase{Name: scenario + "/" + backend, Classname: "locksim.run", Time: report.JUnitTime(seconds)}
	var b strings.Builder
	if v != nil {
		_ = v.WriteText(&b)
		for _, n := range v.Notes {
			fmt.Fprintf(&b, "note: %s\n", n)
		}
	}
	fmt.Fprintf(&b, "replay: locksim run --backend %s --seed %d %s\n", backend, seed, shellQuote(file))
	fmt.Fprintf(&b, "history: %s\n", dir)
	switch {
	case runErr != nil:
		tc.Error = &report.JUnitProblem{Message: harness.Redact(runErr.Error()), Type: "error", Text: b.String()}
	case v == nil:
		tc.Error = &report.JUnitProblem{Message: "no verdict", Type: "error", Text: b.String()}
	case !v.OK:
		tc.Failure = &report.JUnitProblem{Message: verdictMessage(&v.Summary), Type: "violation", Text: b.String()}
	default:
		tc.SystemOut = b.String()
	}
	return tc
}
