package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/locksim/locksim/netns"
)

// EtcdMemberEnv is the environment variable that carries a member's
// configuration (JSON) to a re-executed locksim process. A process started
// with it set is an etcd member, not a locksim client: see
// MaybeRunEtcdMember.
const EtcdMemberEnv = "LOCKSIM_ETCD_MEMBER"

// EtcdMemberCommand is the hidden locksim subcommand a member is started
// with (besides EtcdMemberEnv). In a test binary it is an ignored argument.
const EtcdMemberCommand = "etcd-member"

// EtcdConfig describes an etcd cluster to start. The zero value is a
// three-member cluster with TickMs 10 and ElectionMs 100.
type EtcdConfig struct {
	// Members is the number of members: 1 or 3 (0 means 3).
	Members int
	// TickMs is the heartbeat interval (default 10 ms).
	TickMs uint
	// ElectionMs is the election timeout (default 100 ms).
	ElectionMs uint
	// Dir is where the cluster's temporary directory is made (default
	// os.TempDir()). The temporary directory holds every member's data
	// directory and log and is removed by Close.
	Dir string
	// LogLevel is etcd's log level (default "warn").
	LogLevel string
	// Peers, if set and there is more than one member, runs each member in
	// a network namespace of its own and carries the traffic between
	// members through it (faults.Network gives every ordered pair a link
	// that can be cut). Clients need no such setting: each member's client
	// URL is forwarded from the same address in locksim's namespace, and a
	// fault layer puts its own proxy in front of it (clients are then given
	// the proxy's address, without the etcd client's AutoSyncInterval,
	// which would replace the endpoints with the members' own URLs).
	Peers PeerNetwork
	// StartTimeout bounds the wait for every member to be ready
	// (default 30 s: the machine may be busy).
	StartTimeout time.Duration
	// Executable is the program re-executed as a member (default
	// os.Executable()). Its main, or its TestMain, must call
	// MaybeRunEtcdMember first.
	Executable string
}

// etcdMemberConfig is what a member process gets in EtcdMemberEnv.
type etcdMemberConfig struct {
	Name string `json:"name"`
	Dir  string `json:"dir"`
	// PeerURL and ClientURL are listened on and advertised: with
	// EtcdConfig.Peers the proxies are in the way inside the member's
	// namespace, so no member needs another address.
	PeerURL        string `json:"peer_url"`
	ClientURL      string `json:"client_url"`
	InitialCluster string `json:"initial_cluster"`
	ClusterToken   string `json:"cluster_token"`
	TickMs         uint   `json:"tick_ms"`
	ElectionMs     uint   `json:"election_ms"`
	LogLevel       string `json:"log_level"`
	ParentPID      int    `json:"parent_pid"`
}

// Etcd is a running etcd cluster whose members are separate OS processes
// (locksim re-executing itself), on 127.0.0.1 and free ports.
type Etcd struct {
	dir     string
	members []*EtcdMember
	place   *peerPlacement

	closeOnce sync.Once
	closeErr  error
}

// EtcdMember is one member of an Etcd cluster: a Node whose Restart keeps
// its data directory and ports.
type EtcdMember struct {
	*Process
	clientURL  string
	listenPeer string
	dataDir    string
}

// StartEtcd starts a cluster and waits until every member serves
// linearizable reads. If a member fails to start (a port taken in the
// meantime), it tries again on fresh ports, up to three times.
func StartEtcd(cfg EtcdConfig) (*Etcd, error) {
	if os.Getenv(EtcdMemberEnv) != "" {
		// A re-executed member that did not call MaybeRunEtcdMember would
		// otherwise start clusters of its own, recursively.
		return nil, errors.New("cluster: this process is an etcd member: its main or TestMain must call cluster.MaybeRunEtcdMember first")
	}
	if cfg.Members == 0 {
		cfg.Members = 3
	}
	if cfg.Members != 1 && cfg.Members != 3 {
		return nil, fmt.Errorf("cluster: etcd members must be 1 or 3, got %d", cfg.Members)
	}
	if cfg.TickMs == 0 {
		cfg.TickMs = 10
	}
	if cfg.ElectionMs == 0 {
		cfg.ElectionMs = 100
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "warn"
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	if cfg.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("cluster: etcd: %w", err)
		}
		cfg.Executable = exe
	}
	var err error
	for range 3 {
		var c *Etcd
		c, err = startEtcd(cfg)
		if err == nil {
			return c, nil
		}
	}
	return nil, err
}

func startEtcd(cfg EtcdConfig) (*Etcd, error) {
	dir, err := MakeTempDir(cfg.Dir, "locksim-etcd-", 0o600)
	if err != nil {
		return nil, fmt.Errorf("cluster: etcd: %w", err)
	}
	c := &Etcd{dir: dir}
	token := filepath.Base(dir)
	var initial []string
	confs := make([]etcdMemberConfig, cfg.Members)
	hosts := make([]netns.Host, cfg.Members)
	clientPorts := make([]int, cfg.Members)
	for i := range confs {
		name := fmt.Sprintf("etcd%d", i+1)
		peerPort, err1 := FreePort()
		clientPort, err2 := FreePort()
		if err := errors.Join(err1, err2); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("cluster: etcd: free port: %w", err)
		}
		hosts[i] = netns.Host{Name: name, TCP: []int{peerPort}}
		clientPorts[i] = clientPort
		listenPeer := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
		clientURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
		confs[i] = etcdMemberConfig{
			Name:         name,
			Dir:          filepath.Join(dir, name),
			PeerURL:      listenPeer,
			ClientURL:    clientURL,
			ClusterToken: token,
			TickMs:       cfg.TickMs,
			ElectionMs:   cfg.ElectionMs,
			LogLevel:     cfg.LogLevel,
			ParentPID:    os.Getpid(),
		}
		initial = append(initial, name+"="+listenPeer)
	}
	if cfg.Peers != nil && cfg.Members > 1 {
		place, err := placePeers(cfg.Peers, hosts, clientPorts)
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		c.place = place
	}
	for i := range confs {
		confs[i].InitialCluster = strings.Join(initial, ",")
		mc := confs[i]
		env, err := json.Marshal(mc)
		if err != nil {
			c.Close()
			return nil, err
		}
		exe := cfg.Executable
		proc := NewProcessIn(c.place.space(i), mc.Name, filepath.Join(dir, mc.Name+".log"), func() *exec.Cmd {
			cmd := exec.Command(exe, EtcdMemberCommand)
			cmd.Env = append(os.Environ(), EtcdMemberEnv+"="+string(env))
			cmd.Dir = dir
			return cmd
		})
		c.members = append(c.members, &EtcdMember{
			Process:    proc,
			clientURL:  mc.ClientURL,
			listenPeer: mc.PeerURL,
			dataDir:    mc.Dir,
		})
	}
	for _, m := range c.members {
		if err := m.Start(); err != nil {
			c.Close()
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.StartTimeout)
	defer cancel()
	if err := c.WaitHealthy(ctx); err != nil {
		err = fmt.Errorf("%w%s", err, c.logTails())
		c.Close()
		return nil, err
	}
	return c, nil
}

// logTails returns the end of every member's log, for error messages.
func (c *Etcd) logTails() string {
	var b strings.Builder
	for _, m := range c.members {
		data, _ := os.ReadFile(m.LogPath())
		if len(data) > 2000 {
			data = data[len(data)-2000:]
		}
		fmt.Fprintf(&b, "\n--- %s log (tail) ---\n%s", m.Name(), data)
	}
	return b.String()
}

// Dir is the cluster's temporary directory (removed by Close).
func (c *Etcd) Dir() string { return c.dir }

// Endpoints are the members' client URLs, in member order.
func (c *Etcd) Endpoints() []string {
	eps := make([]string, len(c.members))
	for i, m := range c.members {
		eps[i] = m.clientURL
	}
	return eps
}

// Members are the cluster's members, named etcd1, etcd2, ...
func (c *Etcd) Members() []*EtcdMember { return c.members }

// Nodes are the members as Nodes, for the fault layer.
func (c *Etcd) Nodes() []Node {
	nodes := make([]Node, len(c.members))
	for i, m := range c.members {
		nodes[i] = m
	}
	return nodes
}

// Member returns the member called name, or nil.
func (c *Etcd) Member(name string) *EtcdMember {
	for _, m := range c.members {
		if m.Name() == name {
			return m
		}
	}
	return nil
}

// WaitHealthy waits until every running, unpaused member answers /readyz
// (which includes a linearizable read, so a quorum with a leader), or ctx
// ends.
func (c *Etcd) WaitHealthy(ctx context.Context) error {
	errs := make([]error, len(c.members))
	var wg sync.WaitGroup
	for i, m := range c.members {
		if !m.Running() || m.Paused() {
			continue
		}
		wg.Go(func() { errs[i] = m.WaitReady(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close kills every member at once (stopping them one by one makes the last
// ones wait for a quorum that is gone) and removes the cluster's directory.
// It is safe to call more than once.
func (c *Etcd) Close() error {
	c.closeOnce.Do(func() {
		var wg sync.WaitGroup
		for _, m := range c.members {
			wg.Go(func() { _ = m.Kill() })
		}
		wg.Wait()
		c.closeErr = errors.Join(c.place.close(), os.RemoveAll(c.dir))
	})
	return c.closeErr
}

// ClientURL is the URL clients reach the member on.
func (m *EtcdMember) ClientURL() string { return m.clientURL }

// PeerURL is the URL the member listens on for other members, and
// advertises to them (inside its network namespace, with
// EtcdConfig.Peers).
func (m *EtcdMember) PeerURL() string { return m.listenPeer }

// DataDir is the member's data directory.
func (m *EtcdMember) DataDir() string { return m.dataDir }

// Restart implements Node: it stops the member (SIGTERM, then SIGKILL),
// starts it again on the same data directory and ports, and waits until its
// client port accepts connections. It does not wait for the member to
// rejoin a quorum, which may be impossible while others are down; use
// WaitReady for that.
func (m *EtcdMember) Restart() error {
	if err := m.Process.Restart(); err != nil {
		return err
	}
	u, err := url.Parse(m.clientURL)
	if err != nil {
		return err
	}
	return WaitTCPIn(m.Namespace(), u.Host, m.Exited(), 30*time.Second)
}

// WaitReady waits until the member answers /readyz, or ctx ends.
func (m *EtcdMember) WaitReady(ctx context.Context) error {
	// No keep-alive: an idle connection would leave goroutines behind.
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var last error
	for {
		exited := m.Exited()
		select {
		case <-exited:
			return fmt.Errorf("cluster: %s exited (see %s)", m.Name(), m.LogPath())
		default:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.clientURL+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: %s not ready: %w (last: %v)", m.Name(), ctx.Err(), last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// MaybeRunEtcdMember runs this process as an etcd member, until it is
// killed, if it was started as one (EtcdMemberEnv is set), and then exits;
// otherwise it returns at once. A program that starts etcd clusters must
// call it first in main, and a test package that does must call it first
// in TestMain.
func MaybeRunEtcdMember() {
	conf, ok := os.LookupEnv(EtcdMemberEnv)
	if !ok {
		return
	}
	os.Exit(runEtcdMember(conf))
}

// parentGone reports whether the process that started this member is gone
// (a backstop for Pdeathsig, which fires on the death of the starting OS
// thread, not of the process).
func parentGone(parent int) bool {
	return parent > 0 && os.Getppid() != parent
}

// exitStatus turns an error into a process exit status, printing it.
func exitStatus(name string, err error) int {
	if err == nil {
		return 0
	}
	fmt.Fprintf(os.Stderr, "locksim etcd member %s: %v\n", name, err)
	return 1
}
