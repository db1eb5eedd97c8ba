package sim

import (
	"github.com/locksim/locksim/backend"
	"testing"
	"time"

	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/locks"
	lockPostgres "github.com/locksim/locksim/locks/postgres"
	pgm "github.com/locksim/locksim/locks/postgres/machine"
)

// TestPostgresAdvisoryLockTimeout: with a wait timeout an advisory
// acquire sets the session's lock_timeout, and the server answers a
// waiting pg_advisory_lock with lock_not_available once it has passed:
// not acquired, and the client closes the connection. The model used to
// close the connection itself at the timeout and never answer the
// acquire.
func TestPostgresAdvisoryLockTimeout(t *testing.T) {
	p := newPgModel(1)
	if _, err := p.Hold("k", false); err != nil {
		t.Fatal(err)
	}
	o := locks.Options{WaitTimeout: 2 * time.Second}
	p.m.adv = pgm.NewAdvisory(lockPostgres.AdvisoryMachineConfig(pgSequence, lockPostgres.AdvisoryConfig{Lockspace: 1}, o))
	p.r.opts.waitTimeout = int64(o.WaitTimeout)
	pr := &proc{r: p.r, name: "w"}
	pr.n = p.w.addNode(pr.name)
	c := p.m.client(pr).(*pgClient)
	start := p.w.now
	var done, ok bool
	c.acquire("k", acquireFunc(func(granted bool, _ int64) { done, ok = true, granted }))
	if err := p.wait(&done, 10*time.Second, "acquire"); err != nil {
		t.Fatal(err)
	}
	took := time.Duration(p.w.now - start)
	if ok || took < 2*time.Second || took > 2100*time.Millisecond {
		t.Fatalf("acquire: granted %v after %v, want not granted after 2 s", ok, took)
	}
	p.Sleep(100 * time.Millisecond)
	for _, conn := range p.m.conns {
		if conn.owner == c && conn.alive {
			t.Fatalf("the waiter's connection %d is still open on the server", conn.id)
		}
	}
}

// TestPostgresAdvisoryReleaseTimeout: a release cut short by locks.Run's
// bound (the TTL) finds the connection closed (pgx gives it up at the
// deadline), so AdvisoryLease.Release returns ErrLockLost and the history
// says fail, not info; the lock goes when pgx closes the socket.
func TestPostgresAdvisoryReleaseTimeout(t *testing.T) {
	p := newPgModel(1)
	hh, err := p.Hold("k", false)
	if err != nil {
		t.Fatal(err)
	}
	h := hh.(*pgModelHolder)
	if err := h.Cut(); err != nil {
		t.Fatal(err)
	}
	var done bool
	var typ history.Type
	h.c.release(releaseFunc(func(t history.Type) { done, typ = true, t }))
	if err := p.wait(&done, time.Duration(p.r.opts.ttl)+10*time.Second, "release"); err != nil {
		t.Fatal(err)
	}
	if typ != history.Fail {
		t.Fatalf("release cut short: %s, want fail", typ)
	}
	if free, _ := p.Free("k"); free {
		t.Fatal("the lock is free before pgx closed the socket")
	}
	p.Sleep(time.Duration(pgxCloseAfter) + time.Second)
	if free, _ := p.Free("k"); !free {
		t.Fatal("the lock is still held after pgx closed the socket")
	}
}

// TestPostgresPollAllocs: a lease-table waiter's poll (the timer, the get
// and its answer) allocates nothing in steady state: the statement and
// the timer come from the run's arena, and the machine's outputs go into
// the client's buffer.
func TestPostgresPollAllocs(t *testing.T) {
	w := newWorld(1, 24*time.Hour)
	r := &run{w: w, desc: backend.Lookup("postgres"), opts: defaults(backend.Lookup("postgres"))}
	r.opts.ttl = int64(time.Hour) // the holder keeps the row unrenewed
	m := newPostgres(r, false)
	r.be = m
	procs := make([]*pgClient, 2)
	for i := range procs {
		pr := &proc{r: r, name: "c" + itoa(int64(i+1))}
		pr.n = w.addNode(pr.name)
		procs[i] = m.client(pr).(*pgClient)
	}
	granted := 0
	procs[0].acquire("k", acquireFunc(func(ok bool, _ int64) {
		if ok {
			granted++
		}
	}))
	w.runUntil(w.now + int64(time.Second))
	procs[1].acquire("k", acquireFunc(func(ok bool, _ int64) {
		if ok {
			granted++
		}
	}))
	polls := func() int {
		n := 0
		for _, q := range m.ops.chunks {
			for i := range q {
				if q[i].op.Kind == pgm.OpGet {
					n++
				}
			}
		}
		return n
	}
	w.runUntil(w.now + int64(5*time.Second)) // warm up
	before := polls()
	const step = 5 * time.Second
	allocs := testing.AllocsPerRun(20, func() { w.runUntil(w.now + int64(step)) })
	perRun := float64(polls()-before) / 21
	if granted != 1 || perRun < 9 {
		t.Fatalf("granted %d, %.1f polls per %v: the waiter does not poll", granted, perRun, step)
	}
	t.Logf("%.0f allocations per %v, %.1f polls", allocs, step, perRun)
	if allocs/perRun >= 0.5 {
		t.Fatalf("%.0f allocations per %v (%.1f polls): %.2f per poll", allocs, step, perRun, allocs/perRun)
	}
}
