package consul_test

import (
	"context"
	"testing"

	"github.com/locksim/locksim/locks/consul"
)

// BenchmarkLock compares one uncontended lock round trip of this package
// (session create, KV acquire, read, release, session destroy) with the
// consul api's own Lock (LockKey, Lock, Unlock) on the same real -dev
// server in the same run.
func BenchmarkLock(b *testing.B) {
	c := startConsul(b, 1)
	url := c.URLs()[0]
	ctx := context.Background()

	b.Run("locks-consul/TryAcquire+Release", func(b *testing.B) {
		l := newLocker(b, url, consul.Config{})
		for b.Loop() {
			lease, err := l.TryAcquire(ctx, "bench/ours")
			if err != nil {
				b.Fatal(err)
			}
			if err := lease.Release(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("consul-api/Lock+Unlock", func(b *testing.B) {
		raw := rawClient(b, url)
		for b.Loop() {
			lock, err := raw.LockKey("bench/api")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := lock.Lock(nil); err != nil {
				b.Fatal(err)
			}
			if err := lock.Unlock(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
