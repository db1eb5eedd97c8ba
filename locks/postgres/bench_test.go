package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/postgres"
)

// The benchmarks run each backend beside the same SQL issued through pgx
// directly, alternating the two op by op on the same server, so that load
// from elsewhere on the machine falls on both alike and the difference is
// what locksim's wrapper costs:
//
//	go test ./locks/postgres/ -run '^$' -bench . -benchtime 2s
//
// Each op is one try through locksim and one through pgx. roundtrip is an
// uncontended acquire+release; contended is b.RunParallel goroutines trying
// for one key (a try that loses makes no release). Reported: locksim-ns and
// pgx-ns (mean time of a try), overhead-% (locksim over pgx), and
// grants/try.

// The lease-table statements, as Locker (ClockDB) issues them on table
// "bench_locks".
const (
	benchEnsureSQL  = `INSERT INTO "bench_locks" (key) VALUES ($1) ON CONFLICT (key) DO NOTHING`
	benchGetSQL     = `UPDATE "bench_locks" SET locked_by = $2, locked_at = clock_timestamp(), locked_until = clock_timestamp() + $3::bigint * interval '1 microsecond', sequence = sequence + 1 WHERE key = $1 AND (locked_by IS NULL OR locked_by = $2 OR locked_until < clock_timestamp()) RETURNING sequence, locked_until`
	benchReleaseSQL = `UPDATE "bench_locks" SET locked_by = NULL WHERE key = $1 AND locked_by = $2`
)

func BenchmarkLocker(b *testing.B) {
	ctx := context.Background()
	pool := newPool(b)
	l, err := postgres.New(ctx, pool, postgres.Config{Table: "bench_locks"}, locks.WithOwner("bench"))
	if err != nil {
		b.Fatal(err)
	}
	ttl := l.Options().TTL.Microseconds()
	key := fmt.Sprintf("bench-%d", time.Now().UnixNano())

	// rawTry is one TryAcquire+Release of the same SQL through the pool.
	rawTry := func(id string) (bool, error) {
		if _, err := pool.Exec(ctx, benchEnsureSQL, key); err != nil {
			return false, err
		}
		var seq int64
		var until time.Time
		err := pool.QueryRow(ctx, benchGetSQL, key, id, ttl).Scan(&seq, &until)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		_, err = pool.Exec(ctx, benchReleaseSQL, key, id)
		return true, err
	}
	// rawID is a new locked_by per grant, as Locker's guid is.
	var n atomic.Int64
	rawID := func() string { return fmt.Sprintf("bench guid:%032x", n.Add(1)) }
	wrappedTry := func() (bool, error) {
		lease, err := l.TryAcquire(ctx, key)
		if errors.Is(err, locks.ErrNotAcquired) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return true, lease.Release(ctx)
	}

	b.Run("roundtrip", func(b *testing.B) {
		interleaved(b, false, wrappedTry, func() (bool, error) { return rawTry(rawID()) })
	})
	b.Run("contended", func(b *testing.B) {
		interleaved(b, true, wrappedTry, func() (bool, error) { return rawTry(rawID()) })
	})
}

// interleaved runs wrapped and raw alternately, b.N times each (from
// parallel goroutines if parallel), and reports their mean times, the
// wrapper's overhead and the share of tries granted. A roundtrip must be
// granted every time.
func interleaved(b *testing.B, parallel bool, wrapped, raw func() (bool, error)) {
	var wNs, rNs, grants atomic.Int64
	one := func(i int) bool {
		tries := [2]func() (bool, error){wrapped, raw}
		sums := [2]*atomic.Int64{&wNs, &rNs}
		for k := range 2 {
			k := (k + i) % 2 // alternate which goes first
			start := time.Now()
			ok, err := tries[k]()
			sums[k].Add(int64(time.Since(start)))
			if err != nil || (!ok && !parallel) {
				b.Error(ok, err)
				return false
			}
			if ok {
				grants.Add(1)
			}
		}
		return true
	}
	if parallel {
		b.SetParallelism(2)
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				if !one(i) {
					return
				}
			}
		})
	} else {
		for i := 0; b.Loop(); i++ {
			if !one(i) {
				return
			}
		}
	}
	n := float64(b.N)
	w, r := float64(wNs.Load())/n, float64(rNs.Load())/n
	b.ReportMetric(w, "locksim-ns")
	b.ReportMetric(r, "pgx-ns")
	b.ReportMetric(100*(w-r)/r, "overhead-%")
	b.ReportMetric(float64(grants.Load())/(2*n), "grants/try")
}

func BenchmarkAdvisory(b *testing.B) {
	ctx := context.Background()
	a, err := postgres.NewAdvisory(ctx, server.DSN(), postgres.AdvisoryConfig{Sequence: "bench_tokens"})
	if err != nil {
		b.Fatal(err)
	}
	cc, err := pgx.ParseConfig(server.DSN())
	if err != nil {
		b.Fatal(err)
	}
	key := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	space, h := a.LockKey(key)

	// rawTry is the same work through pgx: a connection of its own, the
	// same try statement, unlock, close.
	rawTry := func() (bool, error) {
		conn, err := pgx.ConnectConfig(ctx, cc.Copy())
		if err != nil {
			return false, err
		}
		defer conn.Close(ctx)
		var token *int64
		err = conn.QueryRow(ctx, `SELECT CASE WHEN pg_try_advisory_lock($1::int4, $2::int4) THEN nextval('"bench_tokens"') END`, space, h).Scan(&token)
		if err != nil || token == nil {
			return false, err
		}
		var unlocked bool
		if err := conn.QueryRow(ctx, "SELECT pg_advisory_unlock($1::int4, $2::int4)", space, h).Scan(&unlocked); err != nil {
			return false, err
		}
		return true, nil
	}
	wrappedTry := func() (bool, error) {
		lease, err := a.TryAcquire(ctx, key)
		if errors.Is(err, locks.ErrNotAcquired) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return true, lease.Release(ctx)
	}

	b.Run("roundtrip", func(b *testing.B) {
		interleaved(b, false, wrappedTry, rawTry)
	})
	b.Run("contended", func(b *testing.B) {
		interleaved(b, true, wrappedTry, rawTry)
	})
}
