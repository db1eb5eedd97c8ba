package locks

import "time"

// Clock is how a lock client reads time and waits. Every read of time in a
// client goes through it, so that client clock skew (offset, drift, steps)
// can be injected for real.
type Clock interface {
	// Now returns the client's idea of the current time.
	Now() time.Time
	// NewTimer returns a timer that fires after d as this clock measures it.
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer made by a Clock.
type Timer interface {
	// C delivers the time once the timer fires.
	C() <-chan time.Time
	// Stop stops the timer; it reports whether the call stopped it.
	Stop() bool
}

// SystemClock is the Clock of the operating system.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// NewTimer returns a time.Timer.
func (SystemClock) NewTimer(d time.Duration) Timer { return sysTimer{time.NewTimer(d)} }

type sysTimer struct{ t *time.Timer }

func (s sysTimer) C() <-chan time.Time { return s.t.C }
func (s sysTimer) Stop() bool          { return s.t.Stop() }
