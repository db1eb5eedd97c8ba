package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/locksim/locksim/scenario"
	"github.com/locksim/locksim/sim"
)

// parseSweep reads --sweep FROM:TO:STEP (durations, e.g. 0:500ms:25ms)
// into the shifts it names.
func parseSweep(s string) ([]time.Duration, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return nil, fmt.Errorf("--sweep %q: want FROM:TO:STEP, e.g. 0:500ms:25ms", s)
	}
	var d [3]time.Duration
	for i, p := range parts {
		if p == "0" {
			continue
		}
		v, err := time.ParseDuration(p)
		if err != nil {
			return nil, fmt.Errorf("--sweep %q: %q is not a duration", s, p)
		}
		d[i] = v
	}
	from, to, step := d[0], d[1], d[2]
	switch {
	case step <= 0:
		return nil, fmt.Errorf("--sweep %q: STEP must be positive", s)
	case to < from:
		return nil, fmt.Errorf("--sweep %q: TO is before FROM", s)
	case (to-from)/step > 1000:
		return nil, fmt.Errorf("--sweep %q: more than 1000 shifts", s)
	}
	var out []time.Duration
	for x := from; x <= to; x += step {
		out = append(out, x)
	}
	return out, nil
}

// runShiftSweep is locksim sim --sweep: every backend's violating share at
// each shift of the fault schedule, and a failure (exit 1) where it jumps
// by more than maxJump percentage points between neighbouring shifts.
func runShiftSweep(ctx context.Context, sc *scenario.Scenario, backends []string, shifts []time.Duration, seeds uint64, parallel int, maxJump float64, stdout, stderr io.Writer) int {
	status := exitOK
	fmt.Fprintf(stdout, "%s: violating seeds of %d with every fault shifted by δ\n", sc.Name, seeds)
	for _, b := range backends {
		res, err := sim.ShiftSweep{Scenario: sc, Backend: b, Seeds: seeds, Shifts: shifts, Parallel: parallel}.Run(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "locksim sim: %s on %s: %v\n", sc.Name, b, err)
			return exitInterrupted
		}
		var cells []string
		for i, d := range shifts {
			cells = append(cells, fmt.Sprintf("%v:%d", d, res.Violating[i]))
		}
		jump, at := res.MaxJump()
		verdict := "smooth"
		if jump > maxJump {
			verdict = fmt.Sprintf("JUMP above %.0f pp", maxJump)
			status = exitViolations
		}
		where := ""
		if len(shifts) > 1 {
			where = fmt.Sprintf(" (δ %v → %v)", shifts[at], shifts[at+1])
		}
		fmt.Fprintf(stdout, "  %-17s %s\n  %-17s largest change between neighbours %.1f pp%s: %s\n", b, strings.Join(cells, " "), "", jump, where, verdict)
	}
	return status
}
