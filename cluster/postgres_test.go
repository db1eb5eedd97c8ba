package cluster

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func startPostgres(t *testing.T) *Postgres {
	t.Helper()
	pg, err := StartPostgres(PostgresConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	return pg
}

// pgQuery runs one scalar query on a fresh connection within timeout.
func pgQuery(pg *Postgres, timeout time.Duration, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := pgx.Connect(ctx, pg.DSN())
	if err != nil {
		return "", err
	}
	defer c.Close(context.Background())
	var s string
	err = c.QueryRow(ctx, sql).Scan(&s)
	return s, err
}

// pgExec runs statements on a fresh connection.
func pgExec(pg *Postgres, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, pg.DSN())
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	_, err = c.Exec(ctx, sql)
	return err
}

// pidAlive reports whether pid runs (a zombie is dead, only not yet reaped
// by its new parent).
func pidAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || !strings.HasPrefix(strings.TrimSpace(string(b[i+1:])), "Z")
}

func TestPostgresStartQueryClose(t *testing.T) {
	pg, err := StartPostgres(PostgresConfig{Env: []string{"LOCKSIM_TEST_ENV=1"}})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			pg.Close()
		}
	}()
	var _ Node = pg

	for sql, want := range map[string]string{
		"SHOW listen_addresses": "127.0.0.1",
		// Local connections only: the unix socket and loopback.
		"SELECT string_agg(type || ':' || coalesce(address, '') || '/' || coalesce(netmask, ''), ',' ORDER BY line_number) FROM pg_hba_file_rules": "local:/,host:127.0.0.1/255.255.255.255",
		"SHOW fsync":          "off",
		"SELECT current_user": "postgres",
		"SELECT 'ok'":         "ok",
	} {
		got, err := pgQuery(pg, 5*time.Second, sql)
		if err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", sql, got, err, want)
		}
	}
	env, err := os.ReadFile("/proc/" + strconv.Itoa(pg.PID()) + "/environ")
	if err != nil || !strings.Contains(string(env), "LOCKSIM_TEST_ENV=1") {
		t.Errorf("server environment lacks the extra env (%v)", err)
	}
	if os.Geteuid() == 0 {
		fi, err := os.Stat("/proc/" + strconv.Itoa(pg.PID()))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Sys().(*syscall.Stat_t).Uid == 0 {
			t.Error("server runs as root")
		}
	}

	pids := append([]int{pg.PID()}, pg.children()...)
	if len(pids) < 2 {
		t.Fatalf("expected postmaster and children, got %v", pids)
	}
	dir := pg.Dir()
	if err := pg.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	for _, pid := range pids {
		if pidAlive(pid) {
			t.Errorf("process %d still alive after Close", pid)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Close (%v)", dir, err)
	}
}

func TestPostgresPauseResume(t *testing.T) {
	pg := startPostgres(t)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)

	if err := pg.Pause(); err != nil {
		t.Fatal(err)
	}
	// An open connection stalls (its backend is stopped too), and so does a
	// new one.
	qctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = c.Exec(qctx, "SELECT 1")
	cancel()
	if err == nil {
		t.Fatal("query on an open connection succeeded while paused")
	}
	if _, err := pgQuery(pg, 300*time.Millisecond, "SELECT 'x'"); err == nil {
		t.Fatal("new connection succeeded while paused")
	}
	if err := pg.Resume(); err != nil {
		t.Fatal(err)
	}
	if got, err := pgQuery(pg, 5*time.Second, "SELECT 'back'"); err != nil || got != "back" {
		t.Fatalf("after resume: %q, %v", got, err)
	}
}

func TestPostgresKillRestartKeepsData(t *testing.T) {
	pg := startPostgres(t)
	port := pg.Port()
	if err := pgExec(pg, "CREATE TABLE kept AS SELECT 'row'::text AS v; CHECKPOINT"); err != nil {
		t.Fatal(err)
	}

	pids := append([]int{pg.PID()}, pg.children()...)
	if err := pg.Kill(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if pidAlive(pid) {
			t.Errorf("process %d alive after Kill", pid)
		}
	}
	if pg.PID() != 0 {
		t.Error("PID not 0 after Kill")
	}
	if _, err := pgQuery(pg, time.Second, "SELECT 'x'"); err == nil {
		t.Fatal("query succeeded on a killed server")
	}

	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	if pg.Port() != port {
		t.Errorf("port changed: %d -> %d", port, pg.Port())
	}
	if got, err := pgQuery(pg, 5*time.Second, "SELECT v FROM kept"); err != nil || got != "row" {
		t.Fatalf("after kill+restart: %q, %v", got, err)
	}

	// A graceful Stop with a client still connected, then Start.
	ctx := context.Background()
	c, err := pgx.Connect(ctx, pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	start := time.Now()
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Stop with an open session took %v", d)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	if got, err := pgQuery(pg, 5*time.Second, "SELECT v FROM kept"); err != nil || got != "row" {
		t.Fatalf("after stop+start: %q, %v", got, err)
	}
}

// A temporary directory whose locksim process died before Close is removed
// by the next StartPostgres.
func TestPostgresSweepsStaleDirs(t *testing.T) {
	stale, err := os.MkdirTemp(tempBase(os.Geteuid() == 0), "locksim-stale-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(stale)
	// A pid above pid_max (4194304 at most) is never alive.
	if err := os.WriteFile(stale+"/"+OwnerFile, []byte("2000000000"), 0o644); err != nil {
		t.Fatal(err)
	}
	live, err := os.MkdirTemp(tempBase(os.Geteuid() == 0), "locksim-live-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(live)
	if err := os.WriteFile(live+"/"+OwnerFile, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	startPostgres(t)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale dir %s not removed (%v)", stale, err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("live dir %s removed: %v", live, err)
	}
}
