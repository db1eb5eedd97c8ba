package sim

import (
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
