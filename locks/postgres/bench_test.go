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
// directly, in the same run and on the same server, so that the difference
// is what locksim's wrapper costs:
//
//	go test ./locks/postgres/ -run '^$' -bench . -benchtime 2s
//
// roundtrip is one uncontended acquire+release; contended is
// b.RunParallel goroutines trying for one key (grants/op reports how many
// tries won).

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

	b.Run("roundtrip/locksim", func(b *testing.B) {
		for b.Loop() {
			if ok, err := wrappedTry(); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("roundtrip/pgx", func(b *testing.B) {
		for b.Loop() {
			if ok, err := rawTry("bench guid:raw"); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("contended/locksim", func(b *testing.B) {
		contended(b, func(int) (bool, error) { return wrappedTry() })
	})
	b.Run("contended/pgx", func(b *testing.B) {
		contended(b, func(g int) (bool, error) { return rawTry(fmt.Sprintf("bench guid:raw%d", g)) })
	})
}

// contended runs try from parallel goroutines and reports the share of
// tries that won the lock.
func contended(b *testing.B, try func(g int) (bool, error)) {
	var grants, gids atomic.Int64
	b.SetParallelism(2)
	b.RunParallel(func(pb *testing.PB) {
		g := int(gids.Add(1))
		for pb.Next() {
			ok, err := try(g)
			if err != nil {
				b.Error(err)
				return
			}
			if ok {
				grants.Add(1)
			}
		}
	})
	b.ReportMetric(float64(grants.Load())/float64(b.N), "grants/op")
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

	b.Run("roundtrip/locksim", func(b *testing.B) {
		for b.Loop() {
			if ok, err := wrappedTry(); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("roundtrip/pgx", func(b *testing.B) {
		for b.Loop() {
			if ok, err := rawTry(); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("contended/locksim", func(b *testing.B) {
		contended(b, func(int) (bool, error) { return wrappedTry() })
	})
	b.Run("contended/pgx", func(b *testing.B) {
		contended(b, func(int) (bool, error) { return rawTry() })
	})
}
