package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/locksim/locksim/report"
)

func init() {
	commands["report"] = command{
		summary: "render the safety report of a saved comparison again",
		run:     runReport,
	}
}

func runReport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: locksim report [--check-baseline] [--baseline FILE] DIR")
		fmt.Fprintln(stderr, "DIR is the --out of a locksim compare: its summary.json and runs/ are read, README.md, index.html and summary.json written.")
		fs.PrintDefaults()
	}
	checkBase := fs.Bool("check-baseline", false, "exit 1, naming the cells, if a verdict differs from the baseline's")
	basePath := fs.String("baseline", filepath.Join("reports", report.BaselineFile), "the baseline `FILE`")
	dirs, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(dirs) != 1 {
		fmt.Fprintln(stderr, "locksim report: give exactly one directory")
		fs.Usage()
		return exitUsage
	}
	sum, err := report.Load(dirs[0])
	if err != nil {
		fmt.Fprintf(stderr, "locksim report: %v\n", err)
		return exitUsage
	}
	if err := report.Render(dirs[0], sum); err != nil {
		fmt.Fprintf(stderr, "locksim report: %v\n", err)
		return exitUsage
	}
	fmt.Fprintf(stdout, "%d cells; report: %s, %s, %s\n", len(sum.Cells),
		filepath.Join(dirs[0], report.MarkdownFile), filepath.Join(dirs[0], report.HTMLFile), filepath.Join(dirs[0], report.SummaryFile))
	if !*checkBase {
		return exitOK
	}
	base, err := report.LoadBaseline(*basePath)
	if err != nil {
		fmt.Fprintf(stderr, "locksim report: baseline: %v\n", err)
		return exitUsage
	}
	status := exitOK
	for _, c := range sum.Cells {
		if c.Error != "" {
			status = exitUsage
		}
	}
	status, _ = checkBaseline(stdout, stderr, base, *basePath, sum, status)
	return status
}
