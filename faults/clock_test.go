package faults_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/locks"
)

func near(a, b time.Duration) bool {
	d := a - b
	return d > -time.Millisecond && d < time.Millisecond
}

func TestSkewedClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := faults.NewSkewedClock(locks.SystemClock{})
		if got := c.Offset(); got != 0 {
			t.Fatalf("new clock offset %v", got)
		}
		c.SetOffset(2 * time.Second)
		if got := time.Until(c.Now()); got != 2*time.Second {
			t.Fatalf("offset: now - true = %v, want 2s", got)
		}
		c.SetDrift(0.5) // gains 0.5 s per true second
		time.Sleep(4 * time.Second)
		if got := c.Offset(); !near(got, 4*time.Second) {
			t.Fatalf("after 4 s at +50%%: offset %v, want 4s", got)
		}
		c.Step(-10 * time.Second)
		if got := c.Offset(); !near(got, -6*time.Second) {
			t.Fatalf("after a -10 s step: offset %v, want -6s", got)
		}
		// A 3 s timer on a clock 50% fast fires after 2 s of true time.
		start := time.Now()
		timer := c.NewTimer(3 * time.Second)
		<-timer.C()
		if got := time.Since(start); !near(got, 2*time.Second) {
			t.Fatalf("timer fired after %v of true time, want 2s", got)
		}
		c.SetDrift(-0.5)
		start = time.Now()
		<-c.NewTimer(time.Second).C()
		if got := time.Since(start); !near(got, 2*time.Second) {
			t.Fatalf("slow clock: 1 s timer fired after %v, want 2s", got)
		}
	})
}

// A Locker-style lease checked on a skewed client clock: the decision that
// clock skew changes.
func TestSkewedClockMovesExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fast := faults.NewSkewedClock(nil)
		until := fast.Now().Add(30 * time.Second) // lock_for 30 s
		fast.SetDrift(1)                          // twice as fast
		time.Sleep(16 * time.Second)
		if !fast.Now().After(until) {
			t.Fatal("a clock running twice as fast should see a 30 s lease expire after 16 s")
		}
	})
}
