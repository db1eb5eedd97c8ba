package behaviour_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/mysql"
	"github.com/locksim/locksim/sim/behaviour"
)

// mysqlHolderEnv, set in the environment of this test binary, makes it a
// named lock holder (runMySQLHolder) instead of running the tests.
const mysqlHolderEnv = "LOCKSIM_BEHAVIOUR_MYSQL_HOLDER"

func init() {
	if dsn := os.Getenv(mysqlHolderEnv); dsn != "" {
		os.Exit(runMySQLHolder(dsn, os.Getenv(mysqlHolderEnv+"_KEY")))
	}
}

// runMySQLHolder is one client process holding a named lock with
// locks/mysql, configured as harness/ clients are (mysql.RunConfig): it
// prints "token N" once granted, then answers "renew MS" and "release" on
// stdin as runHolder does.
func runMySQLHolder(dsn, key string) int {
	ctx := context.Background()
	l, err := mysql.New(ctx, dsn, mysql.RunConfig(false))
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	lease, err := l.Acquire(ctx, key)
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

// realMySQL is one case's view of a real MariaDB from cluster/, deployed
// as harness/deploy.go deploys it (its defaults).
type realMySQL struct {
	t       *testing.T
	srv     *cluster.MariaDB
	db      *sql.DB
	start   time.Time
	holders int
}

func startMariaDB(t *testing.T) *cluster.MariaDB {
	t.Helper()
	m, err := cluster.StartMariaDB(cluster.MariaDBConfig{Name: "mysql"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func newRealMySQL(t *testing.T, srv *cluster.MariaDB) *realMySQL {
	// The token table as the Locker creates it.
	l, err := mysql.New(context.Background(), srv.DSN(), mysql.Config{})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	db, err := sql.Open("mysql", srv.DSN()+"?timeout=2s")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &realMySQL{t: t, srv: srv, db: db, start: time.Now()}
}

func (m *realMySQL) Sleep(d time.Duration)      { time.Sleep(d) }
func (m *realMySQL) Elapsed() time.Duration     { return time.Since(m.start) }
func (m *realMySQL) Logf(f string, args ...any) { m.t.Logf(f, args...) }
func (m *realMySQL) Restart() error             { return m.srv.Restart() }
func (m *realMySQL) SetWaitTimeout(d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := m.db.ExecContext(ctx, "SET GLOBAL wait_timeout = "+strconv.Itoa(int(d/time.Second)))
	return err
}

func (m *realMySQL) Free(key string) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var free sql.NullInt64
	err := m.db.QueryRowContext(ctx, "SELECT IS_FREE_LOCK(?)", key).Scan(&free)
	return free.Valid && free.Int64 == 1, err
}

func (m *realMySQL) Hold(key string, direct bool) (behaviour.Holder, error) {
	m.holders++
	h := &realHolder{name: "h" + strconv.Itoa(m.holders), lines: make(chan string, 16), net: faults.NewNetwork(), server: "mysql"}
	m.t.Cleanup(h.close)
	addr := m.srv.Addr()
	if !direct {
		l, err := h.net.AddLink(h.name, "mysql", addr)
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
	h.cmd.Env = append(os.Environ(), mysqlHolderEnv+"="+cluster.MariaDBDSN(addr)+"?timeout=2s", mysqlHolderEnv+"_KEY="+key)
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	h.cmd.Stderr = os.Stderr
	return h, h.begin()
}

// The behaviour cases on a real MariaDB: the cases that change the whole
// server on a server each of their own, the others on one shared server.
func TestMySQLReal(t *testing.T) {
	shared := startMariaDB(t)
	for _, c := range behaviour.MySQLCases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			srv := shared
			if c.Alone {
				srv = startMariaDB(t)
			}
			if err := c.Run(newRealMySQL(t, srv)); err != nil {
				t.Error(err)
			}
		})
	}
}
