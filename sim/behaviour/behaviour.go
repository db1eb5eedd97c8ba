// Package behaviour holds the simulator's models to the real servers.
//
// Every behaviour of a simulated service that a verdict can depend on is a
// case here: a sequence of operations and faults with the observable
// outcome, and when it shows. Each table runs twice, against the real
// server that package cluster starts (this package's tests) and against
// the simulator's model in virtual time (package sim's tests), through one
// small interface per service. A case the model gets wrong is fixed in the
// model, never deleted; each model's doc comment names the cases that hold
// it.
//
// A case states what must be true of both, with the margins a real server
// needs (a real clock tick lands anywhere within its second; a real round
// trip takes a little time), and returns an error naming what it saw
// otherwise. Cases that measure a time (when an item expires, when a clock
// step shows) measure it the same way on both: by polling at a fixed
// period on the case's clock.
package behaviour

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Clock is the time a case runs on: the wall clock against a real server,
// virtual time against a model.
type Clock interface {
	// Sleep lets d pass.
	Sleep(d time.Duration)
	// Elapsed is the time since the case began.
	Elapsed() time.Duration
}

// timeEach runs op n times, 20 ms apart, and returns how long each run
// took, shortest first.
func timeEach(c Clock, n int, op func() error) ([]time.Duration, error) {
	took := make([]time.Duration, 0, n)
	for range n {
		start := c.Elapsed()
		if err := op(); err != nil {
			return nil, err
		}
		took = append(took, c.Elapsed()-start)
		c.Sleep(20 * time.Millisecond)
	}
	slices.Sort(took)
	return took, nil
}

// pollUntil calls done every period until it reports true or limit has
// passed, and returns the time it took (from the call) and whether done
// became true.
func pollUntil(c Clock, period, limit time.Duration, done func() (bool, error)) (time.Duration, bool, error) {
	start := c.Elapsed()
	for {
		ok, err := done()
		if err != nil {
			return 0, false, err
		}
		took := c.Elapsed() - start
		if ok {
			return took, true, nil
		}
		if took > limit {
			return took, false, nil
		}
		c.Sleep(period)
	}
}

func within(what string, got, lo, hi time.Duration) error {
	if got < lo || got > hi {
		return fmt.Errorf("%s after %v, want between %v and %v", what, got.Round(time.Millisecond), lo, hi)
	}
	return nil
}

// lateTolerant judges a timing measured several times on a machine whose
// load can make any one measurement late: every one must come within
// [lo, hi+slack] — the early bound stays strict, as load only delays — and
// at least one within [lo, hi]. A model, or a server, that is late every
// time still fails.
type lateTolerant struct {
	what  string
	slack time.Duration
	tight []error // per measurement: nil if within [lo, hi]
}

// add judges one measurement against [lo, hi]; it returns an error only if
// the measurement is outside [lo, hi+slack].
func (l *lateTolerant) add(what string, got, lo, hi time.Duration) error {
	if err := within(what, got, lo, hi+l.slack); err != nil {
		return err
	}
	l.tight = append(l.tight, within(what, got, lo, hi))
	return nil
}

// check reports an error unless at least one measurement was within its
// [lo, hi].
func (l *lateTolerant) check() error {
	for _, err := range l.tight {
		if err == nil {
			return nil
		}
	}
	if len(l.tight) == 0 {
		return fmt.Errorf("%s: nothing measured", l.what)
	}
	return fmt.Errorf("%s: none of %d within its bounds: %w", l.what, len(l.tight), errors.Join(l.tight...))
}

// logf shows a measurement if the case's adapter can (a Logf method, as
// testing.T's).
func logf(c Clock, format string, args ...any) {
	if l, ok := c.(interface{ Logf(string, ...any) }); ok {
		l.Logf(format, args...)
	}
}
