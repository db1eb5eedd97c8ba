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
			defer func() { m.c.Close() }()
			if err := c.Run(m); err != nil {
				t.Error(err)
			}
		})
	}
}
