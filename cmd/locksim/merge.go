package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/locksim/locksim/report"
)

func init() {
	commands["merge"] = command{
		summary: "combine the shards of a sharded sim or compare into one result",
		run:     runMerge,
	}
}

func runMerge(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("merge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: locksim merge [--out DIR] [--junit FILE] [--check-baseline] [--write-baseline] [--baseline FILE] DIR...")
		fmt.Fprintln(stderr, "Each DIR is the --out of one shard (locksim sim or compare --shard I/N), or a directory of such directories.")
		fs.PrintDefaults()
	}
	out := fs.String("out", "", "write the merged result under `DIR` (compare: the report, default reports or reports/real; sim: the violating seeds' histories)")
	junit := fs.String("junit", "", "write a JUnit XML report to `FILE`, as the unsharded command would")
	checkBase := fs.Bool("check-baseline", false, "compare: exit 1, naming the cells, if a verdict differs from the baseline's")
	writeBase := fs.Bool("write-baseline", false, "compare: record the merged verdicts in the baseline")
	basePath := fs.String("baseline", filepath.Join("reports", report.BaselineFile), "the baseline `FILE`")
	dirs, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(dirs) == 0 {
		fmt.Fprintln(stderr, "locksim merge: no shard directory given")
		fs.Usage()
		return exitUsage
	}
	shardDirs, err := report.FindShards(dirs)
	if err != nil {
		fmt.Fprintf(stderr, "locksim merge: %v\n", err)
		return exitUsage
	}
	shards := make([]*report.Shard, len(shardDirs))
	for i, d := range shardDirs {
		if shards[i], err = report.LoadShard(d); err != nil {
			fmt.Fprintf(stderr, "locksim merge: %v\n", err)
			return exitUsage
		}
	}
	m, err := report.MergeShards(shardDirs, shards)
	if err != nil {
		fmt.Fprintf(stderr, "locksim merge: %v\n", err)
		return exitUsage
	}
	if m.Command != report.ShardSim && *out == "" {
		*out = "reports"
		if m.Summary.Mode == report.ModeReal {
			*out = filepath.Join("reports", "real")
		}
	}
	for _, d := range shardDirs {
		if *out != "" && sameDir(d, *out) {
			fmt.Fprintf(stderr, "locksim merge: --out %s is a shard's directory; give another\n", *out)
			return exitUsage
		}
	}
	if m.Command == report.ShardSim {
		if *checkBase || *writeBase {
			fmt.Fprintln(stderr, "locksim merge: --check-baseline and --write-baseline are for shards of locksim compare")
			return exitUsage
		}
		return mergeSim(stdout, stderr, m, shardDirs, *out, *junit)
	}

	sum := m.Summary
	var base *report.Baseline
	if *checkBase || *writeBase {
		base, err = report.LoadBaseline(*basePath)
		switch {
		case errors.Is(err, os.ErrNotExist) && !*checkBase:
			base = &report.Baseline{}
		case err != nil:
			fmt.Fprintf(stderr, "locksim merge: baseline: %v\n", err)
			return exitUsage
		}
	}
	// The drawn runs come from the shards that ran them, as compare
	// would have left them under out/runs.
	if err := os.RemoveAll(filepath.Join(*out, report.RunsDir)); err != nil {
		fmt.Fprintf(stderr, "locksim merge: %v\n", err)
		return exitUsage
	}
	times := map[string]float64{}
	for i, c := range sum.Cells {
		times[c.Name()] = m.Parts[i].Time
		from, ok := m.From[c.Name()]
		if !ok {
			continue
		}
		rel := filepath.Join(report.RunsDir, c.Scenario, c.Backend)
		if err := os.CopyFS(filepath.Join(*out, rel), os.DirFS(filepath.Join(shardDirs[from], rel))); err != nil {
			fmt.Fprintf(stderr, "locksim merge: %s: %v\n", shardDirs[from], err)
			return exitUsage
		}
	}
	headline := fmt.Sprintf("%d cells merged from %d shards", len(sum.Cells), m.Count)
	return finishCompare(stdout, stderr, "locksim merge", sum, *out, headline, compareOutputs{
		writeBase: *writeBase, checkBase: *checkBase, base: base, basePath: *basePath, junit: *junit, times: times})
}

// mergeSim prints the merged shards of a locksim sim as the unsharded
// sweep prints its result (the first line of each backend says how many
// shards instead of the time), copies the violating seeds' files into out
// and writes the JUnit file.
func mergeSim(stdout, stderr io.Writer, m *report.Merged, shardDirs []string, out, junit string) int {
	sc := m.Summary.Scenarios[0]
	r := simResult{name: sc.Name, path: sc.File, backends: m.Summary.Backends, cells: m.Summary.Cells, parts: m.Parts}
	status := exitOK
	for i := range r.cells {
		r.print(stdout, i, fmt.Sprintf(", merged from %d shards (%.1f s of work)", m.Count, m.Parts[i].Time))
		if len(r.parts[i].Bad) > 0 {
			status = exitViolations
		}
		if out == "" {
			continue
		}
		// Each seed's files are in the shard that ran it.
		for _, b := range r.parts[i].Bad {
			if err := copySeed(shardDirs, out, sc.Name, r.cells[i].Backend, b.Seed); err != nil {
				fmt.Fprintf(stderr, "locksim merge: %v\n", err)
				return exitUsage
			}
		}
	}
	if junit != "" {
		if err := r.writeJUnit(junit); err != nil {
			fmt.Fprintf(stderr, "locksim merge: %v\n", err)
			return exitUsage
		}
	}
	return status
}

// copySeed copies SCENARIO/BACKEND/seed-S.jsonl and .json from whichever
// shard directory has them into out.
func copySeed(shardDirs []string, out, scenario, backend string, seed uint64) error {
	rel := filepath.Join(scenario, backend)
	for _, d := range shardDirs {
		base := filepath.Join(rel, fmt.Sprintf("seed-%d", seed))
		if _, err := os.Stat(filepath.Join(d, base+".jsonl")); err != nil {
			continue
		}
		if err := os.MkdirAll(filepath.Join(out, rel), 0o755); err != nil {
			return err
		}
		for _, ext := range []string{".jsonl", ".json"} {
			data, err := os.ReadFile(filepath.Join(d, base+ext))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(out, base+ext), data, 0o644); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("seed %d of %s on %s: no shard directory has its history (%s)", seed, scenario, backend, filepath.Join(rel, fmt.Sprintf("seed-%d.jsonl", seed)))
}

func sameDir(a, b string) bool {
	x, err1 := filepath.Abs(a)
	y, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && x == y
}
