package sim

import (
	"math"
	"time"
)

// The simulator's timing comes from measurements on this machine, not from
// round numbers: each distribution below is the quantiles that
//
//	locksim measure-timing --duration 30s
//
// printed on 2026-12-01 (2 cores, GOMAXPROCS 2), while the harness's
// real-server tests ran beside it (load average 7.8-8.3: a busier machine
// than one real run makes, so the tails are on the generous side). A draw
// picks a uniform quantile and interpolates linearly between the two
// measured points around it. The README's "Timing" section has the whole
// output, the GC pauses included.
//
// What else a seed chooses of a run's timing — each client's start offset
// and each fault's start — is scenario.Timing, which real runs draw the
// same way.

// dist is an empirical distribution: v[i] is its q[i] quantile, q from 0
// to 1, both increasing. Its inverse distribution function is piecewise
// linear between those points; draws read it from a table of distBins+1
// points (made by newDist), so that a draw is one 64-bit random number and
// integer arithmetic: one per message and per client timer.
type dist struct {
	q   []float64
	v   []int64
	tab [distBins + 1]int32 // ns: 4 KB, half as much cache as int64s
}

// distBins is the number of equal steps of the table: bins of 1/1000 of
// probability, so that every quantile of TimingQuantiles (down to p99.9)
// is a bin's edge and the table is the exact piecewise-linear function.
const distBins = 1000

// at is the exact inverse distribution function at u in [0, 1].
func (d *dist) at(u float64) int64 {
	i := 1
	for i < len(d.q)-1 && d.q[i] <= u {
		i++
	}
	lo, hi := d.q[i-1], d.q[i]
	f := (u - lo) / (hi - lo)
	return d.v[i-1] + int64(f*float64(d.v[i]-d.v[i-1]))
}

// newDist is the distribution with quantiles v at q, its table made.
func newDist(q []float64, v []int64) *dist {
	d := &dist{q: q, v: v}
	for i := range d.tab {
		x := d.at(float64(i) / distBins)
		if x < 0 || x > math.MaxInt32 {
			panic("sim: a measured distribution's point out of int32 ns")
		}
		d.tab[i] = int32(x)
	}
	return d
}

// draw is one value of d: the high 32 bits of a random number pick the
// bin, the low 32 the point within it.
func (d *dist) draw(w *world) int64 {
	r := w.pcg.Uint64()
	i := (r >> 32) * distBins >> 32
	f := int64(r & (1<<32 - 1))
	lo, hi := int64(d.tab[i]), int64(d.tab[i+1])
	return lo + (hi-lo)*f>>32
}

// TimingQuantiles are the quantiles the simulator keeps of each measured
// distribution, the points locksim measure-timing prints.
var TimingQuantiles = []float64{0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1}

func us(x float64) int64 { return int64(x * float64(time.Microsecond)) }

// timerLateness is how late a client's timer fires: a Go timer in a
// client-like process on a machine that also runs real servers (the
// scheduler's delays and the GC's together; the GC's stop-the-world
// pauses of the same measurement are in the README). Every timer of a
// simulated client — poll, renew, hold, think, keepalive — is that much
// late; servers' timers are exact.
var timerLateness = newDist(TimingQuantiles, []int64{
	us(1.4), us(21.3), us(128.3), us(573.5), us(1510.6), us(3852.9), us(7322.7), us(18105.1), us(41205.5), us(46652.2),
})

// linkDelay is the one-way delay of a message between two simulated
// nodes: half the round trip of a small message over loopback through a
// toxiproxy link, as every client→server and server↔server message of a
// real run travels.
var linkDelay = newDist(TimingQuantiles, []int64{
	us(14.2), us(14.5), us(15.4), us(17.3), us(22.6), us(31.7), us(36.8), us(66.1), us(746.6), us(6316.2),
})
