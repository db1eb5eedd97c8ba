package cluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// MemcachedConfig describes a set of independent memcached servers (the
// MegaMutex `memcache_servers` list). The zero value is one server with
// memcached's default memory.
type MemcachedConfig struct {
	// Servers is the number of memcached instances (default 1). They do
	// not know about each other: memcached has no replication, and the
	// client places keys by hashing over the list.
	Servers int
	// MemoryMB is each server's memory limit (-m). 0 leaves memcached's
	// default (64 MB); 2 is the smallest that starts with the default
	// item size and makes evictions easy to force.
	MemoryMB int
	// Faketime, when set, runs every server under libfaketime
	// (LD_PRELOAD of Debian's libfaketime) with this FAKETIME
	// specification, for example "+30s", "-1h" or "+0 x10" (ten times as
	// fast). The specification is passed in a file named by
	// FAKETIME_TIMESTAMP_FILE, with FAKETIME_NO_CACHE=1, so that
	// MemcachedNode.SetFaketime can change it while the server runs.
	// memcached's expiry clock is what it skews: items expire early or
	// late as the server sees time.
	Faketime string
	// Binary is the memcached executable (default "memcached" on PATH).
	Binary string
	// ExtraArgs are appended to every server's command line.
	ExtraArgs []string
}

// FaketimeLib is where Debian's libfaketime package puts the preload
// library (the multi-threaded variant, which memcached needs).
const FaketimeLib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"

// Memcached is a running set of memcached servers.
type Memcached struct {
	dir   string
	nodes []*MemcachedNode
}

// MemcachedNode is one memcached server. It is a Node; Restart waits until
// the server accepts connections again, with an empty cache (memcached
// keeps nothing across a restart).
type MemcachedNode struct {
	*Process
	port         int
	faketimeFile string // "" when not under libfaketime
}

// StartMemcached starts cfg.Servers memcached instances on 127.0.0.1, each
// on a free port, and waits until they accept connections. If a server
// fails to start (a port taken in the meantime), it tries again on fresh
// ports, up to three times. Close stops the servers and removes their
// temporary directory.
func StartMemcached(cfg MemcachedConfig) (m *Memcached, err error) {
	for range 3 {
		if m, err = startMemcachedOnce(cfg); err == nil {
			return m, nil
		}
	}
	return nil, err
}

func startMemcachedOnce(cfg MemcachedConfig) (_ *Memcached, err error) {
	if cfg.Servers <= 0 {
		cfg.Servers = 1
	}
	bin := cfg.Binary
	if bin == "" {
		bin = "memcached"
	}
	if bin, err = exec.LookPath(bin); err != nil {
		return nil, fmt.Errorf("cluster: memcached not found (make setup installs it): %w", err)
	}
	if cfg.Faketime != "" {
		if _, err := os.Stat(FaketimeLib); err != nil {
			return nil, fmt.Errorf("cluster: libfaketime not found (make setup installs it): %w", err)
		}
	}
	dir, err := MakeTempDir("", "locksim-memcached-", 0o600)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	m := &Memcached{dir: dir}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	for i := range cfg.Servers {
		name := fmt.Sprintf("memcached%d", i+1)
		port, err := FreePort()
		if err != nil {
			return nil, fmt.Errorf("cluster: %s: %w", name, err)
		}
		n := &MemcachedNode{port: port}
		args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-t", "1"}
		if os.Geteuid() == 0 {
			args = append(args, "-u", "root") // memcached refuses root otherwise
		}
		if cfg.MemoryMB > 0 {
			args = append(args, "-m", strconv.Itoa(cfg.MemoryMB))
		}
		args = append(args, cfg.ExtraArgs...)
		var env []string
		if cfg.Faketime != "" {
			n.faketimeFile = filepath.Join(dir, name+".faketime")
			if err := os.WriteFile(n.faketimeFile, []byte(cfg.Faketime+"\n"), 0o600); err != nil {
				return nil, fmt.Errorf("cluster: %s: %w", name, err)
			}
			env = append(os.Environ(),
				"LD_PRELOAD="+FaketimeLib,
				"FAKETIME_TIMESTAMP_FILE="+n.faketimeFile,
				"FAKETIME_NO_CACHE=1",
			)
		}
		n.Process = NewProcess(name, filepath.Join(dir, name+".log"), func() *exec.Cmd {
			cmd := exec.Command(bin, args...)
			cmd.Env = env
			return cmd
		})
		m.nodes = append(m.nodes, n)
		if err := n.start(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (n *MemcachedNode) start() error {
	if err := n.Process.Start(); err != nil {
		return err
	}
	if err := WaitTCP(n.Addr(), n.Exited(), 10*time.Second); err != nil {
		log, _ := os.ReadFile(n.LogPath())
		return fmt.Errorf("cluster: %s: %w\n%s", n.Name(), err, log)
	}
	return nil
}

// Addr is the server's host:port.
func (n *MemcachedNode) Addr() string { return fmt.Sprintf("127.0.0.1:%d", n.port) }

// Start starts a stopped server and waits until it accepts connections.
func (n *MemcachedNode) Start() error { return n.start() }

// Restart implements Node: the server comes back on the same port, empty.
func (n *MemcachedNode) Restart() error {
	if err := n.Process.Stop(); err != nil {
		return err
	}
	return n.start()
}

// SetFaketime changes the server's libfaketime specification while it
// runs (libfaketime rereads the file on every clock read). It fails if the
// cluster was not started with MemcachedConfig.Faketime.
func (n *MemcachedNode) SetFaketime(spec string) error {
	if n.faketimeFile == "" {
		return errors.New("cluster: " + n.Name() + " does not run under libfaketime")
	}
	return os.WriteFile(n.faketimeFile, []byte(spec+"\n"), 0o600)
}

// Nodes are the servers, in the order of Addrs.
func (m *Memcached) Nodes() []*MemcachedNode { return m.nodes }

// Addrs are the servers' host:port addresses, the client's server list.
func (m *Memcached) Addrs() []string {
	addrs := make([]string, len(m.nodes))
	for i, n := range m.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// Close kills every server and removes the temporary directory.
func (m *Memcached) Close() error {
	for _, n := range m.nodes {
		if n.Process != nil {
			_ = n.Kill()
		}
	}
	return os.RemoveAll(m.dir)
}
