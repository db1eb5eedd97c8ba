package etcd_test

import (
	"context"
	"slices"
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

// BenchmarkPaired alternates one locksim round trip and one raw round trip
// per iteration, so that both see the same load on a shared machine, and
// reports the median of each and the wrapper's overhead in percent.
func BenchmarkPaired(b *testing.B) {
	cli := newClient(b, shared.Endpoints())
	l, err := etcd.New(cli, locks.WithTTL(benchTTL*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var ours, raw []time.Duration
	for b.Loop() {
		start := time.Now()
		lease, err := l.Acquire(ctx, "bench/paired/locksim")
		if err != nil {
			b.Fatal(err)
		}
		if err := lease.Release(ctx); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		s, err := concurrency.NewSession(cli, concurrency.WithTTL(benchTTL))
		if err != nil {
			b.Fatal(err)
		}
		m := concurrency.NewMutex(s, etcd.Prefix+"bench/paired/raw")
		if err := m.Lock(ctx); err != nil {
			b.Fatal(err)
		}
		if err := m.Unlock(ctx); err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		ours = append(ours, mid.Sub(start))
		raw = append(raw, time.Since(mid))
	}
	median := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2])
	}
	mo, mr := median(ours), median(raw)
	b.ReportMetric(mo, "locksim-ns/op")
	b.ReportMetric(mr, "raw-ns/op")
	b.ReportMetric(100*(mo-mr)/mr, "overhead-%")
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
