package mysql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/mysql"
)

// server is the real MariaDB every test and example of this package runs
// against, started by TestMain.
var server *cluster.MariaDB

func TestMain(m *testing.M) {
	var err error
	server, err = cluster.StartMariaDB(cluster.MariaDBConfig{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot start MariaDB:", err)
		os.Exit(1)
	}
	code := m.Run()
	server.Close()
	os.Exit(code)
}

var keySeq atomic.Int64

// testKey is a lock name of the test's own, new at every run (-count).
func testKey(t testing.TB) string {
	return fmt.Sprintf("%s-%d-%d", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano(), keySeq.Add(1))
}

func newLocker(t testing.TB, cfg mysql.Config, opts ...locks.Option) *mysql.Locker {
	t.Helper()
	l, err := mysql.New(context.Background(), server.DSN(), cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// scalar runs one query on a fresh connection of its own.
func scalar(t testing.TB, q string, args ...any) sql.NullInt64 {
	t.Helper()
	db, err := sql.Open("mysql", server.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n sql.NullInt64
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustLost(t *testing.T, err error, what string) {
	t.Helper()
	if !errors.Is(err, locks.ErrLockLost) {
		t.Fatalf("%s: %v, want ErrLockLost", what, err)
	}
}
