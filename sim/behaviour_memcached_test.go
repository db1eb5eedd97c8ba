package sim

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/locksim/locksim/sim/behaviour"
)

// mcModel is the simulator's memcached server (mcServer) driven in
// virtual time, for the behaviour cases.
type mcModel struct {
	w *world
	s *mcServer
}

func newMcModel(seed uint64) *mcModel {
	w := newWorld(seed, 24*time.Hour)
	s := &mcServer{n: w.addNode("memcached1")}
	s.n.resets = true // reached through a proxy, as newMemcache's servers
	// Started some time before the case, as newMemcache starts its servers.
	s.reset(1 + w.int64n(int64(time.Second)))
	s.n.onRestart = func() { s.reset(int64(time.Second)) }
	return &mcModel{w: w, s: s}
}

func (m *mcModel) Sleep(d time.Duration)  { m.w.runUntil(m.w.now + int64(d)) }
func (m *mcModel) Elapsed() time.Duration { return time.Duration(m.w.now) }

// rt is a round trip: requests take a little time, as on loopback.
func (m *mcModel) rt() { m.Sleep(100 * time.Microsecond) }

func (m *mcModel) Add(key, value string, exp int) (bool, error) {
	m.rt()
	return m.s.add(key, value, int64(exp)), nil
}

func (m *mcModel) Set(key, value string, exp int) error {
	m.rt()
	m.s.set(key, value, int64(exp))
	return nil
}

func (m *mcModel) Gets(key string) (string, uint64, bool, error) {
	m.rt()
	it := m.s.get(key)
	if it == nil {
		return "", 0, false, nil
	}
	return it.value, it.cas, true, nil
}

func (m *mcModel) Cas(key, value string, exp int, cas uint64) (behaviour.CasResult, error) {
	m.rt()
	return [...]behaviour.CasResult{behaviour.CasStored, behaviour.CasNotFound, behaviour.CasExists}[m.s.cas(key, value, int64(exp), cas)], nil
}

func (m *mcModel) Incr(key string) (uint64, bool, error) {
	m.rt()
	n, ok := m.s.incrExisting(key)
	return uint64(n), ok, nil
}

func (m *mcModel) Touch(key string, exp int) (bool, error) {
	m.rt()
	return m.s.touch(key, int64(exp)), nil
}

func (m *mcModel) Delete(key string) (bool, error) {
	m.rt()
	return m.s.remove(key), nil
}

func (m *mcModel) StepClock(d time.Duration) error {
	m.s.n.clk.step(m.w.now, int64(d))
	return nil
}

func (m *mcModel) Restart() error {
	m.s.n.crash()
	m.Sleep(50 * time.Millisecond)
	m.s.n.restart()
	return nil
}

func (m *mcModel) Flood() error {
	m.s.evictAll()
	return nil
}

// Link is a client node of its own calling the server over the world's
// links, which a cut blocks.
func (m *mcModel) Link() (behaviour.MemcachedLink, error) {
	return &mcModelLink{m: m, c: m.w.addNode("c" + strconv.Itoa(len(m.w.nodes)))}, nil
}

type mcModelLink struct {
	m *mcModel
	c *node
}

func (l *mcModelLink) Cut() error {
	l.m.w.block(l.c, l.m.s.n)
	l.m.w.block(l.m.s.n, l.c)
	return nil
}

func (l *mcModelLink) Heal() error {
	l.m.w.unblock(l.c, l.m.s.n)
	l.m.w.unblock(l.m.s.n, l.c)
	return nil
}

func (l *mcModelLink) StartAdd(key, value string, exp int) func() (bool, time.Duration, error) {
	w := l.m.w
	start := w.now
	var (
		over, stored bool
		at           int64
		err          error
	)
	w.rpc(l.c, l.m.s.n, int64(5*time.Second), func(r *call) {
		ok := l.m.s.add(key, value, int64(exp))
		r.reply(func() { over, stored, at = true, ok, w.now })
	}, func(e rpcErr) {
		over, at, err = true, w.now, fmt.Errorf("rpc error %d", e)
	})
	return func() (bool, time.Duration, error) {
		for !over && w.now-start < int64(10*time.Second) {
			w.runUntil(w.now + int64(time.Millisecond))
		}
		return stored, time.Duration(at - start), err
	}
}

// The behaviour cases on the model, each from several seeds (the phase of
// the server's tick is the seed's).
func TestMemcachedModel(t *testing.T) {
	for _, c := range behaviour.MemcachedCases {
		t.Run(c.Name, func(t *testing.T) {
			for seed := uint64(1); seed <= 5; seed++ {
				if err := c.Run(newMcModel(seed)); err != nil {
					t.Errorf("seed %d: %v", seed, err)
				}
			}
		})
	}
}
