package cluster

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

func startMemcached(t *testing.T, cfg MemcachedConfig) *Memcached {
	t.Helper()
	m, err := StartMemcached(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestMemcachedServersAreIndependentAndRestartEmpty(t *testing.T) {
	m := startMemcached(t, MemcachedConfig{Servers: 2})
	var _ Node = m.Nodes()[0]
	a, b := memcache.New(m.Addrs()[0]), memcache.New(m.Addrs()[1])
	if err := a.Set(&memcache.Item{Key: "k", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get("k"); !errors.Is(err, memcache.ErrCacheMiss) {
		t.Fatalf("second server has the first one's key: %v", err)
	}

	n := m.Nodes()[0]
	if err := n.Pause(); err != nil {
		t.Fatal(err)
	}
	a.Timeout = 200 * time.Millisecond
	if _, err := a.Get("k"); err == nil {
		t.Fatal("paused server answered")
	}
	if err := n.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := n.Restart(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get("k"); !errors.Is(err, memcache.ErrCacheMiss) {
		t.Fatalf("restarted server still has the key: %v", err)
	}
}

func TestMemcachedSmallMemoryEvicts(t *testing.T) {
	m := startMemcached(t, MemcachedConfig{MemoryMB: 2})
	c := memcache.New(m.Addrs()[0])
	// memcached evicts within a slab class: the fill items are the size
	// of the first one.
	fill := []byte(strings.Repeat("f", 40))
	if err := c.Set(&memcache.Item{Key: "first0000", Value: fill}); err != nil {
		t.Fatal(err)
	}
	// Write past the limit without reading "first": a read would mark it
	// active and move it out of the cold end of memcached's LRU.
	for i := range 60_000 {
		if err := c.Set(&memcache.Item{Key: fmt.Sprintf("fill%05d", i), Value: fill}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Get("first0000"); !errors.Is(err, memcache.ErrCacheMiss) {
		t.Fatalf("the first key survived 60000 writes under a 2 MB limit: %v", err)
	}
}

func TestMemcachedFaketimeSpeedsExpiry(t *testing.T) {
	// Ten times as fast: an item set to live 10 s is gone after about 1 s
	// of real time.
	m := startMemcached(t, MemcachedConfig{Faketime: "+0 x10"})
	c := memcache.New(m.Addrs()[0])
	if err := c.Set(&memcache.Item{Key: "k", Value: []byte("v"), Expiration: 10}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := c.Get("k"); errors.Is(err, memcache.ErrCacheMiss) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("a 10 s item outlived 5 s of real time under faketime x10")
}

func TestMemcachedSetFaketimeJumpsClock(t *testing.T) {
	m := startMemcached(t, MemcachedConfig{Faketime: "+0"})
	c := memcache.New(m.Addrs()[0])
	if err := c.Set(&memcache.Item{Key: "k", Value: []byte("v"), Expiration: 30}); err != nil {
		t.Fatal(err)
	}
	if err := m.Nodes()[0].SetFaketime("+60s"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := c.Get("k"); errors.Is(err, memcache.ErrCacheMiss) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("a 30 s item survived the server clock jumping 60 s ahead")
}
