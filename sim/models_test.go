package sim

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/locksim/locksim/checker"
	"github.com/locksim/locksim/history"
	mcm "github.com/locksim/locksim/locks/memcache/machine"
	lockPostgres "github.com/locksim/locksim/locks/postgres"
	"github.com/locksim/locksim/scenario"
)

// firstEvent returns the first event at or after t matching ok.
func firstEvent(res *Result, t int64, ok func(e *history.Event) bool) *history.Event {
	for i := range res.Events {
		e := &res.Events[i]
		if e.T >= t && ok(e) {
			return e
		}
	}
	return nil
}

func nemesisStart(t *testing.T, res *Result, f string) (int64, string) {
	t.Helper()
	e := firstEvent(res, 0, func(e *history.Event) bool { return e.Proc == history.ProcNemesis && e.F == f })
	if e == nil {
		t.Fatalf("no nemesis %s event", f)
	}
	// value: {"target":…,"nodes":["c1"],…}
	var node string
	if _, err := fmt.Sscanf(string(e.Value[bytesIndex(e.Value, `"nodes":["`)+len(`"nodes":["`):]), "%2s", &node); err != nil {
		t.Fatalf("nemesis value %s: %v", e.Value, err)
	}
	return e.T, node
}

func bytesIndex(b []byte, s string) int {
	for i := 0; i+len(s) <= len(b); i++ {
		if string(b[i:i+len(s)]) == s {
			return i
		}
	}
	return -1
}

// grantAfter is the first acquire ok at or after t by a proc other than
// not.
func grantAfter(res *Result, t int64, not string) *history.Event {
	return firstEvent(res, t, func(e *history.Event) bool {
		return e.F == history.FAcquire && e.Type == history.OK && e.Proc != not
	})
}

const sec = int64(time.Second)

// etcd: the paused holder's lease expires on the leader's lessor (checked
// every 500 ms) about one TTL after its last keepalive; the other client
// then gets the lock, with a greater revision; the holder learns of the
// loss only after it wakes.
func TestEtcdLeaseExpiry(t *testing.T) {
	sc := parse(t, `name: etcd-lease
backends: [etcd]
cluster: {size: 3}
clients: 2
duration: 8s
lock: {ttl: 1s}
workload: {hold_min: 100ms, hold_max: 200ms}
faults:
  - {at: 1s, fault: pause, target: holder, for: 4s}
`)
	for seed := uint64(1); seed <= 5; seed++ {
		res := simulate(t, sc, "etcd", seed)
		p, holder := nemesisStart(t, res, "pause")
		g := grantAfter(res, p, holder)
		if g == nil {
			t.Fatalf("seed %d: nobody got the lock after the pause", seed)
		}
		// Last keepalive at most TTL/3 before the pause; expiry found at
		// the next 500 ms check, plus a commit.
		if d := g.T - p; d < sec*2/3-sec/10 || d > sec+sec/2+sec/10 {
			t.Errorf("seed %d: next grant %v after the pause, want about one TTL (1 s)", seed, time.Duration(d))
		}
		// It learns after it wakes: a lost notice, or, if its hold's end
		// fired first at the wake (the two race), a release that fails.
		lost := firstEvent(res, p, func(e *history.Event) bool {
			return e.Proc == holder && (e.F == history.FLost || e.F == history.FRelease && e.Type == history.Fail)
		})
		if lost == nil || lost.T < p+4*sec {
			t.Errorf("seed %d: the holder's lost notice or failed release %v, want one after it wakes at %v", seed, lost, time.Duration(p+4*sec))
		}
		if !slices.Contains(res.Kinds(), checker.MutualExclusion) || slices.Contains(res.Kinds(), checker.FencingLock) {
			t.Errorf("seed %d: %v, want mutual-exclusion and revisions that still increase", seed, res.Kinds())
		}
	}
}

// etcd: a paused leader is replaced and the new leader extends every
// lease, so nothing breaks.
func TestEtcdLeaderPause(t *testing.T) {
	sc := parse(t, `name: etcd-leader
backends: [etcd]
cluster: {size: 3}
clients: 3
duration: 6s
lock: {ttl: 1s}
workload: {hold_min: 20ms, hold_max: 50ms}
faults:
  - {at: 1s, fault: pause, target: leader, for: 3s}
`)
	regranted := 0
	for seed := uint64(1); seed <= 40; seed++ {
		res := simulate(t, sc, "etcd", seed)
		if !res.OK() {
			t.Errorf("seed %d: %v", seed, res.Kinds())
		}
		p, _ := nemesisStart(t, res, "pause")
		// Locks are granted again under a new leader while the old one is
		// still paused, unless the waiter's own request is caught at the
		// old leader: it then waits for it, as a real client without gRPC
		// keepalive does.
		if g := grantAfter(res, p+200*int64(time.Millisecond), ""); g != nil && g.T <= p+2*sec {
			regranted++
		}
	}
	t.Logf("a grant while the leader was paused in %d of 40 seeds", regranted)
	if regranted < 20 {
		t.Errorf("a grant while the leader was paused in only %d of 40 seeds", regranted)
	}
}

// memcached: memory pressure evicts the lock and its token counter: the
// next add succeeds while the holder still holds, and tokens start again.
func TestMemcacheEviction(t *testing.T) {
	sc := parse(t, `name: mc-evict
backends: [memcache]
clients: 2
duration: 6s
lock: {ttl: 10s, renew_every: 3s, poll: 100ms}
workload: {hold_min: 1s, hold_max: 1s}
faults:
  - {at: 2500ms, fault: evict, target: memcached1}
`)
	res := simulate(t, sc, "memcache", 1)
	kinds := res.Kinds()
	if !slices.Contains(kinds, checker.MutualExclusion) || !slices.Contains(kinds, checker.FencingLock) {
		t.Fatalf("got %v, want mutual-exclusion and fencing-lock (the token counter restarted)", kinds)
	}
	ev, _ := nemesisStart(t, res, "evict")
	g := grantAfter(res, ev, "")
	if g == nil || g.Token != 1 {
		t.Fatalf("first grant after the eviction: %+v, want token 1", g)
	}
}

// memcached: the LRU keeps the most recently used items.
func TestMemcacheLRU(t *testing.T) {
	w := newWorld(1, time.Second)
	s := &mcServer{n: w.addNode("memcached1")}
	s.reset(sec)
	for i := 0; i < mcCapacity; i++ {
		s.set(fmt.Sprint("k", i), "v", 0)
	}
	if s.get("k0") == nil { // bump k0
		t.Fatal("k0 missing")
	}
	s.set("new", "v", 0) // evicts the least recently used: k1
	if s.get("k1") != nil || s.get("k0") == nil || s.get("new") == nil || len(s.items) != mcCapacity {
		t.Fatalf("LRU kept the wrong items (%d items)", len(s.items))
	}
	// Expiry in whole seconds on the server's clock, as its once-a-second
	// tick reads it (ticks here at 1 s, 2 s, …): an item set with 2 s
	// just before a second ticks lives a little over 1 s.
	tickAt := func(t int64) { w.now = t; s.tick() }
	w.now = 900 * int64(time.Millisecond)
	if !s.add("lock", "a", 2) || s.add("lock", "b", 2) {
		t.Fatal("add is not test-and-set")
	}
	tickAt(sec)
	w.now = 1999 * int64(time.Millisecond)
	if s.get("lock") == nil {
		t.Fatal("expired early")
	}
	tickAt(2 * sec)
	if s.get("lock") != nil {
		t.Fatal("not expired at current_time 2")
	}
	// A server clock stepped forward expires items early, at the next
	// tick: until then current_time has not moved.
	s.add("lock", "a", 10)
	w.now = 2500 * int64(time.Millisecond)
	s.n.clk.step(w.now, 20*sec)
	if s.get("lock") == nil {
		t.Fatal("a clock step was seen before the next tick")
	}
	tickAt(3 * sec)
	if s.get("lock") != nil {
		t.Fatal("a server clock 20 s ahead did not expire a 10 s item at the next tick")
	}
}

// memcached: a restart empties the server: two holders, tokens from 1.
func TestMemcacheRestart(t *testing.T) {
	sc := parse(t, `name: mc-restart
backends: [memcache]
clients: 2
duration: 6s
lock: {ttl: 10s, renew_every: 3s, poll: 100ms}
workload: {hold_min: 1s, hold_max: 1s}
faults:
  - {at: 2500ms, fault: restart, target: memcached1}
`)
	res := simulate(t, sc, "memcache", 1)
	kinds := res.Kinds()
	if !slices.Contains(kinds, checker.MutualExclusion) || !slices.Contains(kinds, checker.FencingLock) {
		t.Fatalf("got %v, want mutual-exclusion and fencing-lock", kinds)
	}
}

// memcached with three servers: when the key's server cannot be reached,
// a waiting client marks it dead and takes the lock on another server while
// the holder still holds it on the first. The holder keeps its lock: its
// renewals time out, which is not a loss. Failing over takes two timeouts
// of 500 ms (the add, and the add again on a fresh connection), as through
// toxiproxy's cut in real runs, so the hold outlasts a second of it.
func TestMemcacheFailover(t *testing.T) {
	home := mcm.New(mcm.Config{Servers: 3}).Candidates(mcm.StorageKey("locksim-0"), 0, nil)[0]
	sc := parse(t, fmt.Sprintf(`name: mc-failover
backends: [memcache]
cluster: {size: 3}
clients: 2
duration: 6s
lock: {ttl: 10s, renew_every: 4s, poll: 100ms}
workload: {hold_min: 3s, hold_max: 3s}
faults:
  - {at: 500ms, fault: partition, target: memcache%d, for: 5s} # the old name still works
`, home+1))
	res := simulate(t, sc, "memcache", 1)
	if !slices.Contains(res.Kinds(), checker.MutualExclusion) {
		t.Fatalf("got %v, want mutual-exclusion through failover", res.Kinds())
	}
}

// Consul (consul-ttl, whose sessions take the scenario's lock-delay): a
// destroyed session releases the key with its lock-delay; nobody
// gets the key until the delay has passed — except an acquire that reached
// the leader before the destroy was committed: Consul checks the
// lock-delay there (kvsPreApply), so it commits after the destroy, within
// a commit of it (a few ms). That race is the rarer outcome.
func TestConsulLockDelay(t *testing.T) {
	for _, delay := range []time.Duration{time.Second, 3 * time.Second} {
		raced := 0
		sc := parse(t, fmt.Sprintf(`name: consul-delay
backends: [consul]
clients: 2
duration: 8s
lock: {ttl: 10s, renew_every: 2s, poll: 100ms, lock_delay: %v}
workload: {hold_min: 1s, hold_max: 1s}
faults:
  - {at: 1500ms, fault: session-destroy, target: holder}
`, delay))
		for seed := uint64(1); seed <= 10; seed++ {
			res := simulate(t, sc, "consul-ttl", seed)
			d, holder := nemesisStart(t, res, "session-destroy")
			// The first grant after the destroy, to anyone (the destroyed
			// holder, told at once, may be the first to try again), and
			// not the grant the fault waited for to find its holder.
			g := grantAfter(res, d+1, "")
			if g == nil {
				t.Fatalf("lock-delay %v seed %d: no grant after the destroy", delay, seed)
			}
			switch got := time.Duration(g.T - d); {
			case got < 10*time.Millisecond:
				raced++ // the acquire was past the leader's check
			case got < delay || got > delay+300*time.Millisecond:
				t.Errorf("lock-delay %v seed %d: next grant %v after the destroy", delay, seed, got)
			}
			lost := firstEvent(res, d, func(e *history.Event) bool { return e.Proc == holder && e.F == history.FLost })
			if lost == nil || lost.T > d+100*int64(time.Millisecond) {
				t.Errorf("lock-delay %v seed %d: the watcher's lost notice %v, want one at once", delay, seed, lost)
			}
		}
		if raced > 3 {
			t.Errorf("lock-delay %v: %d of 10 seeds granted within 10 ms of the destroy, want the pre-commit race to be rare", delay, raced)
		}
	}
}

// Consul (consul-ttl): the leader invalidates a session only after twice
// its TTL.
func TestConsulTTLGrace(t *testing.T) {
	sc := parse(t, `name: consul-ttl
backends: [consul]
clients: 2
duration: 8s
lock: {ttl: 1s, renew_every: 300ms, poll: 100ms, lock_delay: 1ms}
workload: {hold_min: 200ms, hold_max: 200ms}
faults:
  - {at: 1s, fault: pause, target: holder, for: 5s}
`)
	for seed := uint64(1); seed <= 5; seed++ {
		res := simulate(t, sc, "consul-ttl", seed)
		p, holder := nemesisStart(t, res, "pause")
		g := grantAfter(res, p, holder)
		if g == nil {
			t.Fatalf("seed %d: no grant after the pause", seed)
		}
		// Last renew at most 300 ms before the pause; expiry 2×TTL later.
		if d := time.Duration(g.T - p); d < 1600*time.Millisecond || d > 2200*time.Millisecond {
			t.Errorf("seed %d: next grant %v after the pause, want 2×TTL after the last renew", seed, d)
		}
	}
}

// PostgreSQL lease table: with clock=client, a client whose clock runs
// ahead takes rows that are still held; with clock=db the same skew
// changes nothing.
func TestPostgresClientClockSkew(t *testing.T) {
	const yaml = `name: pg-skew
backends: [postgres]
clients: 2
duration: 8s
lock: {ttl: 3s, renew_every: 1s, poll: 100ms, clock: %s}
workload: {kind: rotation, hold_min: 1s, hold_max: 1500ms}
faults:
  - {at: 1s, fault: clock-step, target: c2, offset: 10s}
`
	broken := 0
	for seed := uint64(1); seed <= 5; seed++ {
		res := simulate(t, parse(t, fmt.Sprintf(yaml, "client")), "postgres", seed)
		if slices.Contains(res.Kinds(), checker.MutualExclusion) {
			broken++
		}
		res = simulate(t, parse(t, fmt.Sprintf(yaml, "db")), "postgres", seed)
		if !res.OK() {
			t.Errorf("clock=db seed %d: %v", seed, res.Kinds())
		}
	}
	// The skewed client steals only when it polls while the other holds.
	if broken < 3 {
		t.Errorf("clock=client: mutual-exclusion in %d of 5 seeds", broken)
	}
}

// PostgreSQL advisory locks: a killed holder's connection is closed by its
// kernel, so the lock passes on at once; the server keeps tokens
// increasing.
func TestPostgresAdvisoryKill(t *testing.T) {
	sc := parse(t, `name: pg-advisory-kill
backends: [postgres-advisory]
clients: 2
duration: 5s
workload: {hold_min: 500ms, hold_max: 500ms}
faults:
  - {at: 1200ms, fault: kill, target: holder}
`)
	res := simulate(t, sc, "postgres-advisory", 1)
	k, holder := nemesisStart(t, res, "kill")
	g := grantAfter(res, k, holder)
	if g == nil || g.T-k > 10*int64(time.Millisecond) {
		t.Fatalf("grant after the kill: %+v", g)
	}
	if !res.OK() {
		t.Fatalf("%v", res.Kinds())
	}
}

// PostgreSQL lease table, lock.renew_errors: the catalogue's brief cut of
// the holder fails one renewal. Under retry the next renewal keeps the
// lease (safe); under stop (the gem's renewer) the lease renews no more:
// another client takes the row while the first runs on without a lost
// notice, and the first's release fails.
func TestPostgresRenewErrors(t *testing.T) {
	if got := []string{string(lockPostgres.RenewRetry), string(lockPostgres.RenewerDies)}; !slices.Equal(got, scenario.RenewErrorModes) {
		t.Fatalf("scenario.RenewErrorModes %v, locks/postgres has %v", scenario.RenewErrorModes, got)
	}
	retry, stop := load(t, "locker-renewal-error"), load(t, "locker-renewal-error-stop")
	for seed := uint64(1); seed <= 20; seed++ {
		if res := simulate(t, retry, "postgres", seed); !res.OK() {
			t.Errorf("retry seed %d: %v", seed, res.Kinds())
		}
		res := simulate(t, stop, "postgres", seed)
		if !slices.Contains(res.Kinds(), checker.MutualExclusion) {
			t.Errorf("stop seed %d: %v, want mutual-exclusion", seed, res.Kinds())
			continue
		}
		cut, holder := nemesisStart(t, res, "cut-holder")
		var released *history.Event
		for i := range res.Events {
			e := &res.Events[i]
			if e.Proc != holder || e.T < cut {
				continue
			}
			if e.F == history.FLost {
				t.Fatalf("stop seed %d: the holder was told: %+v", seed, e)
			}
			if e.F == history.FRelease && e.Type != history.Invoke {
				released = e
				break
			}
		}
		if released == nil || released.Type != history.Fail {
			t.Errorf("stop seed %d: the cut holder's release %+v, want fail (the row was taken)", seed, released)
		}
	}
}
