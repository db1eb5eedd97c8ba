package behaviour_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/postgres"
	"github.com/locksim/locksim/sim/behaviour"
)

// holderEnv, set in the environment of this test binary, makes it an
// advisory lock holder (runHolder) instead of running the tests.
const holderEnv = "LOCKSIM_BEHAVIOUR_PG_HOLDER"

// init turns the test binary into a holder when holderEnv is set (an init
// rather than a TestMain, which the package's other services may need).
func init() {
	if dsn := os.Getenv(holderEnv); dsn != "" {
		os.Exit(runHolder(dsn, os.Getenv(holderEnv+"_KEY")))
	}
}

// runHolder is one client process holding an advisory lock with
// locks/postgres.Advisory, as harness/ clients do: it prints "token N"
// once granted, then answers "renew MS" (Renew with a timeout of MS ms)
// and "release" on stdin, one line each ("ok", "lost ...", "failed ...").
func runHolder(dsn, key string) int {
	ctx := context.Background()
	a, err := postgres.NewAdvisory(ctx, dsn, postgres.AdvisoryConfig{})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	lease, err := a.Acquire(ctx, key)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("token", lease.Token())
	answer := func(err error) {
		switch {
		case err == nil:
			fmt.Println("ok")
		case errors.Is(err, locks.ErrLockLost):
			fmt.Println("lost", err)
		default:
			fmt.Println("failed", err)
		}
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "renew":
			ms, _ := strconv.Atoi(f[1])
			rctx, cancel := context.WithTimeout(ctx, time.Duration(ms)*time.Millisecond)
			answer(lease.Renew(rctx))
			cancel()
		case len(f) == 1 && f[0] == "release":
			answer(lease.Release(ctx))
		default:
			fmt.Println("failed unknown command", sc.Text())
		}
	}
	return 0
}

// pgServer is a real PostgreSQL 15 from cluster/, configured as
// harness/deploy.go deploys it: TCP keepalives 2 s idle, 3 probes 1 s
// apart, and libfaketime reading an offset file at every clock read.
type pgServer struct {
	pg        *cluster.Postgres
	clockFile string
}

func startPG(t *testing.T) *pgServer {
	t.Helper()
	// The server runs as another user when this runs as root: its clock
	// file lives in a directory that user can read.
	dir, err := os.MkdirTemp("", "locksim-pgclock-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	clockFile := filepath.Join(dir, "faketime")
	if err := os.WriteFile(clockFile, []byte("+0s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pg, err := cluster.StartPostgres(cluster.PostgresConfig{
		Name: "pg",
		Settings: map[string]string{
			"tcp_keepalives_idle": "2", "tcp_keepalives_interval": "1", "tcp_keepalives_count": "3",
		},
		Env: []string{"LD_PRELOAD=" + cluster.FaketimeLib, "FAKETIME_TIMESTAMP_FILE=" + clockFile, "FAKETIME_NO_CACHE=1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	return &pgServer{pg: pg, clockFile: clockFile}
}

// realPG is one case's view of a real server.
type realPG struct {
	t        *testing.T
	srv      *pgServer
	pool     *pgxpool.Pool
	adv      *postgres.Advisory
	start    time.Time
	clientAt time.Duration // the client clock's offset
	serverAt time.Duration // the server clock's offset
	holders  int
}

// Locker's statements on table "locks", as locks/postgres/table.go
// (buildSQL) writes them.
const (
	ensureSQL     = `INSERT INTO "locks" (key) VALUES ($1) ON CONFLICT (key) DO NOTHING`
	releaseSQL    = `UPDATE "locks" SET locked_by = NULL WHERE key = $1 AND locked_by = $2`
	getDBSQL      = `UPDATE "locks" SET locked_by = $2, locked_at = clock_timestamp(), locked_until = clock_timestamp() + $3::bigint * interval '1 microsecond', sequence = sequence + 1 WHERE key = $1 AND (locked_by IS NULL OR locked_by = $2 OR locked_until < clock_timestamp()) RETURNING sequence, locked_until`
	renewDBSQL    = `UPDATE "locks" SET locked_until = clock_timestamp() + $3::bigint * interval '1 microsecond' WHERE key = $1 AND locked_by = $2 RETURNING locked_until`
	getClientSQL  = `UPDATE "locks" SET locked_by = $2, locked_at = $3, locked_until = $4, sequence = sequence + 1 WHERE key = $1 AND (locked_by IS NULL OR locked_by = $2 OR locked_until < $3) RETURNING sequence, locked_until`
	renewClientSQ = `UPDATE "locks" SET locked_until = $3 WHERE key = $1 AND locked_by = $2 RETURNING locked_until`
)

func newRealPG(t *testing.T, srv *pgServer) *realPG {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, srv.pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	// The table as Locker creates it, the sequence as Advisory does.
	if _, err := postgres.New(ctx, pool, postgres.Config{}); err != nil {
		t.Fatal(err)
	}
	adv, err := postgres.NewAdvisory(ctx, srv.pg.DSN(), postgres.AdvisoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return &realPG{t: t, srv: srv, pool: pool, adv: adv, start: time.Now()}
}

func (p *realPG) Sleep(d time.Duration)  { time.Sleep(d) }
func (p *realPG) Elapsed() time.Duration { return time.Since(p.start) }

func (p *realPG) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

func (p *realPG) clientNow() time.Time { return time.Now().Add(p.clientAt) }

func (p *realPG) Get(clock, key, id string, ttl time.Duration) (int64, time.Time, bool, error) {
	ctx, cancel := p.ctx()
	defer cancel()
	if _, err := p.pool.Exec(ctx, ensureSQL, key); err != nil {
		return 0, time.Time{}, false, err
	}
	var row pgx.Row
	if clock == "db" {
		row = p.pool.QueryRow(ctx, getDBSQL, key, id, ttl.Microseconds())
	} else {
		now := p.clientNow()
		row = p.pool.QueryRow(ctx, getClientSQL, key, id, now, now.Add(ttl))
	}
	var seq int64
	var until time.Time
	err := row.Scan(&seq, &until)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, time.Time{}, false, nil
	}
	return seq, until, err == nil, err
}

func (p *realPG) Renew(clock, key, id string, ttl time.Duration) (time.Time, bool, error) {
	ctx, cancel := p.ctx()
	defer cancel()
	var row pgx.Row
	if clock == "db" {
		row = p.pool.QueryRow(ctx, renewDBSQL, key, id, ttl.Microseconds())
	} else {
		row = p.pool.QueryRow(ctx, renewClientSQ, key, id, p.clientNow().Add(ttl))
	}
	var until time.Time
	err := row.Scan(&until)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	return until, err == nil, err
}

func (p *realPG) Release(key, id string) (bool, error) {
	ctx, cancel := p.ctx()
	defer cancel()
	tag, err := p.pool.Exec(ctx, releaseSQL, key, id)
	return tag.RowsAffected() == 1, err
}

func (p *realPG) ServerNow() (time.Time, error) {
	ctx, cancel := p.ctx()
	defer cancel()
	var now time.Time
	err := p.pool.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&now)
	return now, err
}

// StepServerClock writes libfaketime's offset file, as harness/deploy.go
// does for the server-clock fault.
func (p *realPG) StepServerClock(d time.Duration) error {
	p.serverAt += d
	return os.WriteFile(p.srv.clockFile, []byte(fmt.Sprintf("%+ds\n", int64(p.serverAt/time.Second))), 0o644)
}

func (p *realPG) StepClientClock(d time.Duration) error {
	p.clientAt += d
	return nil
}

// Restart restarts the server; the pool's connections went with the old
// process.
func (p *realPG) Restart() error {
	if err := p.srv.pg.Restart(); err != nil {
		return err
	}
	p.pool.Reset()
	return nil
}

// Free tries the lock from a session of the pool's, directly connected.
func (p *realPG) Free(key string) (bool, error) {
	ctx, cancel := p.ctx()
	defer cancel()
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Release()
	space, h := p.adv.LockKey(key)
	var got bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1::int4, $2::int4)", space, h).Scan(&got); err != nil {
		return false, err
	}
	if got {
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1::int4, $2::int4)", space, h); err != nil {
			return false, err
		}
	}
	return got, nil
}

// realHolder is a holder process of this test binary (runHolder), with
// its own network of one toxiproxy link to the server.
type realHolder struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	net   *faults.Network
	name  string
	token int64
	// server is the node name of the link Cut cuts ("" is "pg").
	server string

	waitOnce sync.Once
}

func (p *realPG) Hold(key string, direct bool) (behaviour.Holder, error) {
	p.holders++
	h := &realHolder{name: "h" + strconv.Itoa(p.holders), lines: make(chan string, 16), net: faults.NewNetwork()}
	p.t.Cleanup(h.close)
	addr := p.srv.pg.Addr()
	if !direct {
		l, err := h.net.AddLink(h.name, "pg", addr)
		if err != nil {
			return nil, err
		}
		addr = l.Addr()
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	h.cmd = exec.Command(exe)
	h.cmd.Env = append(os.Environ(),
		holderEnv+"="+fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable&connect_timeout=2", addr),
		holderEnv+"_KEY="+key)
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	h.cmd.Stderr = os.Stderr
	return h, h.begin()
}

// begin starts the holder's process (h.cmd, set up) and reads its token.
func (h *realHolder) begin() error {
	in, err := h.cmd.StdinPipe()
	if err != nil {
		return err
	}
	h.in = in
	out, err := h.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := h.cmd.Start(); err != nil {
		return err
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
	}()
	line, err := h.read(15 * time.Second)
	if err != nil {
		return err
	}
	tok, ok := strings.CutPrefix(line, "token ")
	if !ok {
		return fmt.Errorf("holder %s: %s", h.name, line)
	}
	h.token, err = strconv.ParseInt(tok, 10, 64)
	return err
}

func (h *realHolder) read(limit time.Duration) (string, error) {
	select {
	case l, ok := <-h.lines:
		if !ok {
			return "", fmt.Errorf("holder %s exited", h.name)
		}
		return l, nil
	case <-time.After(limit):
		return "", fmt.Errorf("holder %s: no answer within %v", h.name, limit)
	}
}

func (h *realHolder) ask(cmd string, limit time.Duration) (behaviour.RenewResult, error) {
	if _, err := fmt.Fprintln(h.in, cmd); err != nil {
		return 0, err
	}
	line, err := h.read(limit)
	if err != nil {
		return 0, err
	}
	switch word, _, _ := strings.Cut(line, " "); word {
	case "ok":
		return behaviour.LeaseOK, nil
	case "lost":
		return behaviour.LeaseLost, nil
	case "failed":
		return behaviour.LeaseFailed, nil
	}
	return 0, fmt.Errorf("holder %s: %s", h.name, line)
}

func (h *realHolder) Token() int64 { return h.token }

func (h *realHolder) Renew(timeout time.Duration) (behaviour.RenewResult, error) {
	return h.ask("renew "+strconv.FormatInt(timeout.Milliseconds(), 10), timeout+10*time.Second)
}

func (h *realHolder) Release() (behaviour.RenewResult, error) {
	return h.ask("release", 10*time.Second)
}

func (h *realHolder) Cut() error {
	server := h.server
	if server == "" {
		server = "pg"
	}
	h.net.Cut(h.name, server, faults.Both)
	return nil
}
func (h *realHolder) Heal() error   { h.net.Heal(); return nil }
func (h *realHolder) Pause() error  { return h.cmd.Process.Signal(syscall.SIGSTOP) }
func (h *realHolder) Resume() error { return h.cmd.Process.Signal(syscall.SIGCONT) }

func (h *realHolder) Kill() error {
	err := h.cmd.Process.Kill()
	h.wait()
	return err
}

func (h *realHolder) wait() { h.waitOnce.Do(func() { _ = h.cmd.Wait() }) }

func (h *realHolder) close() {
	if h.cmd != nil && h.cmd.Process != nil {
		_ = h.cmd.Process.Kill()
		h.wait()
	}
	h.net.Close()
}

// The behaviour cases on a real PostgreSQL: the cases that step the
// clock or restart on a server each of their own, the others on one
// shared server (each on keys of its own).
func TestPostgresReal(t *testing.T) {
	shared := startPG(t)
	for _, c := range behaviour.PostgresCases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			srv := shared
			if c.Alone {
				srv = startPG(t)
			}
			if err := c.Run(newRealPG(t, srv)); err != nil {
				t.Error(err)
			}
		})
	}
}
