package harness

import "golang.org/x/sys/unix"

// Monotonic returns CLOCK_MONOTONIC in nanoseconds: the one clock every
// process of a run reads its timestamps from.
func Monotonic() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic("harness: CLOCK_MONOTONIC unreadable: " + err.Error())
	}
	return ts.Nano()
}

// RunClock is the clock of one run: nanoseconds since its start on
// CLOCK_MONOTONIC.
type RunClock struct{ Start int64 }

// NewRunClock starts a run clock now.
func NewRunClock() RunClock { return RunClock{Start: Monotonic()} }

// Now is the time since the start of the run, in ns.
func (c RunClock) Now() int64 { return Monotonic() - c.Start }
