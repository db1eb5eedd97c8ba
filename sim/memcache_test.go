package sim

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/locksim/locksim/checker"
	lm "github.com/locksim/locksim/locks/machine"
	lockMemcache "github.com/locksim/locksim/locks/memcache"
	mcm "github.com/locksim/locksim/locks/memcache/machine"
)

// mcHome is the server locksim-0 hashes to among n, and the server it
// fails over to first.
func mcHome(n int) (home, next int) {
	c := mcm.New(mcm.Config{Servers: n}).Candidates(mcm.StorageKey("locksim-0"), 0, nil)
	return c[0], c[1]
}

// The simulator's clients are configured as real runs configure theirs
// (locks/memcache.RunConfig): a server found dead is skipped for one
// second, not memcache-client's 30 s. The home server is cut off for two
// seconds; the client fails over, and once the window has passed (and the
// item its held adds left on the home server has expired) its grants are
// back there: the home server's token counter goes on, the fallback's
// stops.
func TestMemcacheRetryDeadAsRealRuns(t *testing.T) {
	home, next := mcHome(3)
	sc := parse(t, fmt.Sprintf(`name: mc-retry-dead
backends: [memcache]
cluster: {size: 3}
clients: 1
duration: 20s
start_window: 0s
lock: {ttl: 3s, renew_every: 1s, poll: 100ms}
workload: {hold_min: 50ms, hold_max: 50ms}
faults:
  - {at: 1s, fault: partition, target: memcached%d, for: 2s, jitter: 0s}
`, home+1))
	r, err := newRun(Config{Scenario: sc, Backend: "memcache", Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	m := r.be.(*memcache)
	counter := func(i int) int64 {
		it := m.servers[i].get(lockMemcache.TokenKey("locksim-0"))
		if it == nil {
			return 0
		}
		v, _ := strconv.ParseInt(it.value, 10, 64)
		return v
	}
	r.w.runUntil(int64(3 * time.Second))
	if counter(next) == 0 {
		t.Fatal("no grant on the fallback server during the cut")
	}
	r.w.runUntil(int64(7 * time.Second))
	fallback, homeTok := counter(next), counter(home)
	r.w.runUntil(int64(12 * time.Second))
	if counter(next) != fallback {
		t.Errorf("grants still on the fallback server 4-9 s after the cut: its counter went %d -> %d", fallback, counter(next))
	}
	if counter(home) <= homeTok {
		t.Errorf("no grants back on the home server: its counter stayed at %d", homeTok)
	}
	if got := m.cfg.RetryDead; got != lockMemcache.RunRetryDead {
		t.Errorf("RetryDead %v, want real runs' %v", got, lockMemcache.RunRetryDead)
	}
}

// lock.failover: off reaches the simulator's clients as it reaches real
// runs' (Config.NoFailover): the waiting client does not take the lock on
// another server while the home server is cut off, so there is no second
// holder (TestMemcacheFailover has the same run with failover on).
func TestMemcacheFailoverOff(t *testing.T) {
	home, _ := mcHome(3)
	sc := parse(t, fmt.Sprintf(`name: mc-no-failover
backends: [memcache]
cluster: {size: 3}
clients: 2
duration: 6s
lock: {ttl: 10s, renew_every: 4s, poll: 100ms, failover: off}
workload: {hold_min: 3s, hold_max: 3s}
faults:
  - {at: 500ms, fault: partition, target: memcached%d, for: 5s}
`, home+1))
	for seed := uint64(1); seed <= 5; seed++ {
		res := simulate(t, sc, "memcache", seed)
		if slices.Contains(res.Kinds(), checker.MutualExclusion) {
			t.Fatalf("seed %d: mutual exclusion broken with failover off", seed)
		}
	}
	sc.Lock.Failover = ""
	if res := simulate(t, sc, "memcache", 1); !slices.Contains(res.Kinds(), checker.MutualExclusion) {
		t.Fatalf("failover on: got %v, want mutual-exclusion", res.Kinds())
	}
}

// A renewal is bounded by renew_every on the client's clock, as locks.Run
// bounds it in real runs: the client pauses after its gets went out and
// wakes past the bound; the answer is in, but the cas is not sent, and the
// renewal ends cancelled.
func TestMemcacheRenewBoundedAsRun(t *testing.T) {
	sc := parse(t, `name: mc-renew-bound
backends: [memcache]
clients: 1
duration: 60s
lock: {ttl: 10s, renew_every: 1s}
workload: {hold_min: 30s, hold_max: 30s}
`)
	r, err := newRun(Config{Scenario: sc, Backend: "memcache", Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	p := r.procs[0]
	c := p.lc.(*mcClient)
	r.w.runUntil(int64(3 * time.Second))
	for c.slots[slotRenew].busy {
		r.w.runUntil(r.w.now + int64(time.Millisecond))
	}
	if !p.holds() || c.lease == nil {
		t.Fatal("not holding at 3 s")
	}
	before := m0exp(r)
	// Timers exact: at the resume the cas goes out first and the bound,
	// which came due during the pause, fires before its reply (with the
	// measured lateness the two race, as in a real process).
	p.n.late = nil
	c.renew()
	p.n.pause()
	r.w.runUntil(r.w.now + int64(1500*time.Millisecond))
	p.n.resume()
	r.w.runUntil(r.w.now)
	if got := c.slots[slotRenew].last; got != lm.Cancelled {
		t.Fatalf("renewal past its bound ended %v, want cancelled", got)
	}
	if m0exp(r) != before {
		t.Fatal("the cas went out past the bound: the item's expiry moved")
	}
}

// m0exp is the expiry of the lock item on the first server.
func m0exp(r *run) int64 {
	it := r.be.(*memcache).servers[0].get("locksim-0")
	if it == nil {
		return -1
	}
	return it.exp
}
