package behaviour_test

import (
	"errors"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/sim/behaviour"
)

// realMemcached is a real memcached 1.6 from cluster/, under libfaketime,
// with the catalogue's 2 MB memory limit.
type realMemcached struct {
	srv    *cluster.Memcached
	c      *memcache.Client
	start  time.Time
	offset time.Duration
	links  []*faults.Network // Link's, closed with the case
}

func (m *realMemcached) Sleep(d time.Duration)  { time.Sleep(d) }
func (m *realMemcached) Elapsed() time.Duration { return time.Since(m.start) }

func (m *realMemcached) Add(key, value string, exp int) (bool, error) {
	err := m.c.Add(&memcache.Item{Key: key, Value: []byte(value), Expiration: int32(exp)})
	if errors.Is(err, memcache.ErrNotStored) {
		return false, nil
	}
	return err == nil, err
}

func (m *realMemcached) Set(key, value string, exp int) error {
	return m.c.Set(&memcache.Item{Key: key, Value: []byte(value), Expiration: int32(exp)})
}

func (m *realMemcached) Gets(key string) (string, uint64, bool, error) {
	it, err := m.c.Get(key)
	if errors.Is(err, memcache.ErrCacheMiss) {
		return "", 0, false, nil
	}
	if err != nil {
		return "", 0, false, err
	}
	return string(it.Value), it.CasID, true, nil
}

func (m *realMemcached) Cas(key, value string, exp int, cas uint64) (behaviour.CasResult, error) {
	it := &memcache.Item{Key: key, Value: []byte(value), Expiration: int32(exp)}
	it.CasID = cas
	switch err := m.c.CompareAndSwap(it); {
	case err == nil:
		return behaviour.CasStored, nil
	case errors.Is(err, memcache.ErrCASConflict):
		return behaviour.CasExists, nil
	case errors.Is(err, memcache.ErrCacheMiss), errors.Is(err, memcache.ErrNotStored):
		return behaviour.CasNotFound, nil
	default:
		return 0, err
	}
}

func (m *realMemcached) Incr(key string) (uint64, bool, error) {
	n, err := m.c.Increment(key, 1)
	if errors.Is(err, memcache.ErrCacheMiss) {
		return 0, false, nil
	}
	return n, err == nil, err
}

func (m *realMemcached) Touch(key string, exp int) (bool, error) {
	err := m.c.Touch(key, int32(exp))
	if errors.Is(err, memcache.ErrCacheMiss) {
		return false, nil
	}
	return err == nil, err
}

func (m *realMemcached) Delete(key string) (bool, error) {
	err := m.c.Delete(key)
	if errors.Is(err, memcache.ErrCacheMiss) {
		return false, nil
	}
	return err == nil, err
}

func (m *realMemcached) StepClock(d time.Duration) error {
	m.offset += d
	return m.srv.Nodes()[0].SetFaketime("+" + strconv.FormatInt(int64(m.offset/time.Second), 10) + "s")
}

// Restart restarts the server and reconnects (the old connections are
// gone with the old process).
func (m *realMemcached) Restart() error {
	if err := m.srv.Nodes()[0].Restart(); err != nil {
		return err
	}
	m.c.Close()
	m.c = memcache.New(m.srv.Addrs()...)
	m.c.Timeout = 2 * time.Second
	return nil
}

func (m *realMemcached) Flood() error {
	faults.FloodMemcached(m.srv.Addrs(), rand.Uint32())
	return nil
}

// Link is a client of its own through a toxiproxy link of a network of
// its own, as a run's clients reach the servers.
func (m *realMemcached) Link() (behaviour.MemcachedLink, error) {
	n := faults.NewNetwork()
	l, err := n.AddLink("c", "memcached1", m.srv.Addrs()[0])
	if err != nil {
		n.Close()
		return nil, err
	}
	c := memcache.New(l.Addr())
	c.Timeout = 5 * time.Second
	m.links = append(m.links, n)
	return &realMcLink{net: n, c: c}, nil
}

type realMcLink struct {
	net *faults.Network
	c   *memcache.Client
}

func (l *realMcLink) Cut() error  { l.net.Cut("c", "memcached1", faults.Both); return nil }
func (l *realMcLink) Heal() error { l.net.Heal(); return nil }

func (l *realMcLink) StartAdd(key, value string, exp int) func() (bool, time.Duration, error) {
	type result struct {
		stored bool
		after  time.Duration
		err    error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		err := l.c.Add(&memcache.Item{Key: key, Value: []byte(value), Expiration: int32(exp)})
		r := result{after: time.Since(start), err: err, stored: err == nil}
		if errors.Is(err, memcache.ErrNotStored) {
			r.err = nil
		}
		done <- r
	}()
	return func() (bool, time.Duration, error) {
		r := <-done
		return r.stored, r.after, r.err
	}
}

// The behaviour cases on a real memcached, each on a fresh server.
func TestMemcachedReal(t *testing.T) {
	for _, c := range behaviour.MemcachedCases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			srv, err := cluster.StartMemcached(cluster.MemcachedConfig{MemoryMB: 2, Faketime: "+0s"})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			cl := memcache.New(srv.Addrs()...)
			cl.Timeout = 2 * time.Second
			m := &realMemcached{srv: srv, c: cl, start: time.Now()}
			defer func() {
				m.c.Close()
				for _, n := range m.links {
					n.Close()
				}
			}()
			if err := c.Run(m); err != nil {
				t.Error(err)
			}
		})
	}
}
