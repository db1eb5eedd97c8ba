package faults

import (
	"sync"
	"time"

	"github.com/locksim/locksim/locks"
)

// SkewedClock is a locks.Clock that runs off true time: a constant offset,
// a drift rate, and steps that can be changed while a client runs.
//
// Reading it at true time T gives T + offset + drift·(T − anchor), where
// anchor is when the drift last changed. Timers measure durations on the
// skewed clock: a clock running 10% fast (drift 0.1) fires a 1 s timer
// after 1/1.1 s of true time, as a fast oscillator would. Steps move Now but
// not running timers, as a stepped wall clock leaves Go's monotonic timers
// alone.
type SkewedClock struct {
	base locks.Clock // true time

	mu     sync.Mutex
	offset time.Duration // at anchor
	drift  float64
	anchor time.Time // true time at which offset was taken
}

// NewSkewedClock returns a clock on base (locks.SystemClock if nil) with no
// skew.
func NewSkewedClock(base locks.Clock) *SkewedClock {
	if base == nil {
		base = locks.SystemClock{}
	}
	return &SkewedClock{base: base, anchor: base.Now()}
}

// Now returns the skewed time.
func (c *SkewedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nowLocked(c.base.Now())
}

func (c *SkewedClock) nowLocked(t time.Time) time.Time {
	elapsed := t.Sub(c.anchor)
	return t.Add(c.offset + time.Duration(c.drift*float64(elapsed)))
}

// Offset is the current difference between the skewed and the true time.
func (c *SkewedClock) Offset() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.base.Now()
	return c.nowLocked(t).Sub(t)
}

// Step moves the clock by d at once (d < 0 steps it back).
func (c *SkewedClock) Step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.base.Now()
	c.offset = c.nowLocked(t).Sub(t) + d
	c.anchor = t
}

// SetOffset sets the difference to true time to d, keeping the drift.
func (c *SkewedClock) SetOffset(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset, c.anchor = d, c.base.Now()
}

// SetDrift sets the rate at which the clock gains (rate > 0) or loses
// (rate < 0) time: 0.1 gains 100 ms every true second. Rates must be above
// -1 (a clock that stops or runs backwards is not a clock).
func (c *SkewedClock) SetDrift(rate float64) {
	if rate <= -1 {
		rate = -0.99
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.base.Now()
	c.offset = c.nowLocked(t).Sub(t)
	c.drift, c.anchor = rate, t
}

// Drift is the current drift rate.
func (c *SkewedClock) Drift() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.drift
}

// NewTimer returns a timer that fires after d as this clock measures it,
// with the drift in force when it is set.
func (c *SkewedClock) NewTimer(d time.Duration) locks.Timer {
	c.mu.Lock()
	rate := c.drift
	c.mu.Unlock()
	return c.base.NewTimer(time.Duration(float64(d) / (1 + rate)))
}
