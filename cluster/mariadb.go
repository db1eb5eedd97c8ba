package cluster

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MariaDBConfig configures a MariaDB server started by StartMariaDB. The
// zero value is usable.
type MariaDBConfig struct {
	// Name is the node's name (default "mariadb").
	Name string
	// Binary is the server (default mariadbd on PATH, else
	// /usr/sbin/mariadbd, where Debian's mariadb-server puts it).
	Binary string
	// InstallDB is mariadb-install-db (default: on PATH, else
	// /usr/bin/mariadb-install-db).
	InstallDB string
	// Settings are extra server options passed as --name=value, e.g.
	// "wait_timeout": "5".
	Settings map[string]string
	// RunAs is the OS user the server runs as when locksim runs as root
	// (mariadbd refuses root unless told otherwise). Default: "mysql" if
	// that user exists, else "nobody". Ignored when not root.
	RunAs string
	// StartTimeout bounds each start until the server answers (default
	// 60 s).
	StartTimeout time.Duration
}

// MariaDBDatabase is the database StartMariaDB creates, which DSN names.
const MariaDBDatabase = "locksim"

// MariaDB is one MariaDB server in its own data directory: listening on
// 127.0.0.1 on a free port and on a unix socket in its temporary directory,
// with a user root@127.0.0.1 without a password (loopback only) and the
// database "locksim". It is a Node; Restart keeps its data directory and
// port. Close removes everything.
//
// mariadbd is one process (a thread per connection), so the Process
// defaults act on all of it: Pause stops every connection, Kill ends
// them all at once.
type MariaDB struct {
	*Process
	cfg     MariaDBConfig
	dir     string // temporary directory: data/, socket, pid file, logs
	dataDir string
	port    int
	cred    *syscall.Credential // nil when not root
}

// StartMariaDB makes a data directory with mariadb-install-db in a new
// temporary directory and starts mariadbd on it as a child process (not
// mysqld_safe or a service, which would escape locksim's process group),
// with --no-defaults so that no system option file, socket or pid path is
// used. It returns once the server answers queries.
func StartMariaDB(cfg MariaDBConfig) (_ *MariaDB, err error) {
	if cfg.Name == "" {
		cfg.Name = "mariadb"
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 60 * time.Second
	}
	if cfg.Binary, err = findBinary(cfg.Binary, "mariadbd", "/usr/sbin/mariadbd"); err != nil {
		return nil, err
	}
	if cfg.InstallDB, err = findBinary(cfg.InstallDB, "mariadb-install-db", "/usr/bin/mariadb-install-db"); err != nil {
		return nil, err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		if cred, err = mariadbCredential(cfg.RunAs); err != nil {
			return nil, err
		}
	}
	dir, err := MakeTempDir(tempBase(cred != nil), "locksim-"+cfg.Name+"-", 0o644)
	if err != nil {
		return nil, fmt.Errorf("cluster: %s: %w", cfg.Name, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("cluster: %s: %w", cfg.Name, err)
		}
	}
	m := &MariaDB{cfg: cfg, dir: dir, dataDir: filepath.Join(dir, "data"), cred: cred}
	if err := m.installDB(); err != nil {
		return nil, err
	}
	m.Process = NewProcess(cfg.Name, filepath.Join(dir, "mariadbd.log"), m.command)
	// The free port may be taken before mariadbd binds it: try a new one.
	for attempt := 1; ; attempt++ {
		if m.port, err = FreePort(); err != nil {
			return nil, fmt.Errorf("cluster: %s: free port: %w", cfg.Name, err)
		}
		err = m.start()
		if err == nil {
			return m, nil
		}
		_ = m.Kill()
		if attempt == 3 || !strings.Contains(err.Error(), "already in use") {
			return nil, err
		}
	}
}

// findBinary is path if set, else name on PATH, else fallback.
func findBinary(path, name, fallback string) (string, error) {
	if path != "" {
		return path, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if _, err := os.Stat(fallback); err == nil {
		return fallback, nil
	}
	return "", fmt.Errorf("cluster: %s not found on PATH or at %s (make setup installs mariadb-server)", name, fallback)
}

// mariadbCredential is the user a root locksim runs MariaDB as.
func mariadbCredential(name string) (*syscall.Credential, error) {
	if name == "" {
		if _, err := user.Lookup("mysql"); err == nil {
			name = "mysql"
		} else {
			name = "nobody"
		}
	}
	return serverCredential(name)
}

// initSQL runs at every start (--init-file): the install's users for the
// machine's host name go (only local ones stay), then the loopback user the
// clients connect as, and the database.
const initSQL = "DELETE FROM mysql.global_priv WHERE host NOT IN ('localhost', '127.0.0.1');\n" +
	"DELETE FROM mysql.proxies_priv WHERE host NOT IN ('localhost', '127.0.0.1');\n" +
	"FLUSH PRIVILEGES;\n" +
	"CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';\n" +
	"GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;\n" +
	"CREATE DATABASE IF NOT EXISTS " + MariaDBDatabase + ";\n"

func (m *MariaDB) installDB() error {
	init := filepath.Join(m.dir, "init.sql")
	if err := os.WriteFile(init, []byte(initSQL), 0o644); err != nil {
		return fmt.Errorf("cluster: %s: %w", m.cfg.Name, err)
	}
	cmd := exec.Command(m.cfg.InstallDB, "--no-defaults", "--datadir="+m.dataDir,
		"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve")
	cmd.Dir = m.dir
	cmd.Env = m.env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: m.cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cluster: %s: mariadb-install-db: %w\n%s", m.cfg.Name, err, out.Bytes())
	}
	return nil
}

func (m *MariaDB) env() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "LANG=C", "TZ=UTC", "HOME=" + m.dir}
}

// command builds the mariadbd command line for one start.
func (m *MariaDB) command() *exec.Cmd {
	settings := map[string]string{
		"datadir":           m.dataDir,
		"port":              strconv.Itoa(m.port),
		"bind-address":      "127.0.0.1",
		"socket":            filepath.Join(m.dir, "mariadbd.sock"),
		"pid-file":          filepath.Join(m.dir, "mariadbd.pid"),
		"tmpdir":            m.dir,
		"init-file":         filepath.Join(m.dir, "init.sql"),
		"skip-name-resolve": "ON",
		"max-connections":   "200",
		// Each commit is written to the OS at once and flushed to disk
		// once a second: a killed server (not the machine) loses nothing,
		// as the kernel keeps the writes.
		"innodb-flush-log-at-trx-commit": "2",
		"innodb-buffer-pool-size":        "16M",
	}
	for k, v := range m.cfg.Settings {
		settings[strings.ReplaceAll(k, "_", "-")] = v
	}
	args := []string{"--no-defaults"} // must come first
	for k, v := range settings {
		args = append(args, "--"+k+"="+v)
	}
	cmd := exec.Command(m.cfg.Binary, args...)
	cmd.Dir = m.dir
	cmd.Env = m.env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: m.cred}
	return cmd
}

// start starts the process and waits until it answers queries.
func (m *MariaDB) start() error {
	if err := m.Process.Start(); err != nil {
		return err
	}
	if err := m.waitReady(); err != nil {
		return fmt.Errorf("%w\n%s", err, m.logTail())
	}
	return nil
}

func (m *MariaDB) waitReady() error {
	exited := m.Exited()
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.StartTimeout)
	defer cancel()
	for {
		err := m.ping(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("cluster: %s exited during start", m.cfg.Name)
		case <-ctx.Done():
			return fmt.Errorf("cluster: %s not ready after %v: %w", m.cfg.Name, m.cfg.StartTimeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ping opens one connection and runs a query on the database.
func (m *MariaDB) ping(ctx context.Context) error {
	cfg, err := mysql.ParseDSN(m.DSN())
	if err != nil {
		return err
	}
	cfg.Timeout = 2 * time.Second
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	var one int
	return db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

func (m *MariaDB) logTail() string {
	b, _ := os.ReadFile(m.LogPath())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return strings.TrimSpace(string(b))
}

// Start starts a stopped or killed server again and waits until it answers
// queries. Starting a running server does nothing.
func (m *MariaDB) Start() error {
	if m.Running() {
		return nil
	}
	return m.start()
}

// Restart implements Node: Stop, then start on the same data directory and
// port, and wait until the server answers queries.
func (m *MariaDB) Restart() error {
	if err := m.Stop(); err != nil {
		return err
	}
	return m.start()
}

// Port is the server's TCP port on 127.0.0.1.
func (m *MariaDB) Port() int { return m.port }

// Addr is the server's TCP address, "127.0.0.1:port".
func (m *MariaDB) Addr() string { return "127.0.0.1:" + strconv.Itoa(m.port) }

// Dir is the server's temporary directory (data directory, socket, log:
// mariadbd writes its error log to stderr, which goes to LogPath).
func (m *MariaDB) Dir() string { return m.dir }

// DSN is a go-sql-driver/mysql data source name for root on database
// "locksim" over TCP to the server.
func (m *MariaDB) DSN() string { return MariaDBDSN(m.Addr()) }

// MariaDBDSN is the data source name of a server started by StartMariaDB
// reached at addr (host:port), e.g. through a proxy.
func MariaDBDSN(addr string) string {
	return "root@tcp(" + addr + ")/" + MariaDBDatabase
}

// Close kills the server and removes its temporary directory.
func (m *MariaDB) Close() error {
	var err error
	if m.Process != nil {
		err = m.Kill()
	}
	return errors.Join(err, os.RemoveAll(m.dir))
}
