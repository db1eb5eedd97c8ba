package sim

import (
	"fmt"
	"github.com/locksim/locksim/backend"
	"testing"
	"time"

	"github.com/locksim/locksim/history"
	lm "github.com/locksim/locksim/locks/machine"
	pgm "github.com/locksim/locksim/locks/postgres/machine"
	"github.com/locksim/locksim/sim/behaviour"
)

// pgModel is the simulator's PostgreSQL (postgres) driven in virtual time,
// for the behaviour cases: the lease table's statements called on the
// model's server-side state, advisory locks held by the model's own
// client (pgClient) on client nodes of their own.
type pgModel struct {
	w       *world
	r       *run
	m       *postgres
	client  *node // whose clock "client" reads
	holders int
}

func newPgModel(seed uint64) *pgModel {
	w := newWorld(seed, 24*time.Hour)
	r := &run{w: w, desc: backend.Lookup("postgres-advisory"), opts: defaults(backend.Lookup("postgres-advisory"))}
	m := newPostgres(r, true)
	r.be = m
	return &pgModel{w: w, r: r, m: m, client: w.addNode("c1")}
}

func (p *pgModel) Sleep(d time.Duration)  { p.w.runUntil(p.w.now + int64(d)) }
func (p *pgModel) Elapsed() time.Duration { return time.Duration(p.w.now) }

// rt is a round trip: requests take a little time, as on loopback.
func (p *pgModel) rt() { p.Sleep(100 * time.Microsecond) }

// op is a get or renew as locks/postgres sends it, under clock with ttl.
func (p *pgModel) op(kind pgm.OpKind, clock, key, id string, ttl time.Duration) *pgm.Op {
	now := p.client.now()
	return &pgm.Op{Kind: kind, Key: key, LockedBy: id, ClientClock: clock == "client", At: now, Until: now + int64(ttl), TTLMicros: ttl.Microseconds()}
}

func (p *pgModel) until(key string) time.Time { return time.Unix(0, p.m.rows[key].lockedUntil) }

func (p *pgModel) Get(clock, key, id string, ttl time.Duration) (int64, time.Time, bool, error) {
	p.rt()
	seq, ok := p.m.get(p.op(pgm.OpGet, clock, key, id, ttl))
	if !ok {
		return 0, time.Time{}, false, nil
	}
	return seq, p.until(key), true, nil
}

func (p *pgModel) Renew(clock, key, id string, ttl time.Duration) (time.Time, bool, error) {
	p.rt()
	if !p.m.renewRow(p.op(pgm.OpRenew, clock, key, id, ttl)) {
		return time.Time{}, false, nil
	}
	return p.until(key), true, nil
}

func (p *pgModel) Release(key, id string) (bool, error) {
	p.rt()
	return p.m.releaseRow(key, id), nil
}

func (p *pgModel) ServerNow() (time.Time, error) {
	p.rt()
	return time.Unix(0, p.m.n.now()), nil
}

func (p *pgModel) StepServerClock(d time.Duration) error {
	p.m.n.clk.step(p.w.now, int64(d))
	return nil
}

func (p *pgModel) StepClientClock(d time.Duration) error {
	p.client.clk.step(p.w.now, int64(d))
	return nil
}

// Restart is a fast shutdown and a start, as long as a real one takes.
func (p *pgModel) Restart() error {
	p.m.n.crash()
	p.Sleep(500 * time.Millisecond)
	p.m.n.restart()
	return nil
}

func (p *pgModel) Free(key string) (bool, error) {
	p.rt()
	return p.m.holders[advisoryKey(p.m.adv.LockKey(key))] == nil, nil
}

// wait runs virtual time until *done or limit.
func (p *pgModel) wait(done *bool, limit time.Duration, what string) error {
	end := p.w.now + int64(limit)
	for !*done {
		if p.w.now >= end {
			return fmt.Errorf("%s: no answer within %v", what, limit)
		}
		p.Sleep(time.Millisecond)
	}
	return nil
}

// Hold is a client process with the model's advisory client. direct
// makes no difference to the model: every link is cut the same way.
func (p *pgModel) Hold(key string, direct bool) (behaviour.Holder, error) {
	p.holders++
	pr := &proc{r: p.r, name: fmt.Sprintf("h%d", p.holders)}
	pr.n = p.w.addNode(pr.name)
	h := &pgModelHolder{p: p, c: p.m.client(pr).(*pgClient)}
	h.holderFaults = holderFaults{p.w, pr.n, p.m.n, p.m.faultChanged}
	pr.n.onCrash = h.c.crashed
	var got, ok bool
	h.c.acquire(key, acquireFunc(func(granted bool, tok int64) {
		got, ok, h.token = true, granted, tok
	}))
	if err := p.wait(&got, 5*time.Second, "hold "+key); err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("hold %s: not granted", key)
	}
	return h, nil
}

type pgModelHolder struct {
	holderFaults
	p     *pgModel
	c     *pgClient
	token int64
}

func (h *pgModelHolder) Token() int64 { return h.token }

func (h *pgModelHolder) Renew(timeout time.Duration) (behaviour.RenewResult, error) {
	var done bool
	var res lm.Result
	h.c.renewWithin(int64(timeout), func(r lm.Result) { done, res = true, r })
	if err := h.p.wait(&done, timeout+10*time.Second, "renew"); err != nil {
		return 0, err
	}
	switch res {
	case lm.OK:
		return behaviour.LeaseOK, nil
	case lm.Lost:
		return behaviour.LeaseLost, nil
	}
	return behaviour.LeaseFailed, nil
}

func (h *pgModelHolder) Release() (behaviour.RenewResult, error) {
	var done bool
	var t history.Type
	h.c.release(releaseFunc(func(typ history.Type) { done, t = true, typ }))
	if err := h.p.wait(&done, 10*time.Second, "release"); err != nil {
		return 0, err
	}
	if t == history.OK {
		return behaviour.LeaseOK, nil
	}
	return behaviour.LeaseLost, nil
}

// holderFaults are the faults a behaviour case puts on a model client
// process that holds a connection-bound lock on one server (the
// PostgreSQL and MySQL adapters' holders embed it): a cut of both
// directions between the two, its heal, and the process paused, resumed
// or killed. changed tells the model a link changed.
type holderFaults struct {
	w              *world
	client, server *node
	changed        func()
}

func (h holderFaults) Cut() error {
	h.w.block(h.client, h.server)
	h.w.block(h.server, h.client)
	h.changed()
	return nil
}

func (h holderFaults) Heal() error {
	h.w.unblock(h.client, h.server)
	h.w.unblock(h.server, h.client)
	h.changed()
	return nil
}

func (h holderFaults) Pause() error  { h.client.pause(); return nil }
func (h holderFaults) Resume() error { h.client.resume(); return nil }
func (h holderFaults) Kill() error   { h.client.crash(); return nil }

// The behaviour cases on the model, each from several seeds.
func TestPostgresModel(t *testing.T) {
	for _, c := range behaviour.PostgresCases {
		t.Run(c.Name, func(t *testing.T) {
			for seed := uint64(1); seed <= 5; seed++ {
				if err := c.Run(newPgModel(seed)); err != nil {
					t.Errorf("seed %d: %v", seed, err)
				}
			}
		})
	}
}
