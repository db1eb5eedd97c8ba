package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// PostgresConfig configures a PostgreSQL server started by StartPostgres.
// The zero value is usable.
type PostgresConfig struct {
	// Name is the node's name (default "pg").
	Name string
	// BinDir holds initdb and postgres; default: found on PATH, else the
	// newest /usr/lib/postgresql/*/bin.
	BinDir string
	// Env is added to the server's environment at every start, e.g.
	// LD_PRELOAD and FAKETIME for libfaketime. SetEnv replaces it before a
	// Restart.
	Env []string
	// Settings are extra server settings passed as -c name=value.
	Settings map[string]string
	// RunAs is the OS user the server runs as when locksim runs as root
	// (initdb and postgres refuse root). Default: "postgres" if that user
	// exists, else "nobody". Ignored when not root: the server then runs as
	// the current user.
	RunAs string
	// StartTimeout bounds each start until the server accepts queries
	// (default 60 s).
	StartTimeout time.Duration
}

// Postgres is one PostgreSQL server in its own cluster directory: listening
// on 127.0.0.1 on a free port and on a unix socket in its temporary
// directory, trusting local and loopback connections only. It is a Node;
// Restart keeps its data directory and port. Close removes everything.
type Postgres struct {
	*Process
	cfg     PostgresConfig
	dir     string // temporary directory: data/, socket, log
	dataDir string
	port    int
	cred    *syscall.Credential // nil when not root

	envMu sync.Mutex
	env   []string
}

// StartPostgres creates a cluster with initdb in a new temporary directory
// and starts postgres on it as a child process (not pg_ctl, which would
// daemonize and escape the process group). It returns once the server
// accepts connections.
//
// It makes the calling process a child subreaper (PR_SET_CHILD_SUBREAPER):
// PostgreSQL's children are reaped by locksim after a Kill.
func StartPostgres(cfg PostgresConfig) (_ *Postgres, err error) {
	if cfg.Name == "" {
		cfg.Name = "pg"
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 60 * time.Second
	}
	binDir, err := postgresBinDir(cfg.BinDir)
	if err != nil {
		return nil, err
	}
	cfg.BinDir = binDir

	becomeSubreaper()
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		if cred, err = serverCredential(cfg.RunAs); err != nil {
			return nil, err
		}
	}
	base := tempBase(cred != nil)
	dir, err := MakeTempDir(base, "locksim-"+cfg.Name+"-", 0o644)
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
	port, err := FreePort()
	if err != nil {
		return nil, fmt.Errorf("cluster: %s: free port: %w", cfg.Name, err)
	}
	p := &Postgres{
		cfg:     cfg,
		dir:     dir,
		dataDir: filepath.Join(dir, "data"),
		port:    port,
		cred:    cred,
		env:     append([]string(nil), cfg.Env...),
	}
	if err := p.initdb(); err != nil {
		return nil, err
	}
	p.Process = NewProcess(cfg.Name, filepath.Join(dir, "postgres.log"), p.command)
	// The free port may be taken before postgres binds it: try a new one.
	for attempt := 1; ; attempt++ {
		err := p.start()
		if err == nil {
			return p, nil
		}
		p.Kill()
		if attempt == 3 || !strings.Contains(err.Error(), "Address already in use") {
			return nil, err
		}
		if p.port, err = FreePort(); err != nil {
			return nil, fmt.Errorf("cluster: %s: free port: %w", cfg.Name, err)
		}
	}
}

// postgresBinDir finds the directory holding initdb and postgres.
func postgresBinDir(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	if path, err := exec.LookPath("postgres"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			if real, err := filepath.EvalSymlinks(path); err == nil {
				path = real
			}
			return filepath.Dir(path), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "postgres")); err == nil {
			return dirs[i], nil
		}
	}
	return "", errors.New("cluster: PostgreSQL not found: no postgres on PATH or under /usr/lib/postgresql/*/bin")
}

// serverCredential is the user a root locksim runs the server as.
func serverCredential(name string) (*syscall.Credential, error) {
	var u *user.User
	var err error
	if name != "" {
		u, err = user.Lookup(name)
	} else if u, err = user.Lookup("postgres"); err != nil {
		u, err = user.Lookup("nobody")
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: no user to run PostgreSQL as (it refuses root): %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("cluster: user %s: %w", u.Username, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// tempBase is where the server's temporary directory goes: os.TempDir(),
// unless the server runs as another user who cannot reach it, then /tmp.
func tempBase(otherUser bool) string {
	base := os.TempDir()
	if !otherUser {
		return base
	}
	for d := base; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return "/tmp"
		}
		if d == filepath.Dir(d) {
			return base
		}
	}
}

// sysProcAttr runs a child as the server user (when root), in its own
// process group, killed with its parent.
func (p *Postgres) sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: p.cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// baseEnv is the environment of initdb and postgres before the extra Env.
func (p *Postgres) baseEnv() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "LANG=C", "TZ=UTC", "HOME=" + p.dir}
}

func (p *Postgres) initdb() error {
	cmd := exec.Command(filepath.Join(p.cfg.BinDir, "initdb"),
		"-D", p.dataDir, "-U", "postgres", "--auth=trust", "--no-sync",
		"--encoding=UTF8", "--locale=C", "--no-instructions")
	cmd.Dir = p.dir
	cmd.Env = p.baseEnv()
	cmd.SysProcAttr = p.sysProcAttr()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cluster: %s: initdb: %w\n%s", p.cfg.Name, err, out.Bytes())
	}
	// Local connections only: the unix socket and loopback, no password.
	hba := "local all all trust\nhost all all 127.0.0.1/32 trust\n"
	if err := os.WriteFile(filepath.Join(p.dataDir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return fmt.Errorf("cluster: %s: %w", p.cfg.Name, err)
	}
	if p.cred != nil {
		return os.Chown(filepath.Join(p.dataDir, "pg_hba.conf"), int(p.cred.Uid), int(p.cred.Gid))
	}
	return nil
}

// command builds the postgres command line for one start.
func (p *Postgres) command() *exec.Cmd {
	settings := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": p.dir,
		// fsync off saves disk flushes, and loses nothing when only the
		// process dies (the kernel keeps the writes): a killed server
		// recovers what a real one would. synchronous_commit stays on, so a
		// commit is in the WAL before the client hears of it.
		"fsync":             "off",
		"full_page_writes":  "off",
		"max_connections":   "200",
		"logging_collector": "off",
		"log_destination":   "stderr",
		"timezone":          "UTC",
	}
	for k, v := range p.cfg.Settings {
		settings[k] = v
	}
	args := []string{"-D", p.dataDir, "-p", strconv.Itoa(p.port)}
	for k, v := range settings {
		args = append(args, "-c", k+"="+v)
	}
	cmd := exec.Command(filepath.Join(p.cfg.BinDir, "postgres"), args...)
	cmd.Dir = p.dir
	p.envMu.Lock()
	cmd.Env = append(p.baseEnv(), p.env...)
	p.envMu.Unlock()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	return cmd
}

// start starts the process and waits until it accepts queries.
func (p *Postgres) start() error {
	if err := p.Process.Start(); err != nil {
		return err
	}
	if err := p.waitReady(); err != nil {
		return fmt.Errorf("%w\n%s", err, p.logTail())
	}
	return nil
}

// waitReady polls a connection until the server answers, the process exits
// or the start timeout passes.
func (p *Postgres) waitReady() error {
	exited := p.Exited()
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.StartTimeout)
	defer cancel()
	for {
		c, err := pgconn.Connect(ctx, p.DSN()+"&connect_timeout=2")
		if err == nil {
			err = c.Exec(ctx, "SELECT 1").Close()
			c.Close(ctx)
			if err == nil {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("cluster: %s exited during start", p.cfg.Name)
		case <-ctx.Done():
			return fmt.Errorf("cluster: %s not ready after %v: %w", p.cfg.Name, p.cfg.StartTimeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *Postgres) logTail() string {
	b, _ := os.ReadFile(p.LogPath())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return strings.TrimSpace(string(b))
}

// Start starts a stopped or killed server again and waits until it accepts
// queries. Starting a running server does nothing.
func (p *Postgres) Start() error {
	if p.Running() {
		return nil
	}
	return p.start()
}

// Restart implements Node: Stop, then start on the same data directory and
// port, and wait until the server accepts queries.
func (p *Postgres) Restart() error {
	if err := p.Stop(); err != nil {
		return err
	}
	return p.start()
}

// PostgreSQL's children (backends, checkpointer, ...) each call setsid, so
// signalling the postmaster's process group reaches only the postmaster.
// Pause, Resume, Stop and Kill therefore signal the children one by one.

// children lists the postmaster's child processes.
func (p *Postgres) children() []int {
	pid := p.PID()
	if pid == 0 {
		return nil
	}
	return childPIDs(pid)
}

// childPIDs scans /proc for the processes whose parent is ppid.
func childPIDs(ppid int) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(ppid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func signalAll(pids []int, sig syscall.Signal) {
	for _, pid := range pids {
		_ = syscall.Kill(-pid, sig) // each child leads its own group
		_ = syscall.Kill(pid, sig)
	}
}

// Pause implements Node: SIGSTOP to the postmaster, then to every child, so
// that open connections stall too.
func (p *Postgres) Pause() error {
	if err := p.Process.Pause(); err != nil {
		return err
	}
	// The postmaster is stopped and forks no more; a second pass catches a
	// child forked while the first one ran.
	for range 2 {
		signalAll(p.children(), syscall.SIGSTOP)
	}
	return nil
}

// Resume implements Node: SIGCONT to every child, then to the postmaster.
func (p *Postgres) Resume() error {
	signalAll(p.children(), syscall.SIGCONT)
	return p.Process.Resume()
}

// Stop implements Node: a fast shutdown (SIGINT: sessions are cut, not
// waited for), then Kill after StopTimeout. Stopping a stopped server is
// not an error.
func (p *Postgres) Stop() error {
	pid := p.PID()
	if pid == 0 {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGINT)
	signalAll(p.children(), syscall.SIGCONT)
	_ = syscall.Kill(-pid, syscall.SIGCONT)
	select {
	case <-p.Exited():
	case <-time.After(StopTimeout):
	}
	return p.Kill()
}

// Kill implements Node: SIGKILL to the postmaster and every child, and wait
// until they are gone. Killing a stopped server is not an error.
func (p *Postgres) Kill() error {
	pid := p.PID()
	if pid != 0 {
		_ = syscall.Kill(-pid, syscall.SIGSTOP) // no more forks
	}
	kids := p.children()
	signalAll(kids, syscall.SIGKILL)
	err := p.Process.Kill()
	waitGone(kids, 5*time.Second)
	return err
}

// waitGone waits until none of pids is alive any more, reaping them: once
// the postmaster is dead its children are ours (see becomeSubreaper), and
// without a reaper they would stay zombies.
func waitGone(pids []int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for _, pid := range pids {
		for time.Now().Before(deadline) {
			var ws syscall.WaitStatus
			if got, _ := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); got == pid {
				break
			}
			if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

const prSetChildSubreaper = 36 // PR_SET_CHILD_SUBREAPER, linux/prctl.h

var subreaperOnce sync.Once

// becomeSubreaper makes this process the reaper of its orphaned
// descendants, so that the children of a killed postmaster come to it
// rather than to PID 1, which in a container may never reap them.
func becomeSubreaper() {
	subreaperOnce.Do(func() {
		_, _, _ = syscall.RawSyscall6(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0, 0, 0, 0)
	})
}

// SetEnv replaces the extra environment (see PostgresConfig.Env) that the
// next start uses, e.g. to restart the server under libfaketime.
func (p *Postgres) SetEnv(env []string) {
	p.envMu.Lock()
	defer p.envMu.Unlock()
	p.env = append([]string(nil), env...)
}

// Port is the server's TCP port on 127.0.0.1.
func (p *Postgres) Port() int { return p.port }

// Addr is the server's TCP address, "127.0.0.1:port".
func (p *Postgres) Addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

// SocketDir is the directory holding the server's unix socket.
func (p *Postgres) SocketDir() string { return p.dir }

// Dir is the server's temporary directory (data directory, socket, log).
func (p *Postgres) Dir() string { return p.dir }

// DSN is a connection URL for the superuser "postgres" on database
// "postgres" over TCP, e.g. for pgx.Connect or pgxpool.New.
func (p *Postgres) DSN() string {
	return fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", p.Addr())
}

// Close kills the server and removes its temporary directory.
func (p *Postgres) Close() error {
	var err error
	if p.Process != nil {
		err = p.Kill()
	}
	return errors.Join(err, os.RemoveAll(p.dir))
}
