package cluster

import (
	"context"
	"database/sql"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
)

func startMariaDB(t *testing.T, cfg MariaDBConfig) *MariaDB {
	t.Helper()
	m, err := StartMariaDB(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// mdbQuery runs one scalar query on a fresh connection within timeout.
func mdbQuery(m *MariaDB, timeout time.Duration, q string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	db, err := sql.Open("mysql", m.DSN()+"?timeout=1s")
	if err != nil {
		return "", err
	}
	defer db.Close()
	var s string
	err = db.QueryRowContext(ctx, q).Scan(&s)
	return s, err
}

func TestMariaDBStartQueryClose(t *testing.T) {
	m, err := StartMariaDB(MariaDBConfig{Settings: map[string]string{"wait_timeout": "77"}})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			m.Close()
		}
	}()
	var _ Node = m
	for q, want := range map[string]string{
		"SELECT @@bind_address":  "127.0.0.1",
		"SELECT @@port":          strconv.Itoa(m.Port()),
		"SELECT @@socket":        m.Dir() + "/mariadbd.sock",
		"SELECT @@pid_file":      m.Dir() + "/mariadbd.pid",
		"SELECT @@datadir":       m.Dir() + "/data/",
		"SELECT @@wait_timeout":  "77",
		"SELECT DATABASE()":      MariaDBDatabase,
		"SELECT GET_LOCK('a',0)": "1",
		// Only the loopback user and the install's local ones.
		"SELECT COUNT(*) FROM mysql.user WHERE host NOT IN ('localhost', '127.0.0.1')": "0",
	} {
		got, err := mdbQuery(m, 5*time.Second, q)
		if err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", q, got, err, want)
		}
	}
	if os.Geteuid() == 0 {
		fi, err := os.Stat("/proc/" + strconv.Itoa(m.PID()))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Sys().(*syscall.Stat_t).Uid == 0 {
			t.Error("server runs as root")
		}
	}
	pid, dir := m.PID(), m.Dir()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	if pidAlive(pid) {
		t.Errorf("server %d still alive after Close", pid)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Close (%v)", dir, err)
	}
}

func TestMariaDBPauseResume(t *testing.T) {
	m := startMariaDB(t, MariaDBConfig{})
	db, err := sql.Open("mysql", m.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := m.Pause(); err != nil {
		t.Fatal(err)
	}
	qctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = conn.PingContext(qctx)
	cancel()
	if err == nil {
		t.Fatal("ping on an open connection succeeded while paused")
	}
	if _, err := mdbQuery(m, 300*time.Millisecond, "SELECT 'x'"); err == nil {
		t.Fatal("new connection succeeded while paused")
	}
	if err := m.Resume(); err != nil {
		t.Fatal(err)
	}
	if got, err := mdbQuery(m, 5*time.Second, "SELECT 'back'"); err != nil || got != "back" {
		t.Fatalf("after resume: %q, %v", got, err)
	}
}

func TestMariaDBKillRestartKeepsData(t *testing.T) {
	m := startMariaDB(t, MariaDBConfig{})
	port := m.Port()
	db, err := sql.Open("mysql", m.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE TABLE kept (v VARCHAR(10)) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO kept VALUES ('row')"); err != nil {
		t.Fatal(err)
	}
	// A lock held on a connection goes with the server.
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var got int
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK('k', 0)").Scan(&got); err != nil || got != 1 {
		t.Fatalf("GET_LOCK = %d, %v", got, err)
	}

	pid := m.PID()
	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	if pidAlive(pid) || m.PID() != 0 {
		t.Errorf("server alive after Kill")
	}
	if _, err := mdbQuery(m, time.Second, "SELECT 'x'"); err == nil {
		t.Fatal("query succeeded on a killed server")
	}
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	if m.Port() != port {
		t.Errorf("port changed: %d -> %d", port, m.Port())
	}
	if got, err := mdbQuery(m, 5*time.Second, "SELECT v FROM kept"); err != nil || got != "row" {
		t.Fatalf("after kill+restart: %q, %v", got, err)
	}
	if got, err := mdbQuery(m, 5*time.Second, "SELECT COALESCE(IS_USED_LOCK('k'), 'free')"); err != nil || got != "free" {
		t.Fatalf("lock after kill+restart: %q, %v", got, err)
	}
	if err := conn.PingContext(ctx); err == nil {
		t.Error("the pinned connection survived the server's kill")
	}

	// A graceful Stop with a client still connected, then Start.
	c2, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	start := time.Now()
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Stop with an open connection took %v", d)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	if got, err := mdbQuery(m, 5*time.Second, "SELECT v FROM kept"); err != nil || got != "row" {
		t.Fatalf("after stop+start: %q, %v", got, err)
	}
}
