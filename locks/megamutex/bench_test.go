package megamutex_test

import (
	"context"
	"errors"
	"testing"

	gomemcache "github.com/bradfitz/gomemcache/memcache"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/megamutex"
)

// BenchmarkLock compares one uncontended lock round trip of this package
// (get, add, get, then get + delete: five round trips) with the raw
// gomemcache get/add/get/get/delete it is made of, on the same real server
// in the same run: the ratio is the machine's and the driver's overhead.
func BenchmarkLock(b *testing.B) {
	m := startServers(b, cluster.MemcachedConfig{})
	ctx := context.Background()

	b.Run("megamutex/TryAcquire+Release", func(b *testing.B) {
		l := newLocker(b, megamutex.Config{Servers: m.Addrs()})
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
	b.Run("gomemcache/Get+Add+Get+Get+Delete", func(b *testing.B) {
		c := gomemcache.New(m.Addrs()...)
		for b.Loop() {
			if _, err := c.Get("mega_mutex:raw"); !errors.Is(err, gomemcache.ErrCacheMiss) {
				b.Fatal(err)
			}
			if err := c.Add(&gomemcache.Item{Key: "mega_mutex:raw", Value: []byte("1.2.3")}); err != nil {
				b.Fatal(err)
			}
			for range 2 {
				if _, err := c.Get("mega_mutex:raw"); err != nil {
					b.Fatal(err)
				}
			}
			if err := c.Delete("mega_mutex:raw"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("megamutex/TryAcquire-held", func(b *testing.B) {
		l := newLocker(b, megamutex.Config{Servers: m.Addrs()})
		lease, err := l.TryAcquire(ctx, "held")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = lease.Release(ctx) }) // free for the next -count
		for b.Loop() {
			if _, err := l.TryAcquire(ctx, "held"); !errors.Is(err, locks.ErrNotAcquired) {
				b.Fatal(err)
			}
		}
	})
}
