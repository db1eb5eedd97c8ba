package postgres_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/locks"
)

// server is the real PostgreSQL every test and example of this package
// runs against, started by TestMain.
var server *cluster.Postgres

func TestMain(m *testing.M) {
	var err error
	server, err = cluster.StartPostgres(cluster.PostgresConfig{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot start PostgreSQL:", err)
		os.Exit(1)
	}
	code := m.Run()
	server.Close()
	os.Exit(code)
}

// leakCheck verifies at the end of the test, after every later cleanup,
// that the test left no goroutine behind.
func leakCheck(t *testing.T) {
	t.Helper()
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// newPool returns a pool on the test server, closed when the test ends.
func newPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), server.DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// testKey is a lock key of the test's own, new at every run (-count).
func testKey(t testing.TB) string {
	return fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano())
}

// skewedClock is the system clock shifted by a constant offset.
type skewedClock struct {
	locks.SystemClock
	offset time.Duration
}

func (c skewedClock) Now() time.Time { return time.Now().Add(c.offset) }

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
