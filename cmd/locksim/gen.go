package main

import (
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"

	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/internal/histgen"
)

func init() {
	commands["gen-history"] = command{
		summary: "write a generated history of a correct lock (benchmarks)",
		hidden:  true,
		run:     runGen,
	}
}

// runGen writes a history of about --events events from a correct lock,
// with 8 keys and 4 clients per key, for benchmarks of the checker.
func runGen(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gen-history", flag.ContinueOnError)
	fs.SetOutput(stderr)
	events := fs.Int("events", 1_000_000, "approximate number of events")
	out := fs.String("out", "", "output `FILE` (default stdout)")
	seed := fs.Uint64("seed", 1, "random seed")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "locksim gen-history: unexpected argument %q\n", rest[0])
		return exitUsage
	}
	const keys, perGrant = 8, 10 // a grant is about 10 events
	evs, _ := histgen.Generate(rand.New(rand.NewPCG(*seed, 2)), histgen.Config{
		Keys: keys, ClientsPerKey: 4, Grants: max(1, *events/(keys*perGrant)),
		TryFailRate: 0.2, RenewRate: 0.3,
	})
	w := stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintf(stderr, "locksim gen-history: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		w = f
	}
	hw := history.NewWriter(w)
	for i := range evs {
		if err := hw.Write(&evs[i]); err != nil {
			fmt.Fprintf(stderr, "locksim gen-history: %v\n", err)
			return exitUsage
		}
	}
	if err := hw.Flush(); err != nil {
		fmt.Fprintf(stderr, "locksim gen-history: %v\n", err)
		return exitUsage
	}
	return exitOK
}
