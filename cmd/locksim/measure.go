package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/harness"
	"github.com/locksim/locksim/sim"
)

func init() {
	commands["measure-timing"] = command{
		summary: "measure timer lateness, GC pauses and proxied loopback delay (the simulator's timing)",
		run:     measureTimingCmd,
	}
}

// measureTimingCmd measures, on this machine, the three distributions the
// simulator draws its timing from (sim/timing.go): how late a Go timer
// fires in a client-like process under load, how long the GC stops the
// world, and the one-way delay of a small message over loopback through a
// toxiproxy link, as every client→server message of a real run travels.
func measureTimingCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("measure-timing", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dur := fs.Duration("duration", 20*time.Second, "how long to measure timers")
	spin := fs.Int("spin", 0, "goroutines that spin on the CPU beside the clients (the machine's other load)")
	msgs := fs.Int("messages", 20000, "round trips through the proxy")
	runs := fs.String("runs", "", "instead of measuring, read the timer lateness that real runs' client processes measured: the run directories (locksim run --out), comma-separated, searched for timing/*.json")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: locksim measure-timing [--duration D] [--spin N] [--messages N] | --runs DIR,...")
		fs.PrintDefaults()
	}
	if _, code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *runs != "" {
		late, procs, err := readRunTiming(strings.Split(*runs, ","))
		if err != nil {
			fmt.Fprintf(stderr, "locksim measure-timing: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "# locksim measure-timing --runs %s\n", *runs)
		printQuantiles(stdout, fmt.Sprintf("timer lateness inside real runs' client processes (%d timers of 10-500 ms, %d processes)", len(late), procs), late)
		return 0
	}
	late, spread, gc, err := measureTimers(*dur, *spin)
	if err != nil {
		fmt.Fprintf(stderr, "locksim measure-timing: %v\n", err)
		return 1
	}
	direct, proxied, err := measureLoopback(*msgs)
	if err != nil {
		fmt.Fprintf(stderr, "locksim measure-timing: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "# locksim measure-timing --duration %v --spin %d --messages %d (GOMAXPROCS %d)\n", *dur, *spin, *msgs, runtime.GOMAXPROCS(0))
	printQuantiles(stdout, fmt.Sprintf("timer lateness (%d timers of 10-500 ms)", len(late)), late)
	printQuantiles(stdout, fmt.Sprintf("lateness difference of two timers due at the same instant (%d pairs)", len(spread)), spread)
	printQuantiles(stdout, fmt.Sprintf("GC stop-the-world pauses (%d)", len(gc)), gc)
	printQuantiles(stdout, "loopback one-way delay, direct (RTT/2)", direct)
	printQuantiles(stdout, "loopback one-way delay through a toxiproxy link (RTT/2)", proxied)
	return 0
}

func printQuantiles(w io.Writer, title string, xs []time.Duration) {
	fmt.Fprintf(w, "%s:\n", title)
	if len(xs) == 0 {
		fmt.Fprintln(w, "  (none)")
		return
	}
	slices.Sort(xs)
	for _, q := range sim.TimingQuantiles {
		i := int(q * float64(len(xs)-1))
		fmt.Fprintf(w, "  p%-6g %v\n", q*100, xs[i])
	}
}

// measureTimers runs a client-like load for d — goroutines making HTTP
// round trips to a local server about every millisecond and allocating
// what they read, and spin goroutines (none by default: run it beside a
// real run instead, whose servers load the machine) — and meanwhile sleeps on timers of the
// lengths lock clients use (10 ms to 500 ms), recording how late each
// fired. Beside them, pairs of timers come due at the same instant, each
// in its own goroutine: how far apart the two fire says whether lateness
// is the process's (a stall that holds back every timer due in it) or
// each timer's own. It also reads the GC's stop-the-world pauses of the
// same time.
func measureTimers(d time.Duration, spin int) (late, spread, gc []time.Duration, err error) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, 2048))
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	var sink atomic.Int64
	for i := 0; i < spin; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := 0
			for ctx.Err() == nil {
				for j := 0; j < 1e6; j++ {
					x += j
				}
			}
			sink.Add(int64(x))
		}()
	}
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				resp, err := http.Get(srv.URL)
				if err != nil {
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				garbage := make([][]byte, 64)
				for k := range garbage {
					garbage[k] = append([]byte(nil), b...)
				}
				sink.Add(int64(len(garbage)))
				time.Sleep(time.Millisecond)
			}
		}()
	}
	probe := harness.StartTimerProbe(ctx, 16)
	lengths := harness.ProbeLengths
	var mu sync.Mutex
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := i; ctx.Err() == nil; k++ {
				target := time.Now().Add(lengths[k%len(lengths)])
				var fired [2]time.Duration
				var pair sync.WaitGroup
				for j := range fired {
					pair.Add(1)
					go func() {
						defer pair.Done()
						t := time.NewTimer(time.Until(target))
						defer t.Stop()
						select {
						case <-t.C:
							fired[j] = time.Since(target)
						case <-ctx.Done():
							fired[j] = -1
						}
					}()
				}
				pair.Wait()
				if fired[0] < 0 || fired[1] < 0 {
					return
				}
				mu.Lock()
				spread = append(spread, (fired[0] - fired[1]).Abs())
				mu.Unlock()
			}
		}()
	}
	before := gcPauses()
	wg.Wait()
	probe.Wait()
	after := gcPauses()
	return probe.Lateness(), spread, diffHistogram(before, after), nil
}

const gcPauseMetric = "/sched/pauses/total/gc:seconds"

func gcPauses() *metrics.Float64Histogram {
	s := []metrics.Sample{{Name: gcPauseMetric}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return nil
	}
	return s[0].Value.Float64Histogram()
}

// diffHistogram turns the pauses counted between two readings into a list
// of durations, each at its bucket's lower bound.
func diffHistogram(a, b *metrics.Float64Histogram) []time.Duration {
	if a == nil || b == nil {
		return nil
	}
	var out []time.Duration
	for i := range b.Counts {
		n := b.Counts[i] - a.Counts[i]
		lo := b.Buckets[i]
		if lo < 0 {
			lo = 0
		}
		for ; n > 0; n-- {
			out = append(out, time.Duration(lo*float64(time.Second)))
		}
	}
	return out
}

// measureLoopback times n round trips of a 64-byte message to an echo
// server on 127.0.0.1, directly and through a toxiproxy link.
func measureLoopback(n int) (direct, proxied []time.Duration, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	nw := faults.NewNetwork()
	defer nw.Close()
	link, err := nw.AddLink("client", "server", ln.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	if direct, err = roundTrips(ln.Addr().String(), n); err != nil {
		return nil, nil, err
	}
	if proxied, err = roundTrips(link.Addr(), n); err != nil {
		return nil, nil, err
	}
	return direct, proxied, nil
}

func roundTrips(addr string, n int) ([]time.Duration, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	msg := make([]byte, 64)
	buf := make([]byte, 64)
	out := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if _, err := c.Write(msg); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return nil, err
		}
		out = append(out, time.Since(t0)/2)
	}
	return out, nil
}

// readRunTiming reads every timing/*.json file (harness.TimingRecord) under
// the directories: the lateness of every timer and how many processes
// measured them. A directory with none is an error, and so is a file that
// does not parse (named, with its error).
func readRunTiming(dirs []string) ([]time.Duration, int, error) {
	var late []time.Duration
	procs := 0
	for _, dir := range dirs {
		found := 0
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || filepath.Base(filepath.Dir(path)) != "timing" || filepath.Ext(path) != ".json" {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			var rec harness.TimingRecord
			if err := json.Unmarshal(b, &rec); err != nil {
				return fmt.Errorf("%s: %v", path, err)
			}
			for _, ns := range rec.TimerLatenessNs {
				late = append(late, time.Duration(ns))
			}
			found++
			return nil
		})
		if err != nil {
			return nil, 0, err
		}
		if found == 0 {
			return nil, 0, fmt.Errorf("--runs: no timing/*.json under %s (real runs write them, locksim run --out DIR)", dir)
		}
		procs += found
	}
	return late, procs, nil
}
