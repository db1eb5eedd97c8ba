package sim

import (
	"math"
	"time"
)

// The simulator's timing comes from measurements on this machine, not from
// round numbers: each distribution below is the quantiles that locksim
// measure-timing printed (the command and the conditions are on each). A draw
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

// timerLateness is how late a client's timer fires: measured inside the
// client processes of real runs, where a Go timer shares its process with
// the lock client, its gRPC/HTTP/SQL connections and the GC, and the
// machine with the run's servers (harness.TimerProbe; the GC's pauses
// are part of it). 5,808 timers of 10-500 ms in 48 client processes of 16
// real runs on 2026-12-02 (control on every backend, seed 1;
// holder-cut-off on etcd, seeds 1-8; load average 2.6-3.6):
//
//	locksim run --backend B --seed S scenarios/X.yaml --out DIR   (each)
//	locksim measure-timing --runs DIR,...
//
// Runs with a pause fault are left out: a paused client's timers are late
// by the pause, which the simulator models as the fault. Every timer of a
// simulated client — poll, renew, hold, think, keepalive — is that much
// late; servers' timers are exact. (Until 2026-12-02 this was the
// lateness of a synthetic client-like process beside the whole test suite
// at load 8: p50 574 us as now, but p90 3.9 ms and p99 18 ms, where real
// clients see 1.05 ms and 3.9 ms.)
var timerLateness = newDist(TimingQuantiles, []int64{
	us(10.1), us(189.7), us(305.7), us(538.6), us(838.4), us(1051.0), us(1181.3), us(3868.6), us(21210.8), us(34036.8),
})

// wakeLateness and wakeTimerGap are how a Go process woken by SIGCONT
// runs what came due while it was stopped (node.resume): what runs first
// after the signal runs wakeLateness after it, and each next overdue timer
// wakeTimerGap after the one before. Measured on 2026-12-02 with the probe
// that is the real side of behaviour.ProcessCases: 120 wakes of a child Go
// process (GOMAXPROCS 2) with six timers and a connection's message that
// came due while it was stopped, beside a .ci/run at load average 2-3.
// The cases' own 60 wakes log the same quantiles:
//
//	go test -run TestProcessReal -v ./sim/behaviour
//
// The message's reader ran first in 83 of 120 wakes, the first timer a
// median 93 us after it (p90 1.9 ms); the last-due timer ran first in 98;
// the six timers fired within 67 us of each other at the median (p90
// 267 us), where six draws of timerLateness spread over about 1 ms.
var (
	// wakeLastFirst is the share of wakes whose first timer to fire was
	// the one due last (98 of 120); in the others another one fired
	// first (one on the other processor's heap), at random.
	wakeLastFirst = 98.0 / 120

	wakeLateness = newDist(TimingQuantiles, []int64{
		us(59.6), us(110.2), us(142.7), us(240.7), us(592.2), us(2736.6), us(3657.9), us(5406.2), us(8527.6), us(8940.4),
	})
	wakeTimerGap = newDist(TimingQuantiles, []int64{
		us(0), us(1.0), us(1.0), us(2.0), us(16.0), us(67.1), us(107.0), us(632.5), us(8502.5), us(12892.0),
	})
)

// linkDelay is the one-way delay of a message between two simulated
// nodes: half the round trip of a small message over loopback through a
// toxiproxy link, as every client→server and server↔server message of a
// real run travels (`locksim measure-timing --duration 30s` on 2026-12-01,
// 2 cores, GOMAXPROCS 2, beside the harness's real-server tests at load
// average 7.8-8.3).
var linkDelay = newDist(TimingQuantiles, []int64{
	us(14.2), us(14.5), us(15.4), us(17.3), us(22.6), us(31.7), us(36.8), us(66.1), us(746.6), us(6316.2),
})

// etcdKeepAliveServe is how long etcd's leader takes to answer a lease
// keepalive, beyond the model's network: a keepalive's round trip as the
// client sees it (from the stream's Send to its Recv, through a
// toxiproxy link to any of three members), less the four link delays of
// the model's way (client, entry server, leader and back: about 70 us).
// Measured on 2026-12-02: 160 keepalives of four clients' sessions (TTL
// 1 s, 20 s) on a three-member cluster beside a .ci/run (load average
// 1.5-2), round trips p10 500 us, median 1.44 ms, p90 4.46 ms. Before,
// the model answered in about 50 us, and a cut-off session's deadline
// loop often looked just after its deadline rather than just before it:
// the notice a second early (the behaviour case "a keepalive is answered
// in about a millisecond and a half", which times KeepAliveOnce: p50
// 1.85 ms on the real cluster under the same load).
var etcdKeepAliveServe = newDist(TimingQuantiles, []int64{
	us(189), us(430), us(778), us(1374), us(2486), us(4391), us(4968), us(5773), us(6059), us(6927),
})

// consulConsistentServe and consulRenewServe are how long Consul's leader
// takes to answer a ?consistent GET and a session renewal, beyond the
// model's network: each request's time from the client (HTTP, straight to
// a server) to its answer, less the model's network share (about 70 us).
// Measured on 2026-12-02 on a three-server cluster, 60 of each through
// each server (load average 0.7): consistent GET median 1.87 ms (1.48 ms
// through the leader, 2.04 ms through a follower), renewal median 951 us
// (555 us and 1.02-1.07 ms). The model's followers forward in two link
// delays, so the whole time is put on the leader. Before, both were
// answered in about 50 us (behaviour case "a consistent GET answers in
// about 2 ms and a session renewal in about 1 ms").
var (
	consulConsistentServe = newDist(TimingQuantiles, []int64{
		us(679), us(1304), us(1532), us(1796), us(2068), us(2270), us(2479), us(2930), us(3831), us(5895),
	})
	consulRenewServe = newDist(TimingQuantiles, []int64{
		us(220), us(425), us(551), us(881), us(1036), us(1190), us(1246), us(1970), us(2505), us(3917),
	})
)

// etcdReconnect is how long a clientv3 request whose connection was reset
// at a heal takes to go again on a connection made anew (gRPC reconnects
// through the proxy, which keeps listening, and the request waits for it:
// WaitForReady): the time from the heal to the answer of a read in flight
// at it, in the 19 of 35 tries whose retry's first attempt found a new
// connection (behaviour case "at the heal of a client's cut its Put in
// flight fails ...", 2026-12-02, beside the case of the keepalive stream:
// load average 1-2). The read's own time (under 1 ms) is in it.
var etcdReconnect = newDist(TimingQuantiles, []int64{
	us(3430), us(4236), us(4365), us(6360), us(9860), us(13800), us(14990), us(15080), us(15100), us(15100),
})
