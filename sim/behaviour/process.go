package behaviour

import (
	"fmt"
	"slices"
	"strconv"
	"time"
)

// Process is a lock client's process woken from a pause (SIGSTOP, then
// SIGCONT): real, a child Go program (GOMAXPROCS the machine's, as the real runs'
// clients) with a goroutine per timer and one reading a connection;
// modelled, a simulated client node with its timers and a message from a
// server node.
type Process interface {
	// Wake runs one process: it sets a timer due at each of dues and reads
	// one message, sent to it at msgAt; it is stopped at stopAt and
	// continued at contAt (all times after its start, every due and msgAt
	// between stopAt and contAt). It returns what ran after the continue,
	// in the order it ran — "m" for the message's reader, the index in
	// dues for a timer — and when each ran, after the first of them.
	Wake(dues []time.Duration, stopAt, msgAt, contAt time.Duration) (ran []string, at []time.Duration, err error)
}

// ProcessCase is one behaviour of a woken process.
type ProcessCase struct {
	Name string
	// Run wakes processes and returns what differs from the expected
	// outcome.
	Run func(p Process) error
}

// wakes is how many processes a case wakes: a woken process's order is
// the Go scheduler's, so each case judges shares, with margins a loaded
// machine keeps (measured, 120 wakes at load 2-3: the message read first
// in 69 %, the last-due timer first in 82 %, the timers within 500 us of
// each other in 95 %).
const wakes = 30

// wakeTimers are the timers of a case's process: six, 10 ms apart, all
// due while it is stopped (as a paused lock client's renew, hold, poll
// and keepalive timers are).
var wakeTimers = []time.Duration{60 * time.Millisecond, 70 * time.Millisecond, 80 * time.Millisecond,
	90 * time.Millisecond, 100 * time.Millisecond, 110 * time.Millisecond}

const (
	wakeStop = 10 * time.Millisecond
	wakeMsg  = 150 * time.Millisecond
	wakeCont = 250 * time.Millisecond
)

// wakeAll wakes n processes and calls judge with each one's order and
// times.
func wakeAll(p Process, n int, judge func(ran []string, at []time.Duration)) error {
	for range n {
		ran, at, err := p.Wake(wakeTimers, wakeStop, wakeMsg, wakeCont)
		if err != nil {
			return err
		}
		if len(ran) != len(wakeTimers)+1 || len(at) != len(ran) {
			return fmt.Errorf("a woken process ran %v, want its %d timers and its message", ran, len(wakeTimers))
		}
		judge(ran, at)
	}
	return nil
}

// timerSpread is how far apart a wake's timers fired: the last one's time
// less the first one's.
func timerSpread(ran []string, at []time.Duration) time.Duration {
	first, last := time.Duration(-1), time.Duration(0)
	for i, r := range ran {
		if r == "m" {
			continue
		}
		if first < 0 {
			first = at[i]
		}
		last = at[i]
	}
	return last - first
}

// firstTimer is the index in dues of the timer that fired first.
func firstTimer(ran []string) int {
	for _, r := range ran {
		if r != "m" {
			i, _ := strconv.Atoi(r)
			return i
		}
	}
	return -1
}

// ProcessCases is the table both the real process and the model run.
var ProcessCases = []ProcessCase{
	{"a woken process reads the messages that came while it was stopped before it runs its overdue timers", func(p Process) error {
		// The runtime's netpoller hands over the readable connection
		// before its timers are checked. A lock client woken with a
		// loss notice in its socket (a watch event, an answer) sees it
		// before its hold timer fires.
		first := 0
		err := wakeAll(p, wakes, func(ran []string, _ []time.Duration) {
			if ran[0] == "m" {
				first++
			}
		})
		if err != nil {
			return err
		}
		if first < wakes/3 {
			return fmt.Errorf("the message was read first in %d of %d wakes, want at least %d", first, wakes, wakes/3)
		}
		return nil
	}},
	{"a woken process fires its overdue timers together: within 500 us, the one due last first", func(p Process) error {
		// One pass of the runtime's timer check fires them all; the
		// goroutine of the last one fired takes the processor's next
		// slot. So a paused holder's hold timer and its renewal fire
		// within microseconds, not each as late as a timer can be.
		var spreads []time.Duration
		lastFirst := 0
		err := wakeAll(p, wakes, func(ran []string, at []time.Duration) {
			spreads = append(spreads, timerSpread(ran, at))
			if firstTimer(ran) == len(wakeTimers)-1 {
				lastFirst++
			}
		})
		if err != nil {
			return err
		}
		slices.Sort(spreads)
		if med := spreads[len(spreads)/2]; med > 500*time.Microsecond {
			return fmt.Errorf("the overdue timers fired over %v at the median of %d wakes (all: %v), want at most 500us", med, wakes, spreads)
		}
		if lastFirst < wakes/3 {
			return fmt.Errorf("the timer due last fired first in %d of %d wakes, want at least %d", lastFirst, wakes, wakes/3)
		}
		return nil
	}},
}
