package memcache_test

import (
	"context"
	"errors"
	"testing"

	gomemcache "github.com/bradfitz/gomemcache/memcache"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/memcache"
)

// BenchmarkLock compares one uncontended lock round trip of this package
// (add + token incr, then gets + cas-delete) with the raw gomemcache
// add/delete it is built on, on the same real server in the same run.
func BenchmarkLock(b *testing.B) {
	m := startServers(b, cluster.MemcachedConfig{})
	ctx := context.Background()

	b.Run("locks-memcache/TryAcquire+Release", func(b *testing.B) {
		l := newLocker(b, memcache.Config{Servers: m.Addrs()})
		for b.Loop() {
			lease, err := l.TryAcquire(ctx, "bench")
			if err != nil {
				b.Fatal(err)
			}
			if err := lease.Release(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("gomemcache/Add+Delete", func(b *testing.B) {
		c := gomemcache.New(m.Addrs()...)
		for b.Loop() {
			if err := c.Add(&gomemcache.Item{Key: "raw", Value: []byte("owner"), Expiration: 30}); err != nil {
				b.Fatal(err)
			}
			if err := c.Delete("raw"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("locks-memcache/TryAcquire-held", func(b *testing.B) {
		l := newLocker(b, memcache.Config{Servers: m.Addrs()})
		if _, err := l.TryAcquire(ctx, "held"); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := l.TryAcquire(ctx, "held"); !errors.Is(err, locks.ErrNotAcquired) {
				b.Fatal(err)
			}
		}
	})
}
