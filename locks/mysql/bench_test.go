package mysql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/mysql"
)

// BenchmarkLocker runs the backend beside the same statements issued
// through database/sql and go-sql-driver/mysql directly, alternating the
// two op by op on the same server, so that load from elsewhere on the
// machine falls on both alike and the difference is what locksim's
// wrapper (the machine and its driver) costs:
//
//	go test ./locks/mysql/ -run '^$' -bench . -benchtime 2s
//
// Each op is one try through locksim and one raw: a pinned connection from
// the pool, GET_LOCK(key, 0), the token row, RELEASE_LOCK, the connection
// back. roundtrip is uncontended; contended is b.RunParallel goroutines
// trying for one key (a try that loses makes no release). Reported:
// locksim-ns and raw-ns (mean time of a try), overhead-% (locksim over
// raw), and grants/try.
func BenchmarkLocker(b *testing.B) {
	ctx := context.Background()
	l, err := mysql.New(ctx, server.DSN(), mysql.Config{TokenTable: "bench_tokens"})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	db, err := sql.Open("mysql", server.DSN())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	key := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	const tokenSQL = "INSERT INTO `bench_tokens` (name, n) VALUES (?, LAST_INSERT_ID(1)) ON DUPLICATE KEY UPDATE n = LAST_INSERT_ID(n + 1)"

	rawTry := func() (bool, error) {
		conn, err := db.Conn(ctx)
		if err != nil {
			return false, err
		}
		defer conn.Close()
		var got sql.NullInt64
		var id int64
		if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?), CONNECTION_ID()", key, 0.0).Scan(&got, &id); err != nil {
			return false, err
		}
		if got.Int64 != 1 {
			return false, nil
		}
		if _, err := conn.ExecContext(ctx, tokenSQL, key); err != nil {
			return false, err
		}
		if err := conn.QueryRowContext(ctx, "SELECT RELEASE_LOCK(?)", key).Scan(&got); err != nil {
			return false, err
		}
		return true, nil
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
	b.Run("roundtrip", func(b *testing.B) { interleaved(b, false, wrappedTry, rawTry) })
	b.Run("contended", func(b *testing.B) { interleaved(b, true, wrappedTry, rawTry) })
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
	b.ReportMetric(r, "raw-ns")
	b.ReportMetric(100*(w-r)/r, "overhead-%")
	b.ReportMetric(float64(grants.Load())/(2*n), "grants/try")
}
