package etcd_test

import (
	"context"
	"testing"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/etcd"
)

// The benchmarks run locksim's etcd Locker and the raw concurrency.Mutex
// doing the same RPCs (grant, keepalive, lock, unlock, revoke) on the same
// cluster, in the same run, so that the wrapper's cost shows:
//
//	go test -run '^$' -bench . -count 6 ./locks/etcd/

const benchTTL = 10 // seconds

func BenchmarkAcquireRelease(b *testing.B) {
	cli := newClient(b, shared.Endpoints())
	l, err := etcd.New(cli, locks.WithTTL(benchTTL*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run("locksim", func(b *testing.B) {
		for b.Loop() {
			lease, err := l.Acquire(ctx, "bench/rt/locksim")
			if err != nil {
				b.Fatal(err)
			}
			if err := lease.Release(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw", func(b *testing.B) {
		for b.Loop() {
			s, err := concurrency.NewSession(cli, concurrency.WithTTL(benchTTL))
			if err != nil {
				b.Fatal(err)
			}
			m := concurrency.NewMutex(s, etcd.Prefix+"bench/rt/raw")
			if err := m.Lock(ctx); err != nil {
				b.Fatal(err)
			}
			if err := m.Unlock(ctx); err != nil {
				b.Fatal(err)
			}
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkContended has 8 goroutines (4 per CPU) take turns on one key;
// ns/op is the time per grant.
func BenchmarkContended(b *testing.B) {
	cli := newClient(b, shared.Endpoints())
	l, err := etcd.New(cli, locks.WithTTL(benchTTL*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run("locksim", func(b *testing.B) {
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				lease, err := l.Acquire(ctx, "bench/contended/locksim")
				if err != nil {
					b.Error(err)
					return
				}
				if err := lease.Release(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("raw", func(b *testing.B) {
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				s, err := concurrency.NewSession(cli, concurrency.WithTTL(benchTTL))
				if err != nil {
					b.Error(err)
					return
				}
				m := concurrency.NewMutex(s, etcd.Prefix+"bench/contended/raw")
				if err := m.Lock(ctx); err != nil {
					b.Error(err)
					return
				}
				if err := m.Unlock(ctx); err != nil {
					b.Error(err)
					return
				}
				if err := s.Close(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
