package sim

import (
	"fmt"
	"github.com/locksim/locksim/backend"
	"testing"
	"time"

	"github.com/locksim/locksim/history"
	lm "github.com/locksim/locksim/locks/machine"
	"github.com/locksim/locksim/sim/behaviour"
)

// myModel is the simulator's MariaDB (mysql) driven in virtual time, for
// the behaviour cases: named locks held by the model's own client
// (myClient) on client nodes of their own.
type myModel struct {
	w       *world
	r       *run
	m       *mysql
	holders int
}

func newMyModel(seed uint64) *myModel {
	w := newWorld(seed, 24*time.Hour)
	r := &run{w: w, desc: backend.Lookup("mysql"), opts: defaults(backend.Lookup("mysql"))}
	m := newMySQL(r)
	r.be = m
	return &myModel{w: w, r: r, m: m}
}

func (p *myModel) Sleep(d time.Duration)  { p.w.runUntil(p.w.now + int64(d)) }
func (p *myModel) Elapsed() time.Duration { return time.Duration(p.w.now) }

// rt is a round trip: requests take a little time, as on loopback.
func (p *myModel) rt() { p.Sleep(100 * time.Microsecond) }

// Restart is a clean shutdown and a start, as long as a real one takes.
// Restart is a kill and a restart, then the wait until the server
// answers: the model's startup time, as cluster.MariaDB.Restart waits for
// the real server.
func (p *myModel) Restart() error {
	p.m.n.crash()
	p.m.n.restart()
	for p.m.n.down {
		p.Sleep(time.Millisecond)
	}
	return nil
}

func (p *myModel) Free(key string) (bool, error) {
	p.rt()
	return p.m.holders[key] == nil, nil
}

func (p *myModel) SetWaitTimeout(d time.Duration) error {
	p.rt()
	p.m.waitTimeout = int64(d)
	return nil
}

func (p *myModel) wait(done *bool, limit time.Duration, what string) error {
	end := p.w.now + int64(limit)
	for !*done {
		if p.w.now >= end {
			return fmt.Errorf("%s: no answer within %v", what, limit)
		}
		p.Sleep(time.Millisecond)
	}
	return nil
}

// Hold is a client process with the model's client. direct makes no
// difference to the model: every link is cut the same way.
func (p *myModel) Hold(key string, direct bool) (behaviour.Holder, error) {
	p.holders++
	pr := &proc{r: p.r, name: fmt.Sprintf("h%d", p.holders)}
	pr.n = p.w.addNode(pr.name)
	h := &myModelHolder{p: p, c: p.m.client(pr).(*myClient)}
	h.holderFaults = holderFaults{p.w, pr.n, p.m.n, p.m.faultChanged}
	pr.lc = h.c
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

type myModelHolder struct {
	holderFaults
	p        *myModel
	c        *myClient
	token    int64
	released bool
}

func (h *myModelHolder) Token() int64 { return h.token }

func (h *myModelHolder) Renew(timeout time.Duration) (behaviour.RenewResult, error) {
	if h.c.lease == nil {
		return behaviour.LeaseLost, nil
	}
	var done bool
	var res lm.Result
	h.c.renewBounded(int64(timeout), func(r lm.Result) { done, res = true, r })
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

// Release is Lease.Release: a second release of a released lease is ok.
func (h *myModelHolder) Release() (behaviour.RenewResult, error) {
	if h.released {
		return behaviour.LeaseOK, nil
	}
	var done bool
	var t history.Type
	h.c.release(releaseFunc(func(typ history.Type) { done, t = true, typ }))
	if err := h.p.wait(&done, 10*time.Second, "release"); err != nil {
		return 0, err
	}
	if t == history.OK {
		h.released = true
		return behaviour.LeaseOK, nil
	}
	return behaviour.LeaseLost, nil
}

// The behaviour cases on the model, each from several seeds.
func TestMySQLModel(t *testing.T) {
	for _, c := range behaviour.MySQLCases {
		t.Run(c.Name, func(t *testing.T) {
			for seed := uint64(1); seed <= 5; seed++ {
				if err := c.Run(newMyModel(seed)); err != nil {
					t.Errorf("seed %d: %v", seed, err)
				}
			}
		})
	}
}
