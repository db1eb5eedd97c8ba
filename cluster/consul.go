package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/locksim/locksim/netns"
)

// ConsulConfig describes a Consul cluster of real `consul agent` servers.
type ConsulConfig struct {
	// Servers is the number of servers: 1 (the default) runs one agent in
	// -dev mode (state in memory, lost on restart); more run that many
	// servers with -bootstrap-expect, each with its own data directory,
	// joined over loopback.
	Servers int
	// Binary is the consul executable. Default: $LOCKSIM_CONSUL, else
	// bin/consul in the locksim checkout (built by `make consul`), else
	// consul on PATH.
	Binary string
	// SessionTTLMin is the servers' session_ttl_min (Consul's default is
	// 10 s, which makes loss tests slow). Default 1 s.
	SessionTTLMin time.Duration
	// HCL are extra configuration snippets, each passed with -hcl.
	HCL []string
	// Peers, if set and there is more than one server, runs each server in
	// a network namespace of its own and carries the traffic between
	// servers through it: Raft and RPC (the server port) and Serf gossip
	// (the LAN and WAN ports, TCP and UDP). faults.Network gives every
	// ordered pair of servers a link of its own that can be cut. Each
	// server's HTTP API is forwarded from the same address in locksim's
	// namespace.
	Peers PeerNetwork
	// Clients names the client agents to run beside the servers, one per
	// locksim client (its name is the agent's node name), as Consul is
	// deployed: a lock client talks to the agent on its own machine, and
	// the sessions it makes belong to that agent's node (its serfHealth
	// check). With Peers each agent runs in a network namespace of its
	// own and its gossip and RPC traffic goes through Peers under its
	// name, so that cutting the client off (faults.Network.Isolate of
	// its name) cuts its agent off too; its HTTP API is forwarded from the
	// same address in locksim's namespace, on no link (the client and its
	// agent share a machine). Without Peers the agents run beside the
	// servers on loopback, and nothing can cut them off.
	Clients []string
}

// Consul is a running Consul cluster.
type Consul struct {
	dir    string
	nodes  []*ConsulNode
	agents []*ConsulNode
	place  *peerPlacement
}

// ConsulNode is one Consul server agent, or a client agent (Agents). It
// is a Node.
type ConsulNode struct {
	*Process
	httpPort, serfLANPort, serverPort, serfWANPort int
}

// ConsulBinary finds the consul executable as ConsulConfig.Binary
// describes, or says how to build it.
func ConsulBinary() (string, error) {
	if p := os.Getenv("LOCKSIM_CONSUL"); p != "" {
		return p, nil
	}
	if dir, err := os.Getwd(); err == nil {
		for {
			mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
			if err == nil && strings.HasPrefix(string(mod), "module github.com/locksim/locksim\n") {
				p := filepath.Join(dir, "bin", "consul")
				if _, err := os.Stat(p); err == nil {
					return p, nil
				}
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	if p, err := exec.LookPath("consul"); err == nil {
		return p, nil
	}
	return "", errors.New("cluster: consul binary not found: run `make consul` to build bin/consul, or set LOCKSIM_CONSUL")
}

// StartConsul starts cfg.Servers Consul servers on 127.0.0.1, each with its
// own ports and data directory, and waits until the cluster has a leader.
// If a server fails to start (a port taken in the meantime), it tries
// again on fresh ports, up to three times. Close stops the servers and
// removes their temporary directory.
func StartConsul(cfg ConsulConfig) (c *Consul, err error) {
	for range 3 {
		if c, err = startConsulOnce(cfg); err == nil {
			return c, nil
		}
	}
	return nil, err
}

func startConsulOnce(cfg ConsulConfig) (_ *Consul, err error) {
	if cfg.Servers <= 0 {
		cfg.Servers = 1
	}
	if cfg.SessionTTLMin <= 0 {
		cfg.SessionTTLMin = time.Second
	}
	bin := cfg.Binary
	if bin == "" {
		if bin, err = ConsulBinary(); err != nil {
			return nil, err
		}
	}
	dir, err := MakeTempDir("", "locksim-consul-", 0o600)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	c := &Consul{dir: dir}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	ports, err := distinctFreePorts(4*cfg.Servers + 3*len(cfg.Clients))
	if err != nil {
		return nil, fmt.Errorf("cluster: consul: %w", err)
	}
	for i := range cfg.Servers {
		p := ports[4*i:]
		c.nodes = append(c.nodes, &ConsulNode{httpPort: p[0], serfLANPort: p[1], serverPort: p[2], serfWANPort: p[3]})
	}
	for i := range cfg.Clients {
		p := ports[4*cfg.Servers+3*i:]
		c.agents = append(c.agents, &ConsulNode{httpPort: p[0], serfLANPort: p[1], serverPort: p[2]})
	}
	if cfg.Peers != nil && (cfg.Servers > 1 || len(cfg.Clients) > 0) {
		var hosts []netns.Host
		var httpPorts []int
		for i, n := range c.nodes {
			hosts = append(hosts, netns.Host{
				Name: fmt.Sprintf("consul%d", i+1),
				TCP:  []int{n.serverPort, n.serfLANPort, n.serfWANPort},
				UDP:  []int{n.serfLANPort, n.serfWANPort},
			})
			httpPorts = append(httpPorts, n.httpPort)
		}
		for i, n := range c.agents {
			hosts = append(hosts, netns.Host{Name: cfg.Clients[i], TCP: []int{n.serfLANPort}, UDP: []int{n.serfLANPort}})
			httpPorts = append(httpPorts, n.httpPort)
		}
		if c.place, err = placePeers(cfg.Peers, hosts, httpPorts); err != nil {
			return nil, err
		}
	}
	common := func(name string, n *ConsulNode) []string {
		return []string{"agent",
			"-node", name,
			"-bind", "127.0.0.1", "-client", "127.0.0.1", "-advertise", "127.0.0.1",
			"-http-port", strconv.Itoa(n.httpPort),
			"-serf-lan-port", strconv.Itoa(n.serfLANPort),
			"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
			"-disable-host-node-id",
			"-hcl", fmt.Sprintf("session_ttl_min = %q", cfg.SessionTTLMin),
			"-hcl", "disable_update_check = true",
			"-hcl", "performance { raft_multiplier = 1 }",
		}
	}
	for i, n := range c.nodes {
		name := fmt.Sprintf("consul%d", i+1)
		args := append(common(name, n),
			"-serf-wan-port", strconv.Itoa(n.serfWANPort),
			"-server-port", strconv.Itoa(n.serverPort),
		)
		if cfg.Servers == 1 {
			args = append(args, "-dev")
		} else {
			data := filepath.Join(dir, name)
			if err := os.Mkdir(data, 0o700); err != nil {
				return nil, fmt.Errorf("cluster: %w", err)
			}
			args = append(args, "-server", "-bootstrap-expect", strconv.Itoa(cfg.Servers), "-data-dir", data)
			for j, m := range c.nodes {
				if j != i {
					args = append(args, "-retry-join", fmt.Sprintf("127.0.0.1:%d", m.serfLANPort), "-retry-interval", "1s")
				}
			}
		}
		for _, h := range cfg.HCL {
			args = append(args, "-hcl", h)
		}
		n.Process = NewProcessIn(c.place.space(i), name, filepath.Join(dir, name+".log"), func() *exec.Cmd {
			return exec.Command(bin, args...)
		})
		if err := n.Process.Start(); err != nil {
			return nil, err
		}
	}
	for i, n := range c.agents {
		name := cfg.Clients[i]
		data := filepath.Join(dir, "agent-"+name)
		if err := os.Mkdir(data, 0o700); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		// A client agent (its server port is a free one nothing uses, as
		// Consul wants one): it joins the servers and, cut off and
		// healed, joins them again.
		args := append(common(name, n), "-data-dir", data, "-serf-wan-port", "-1", "-server-port", strconv.Itoa(n.serverPort))
		for _, m := range c.nodes {
			args = append(args, "-retry-join", fmt.Sprintf("127.0.0.1:%d", m.serfLANPort), "-retry-interval", "1s")
		}
		for _, h := range cfg.HCL {
			args = append(args, "-hcl", h)
		}
		n.Process = NewProcessIn(c.place.space(len(c.nodes)+i), name, filepath.Join(dir, "agent-"+name+".log"), func() *exec.Cmd {
			return exec.Command(bin, args...)
		})
		if err := n.Process.Start(); err != nil {
			return nil, err
		}
	}
	for _, n := range c.nodes {
		if err := WaitTCPIn(n.Namespace(), n.HTTPAddr(), n.Exited(), 30*time.Second); err != nil {
			log, _ := os.ReadFile(n.LogPath())
			return nil, fmt.Errorf("cluster: %s: %w\n%s", n.Name(), err, log)
		}
	}
	if err := c.WaitLeader(60 * time.Second); err != nil {
		return nil, err
	}
	for _, n := range c.agents {
		if err := WaitTCPIn(n.Namespace(), n.HTTPAddr(), n.Exited(), 30*time.Second); err != nil {
			log, _ := os.ReadFile(n.LogPath())
			return nil, fmt.Errorf("cluster: agent %s: %w\n%s", n.Name(), err, log)
		}
	}
	if err := c.WaitAgents(60 * time.Second); err != nil {
		return nil, err
	}
	return c, nil
}

// Agents are the client agents (ConsulConfig.Clients), in that order.
func (c *Consul) Agents() []*ConsulNode { return c.agents }

// WaitAgents waits until every running client agent has joined: a
// session made through it (on its node, with its serfHealth check) can
// be created, then it is destroyed.
func (c *Consul) WaitAgents(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, n := range c.agents {
		if !n.Running() || n.Paused() {
			continue
		}
		var last error
		for {
			if last = sessionRoundTrip(ctx, n.URL(), `{"Name":"locksim-ready"}`); last == nil {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("cluster: consul agent %s has not joined after %v: %w", n.Name(), timeout, last)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// sessionRoundTrip creates a session with body at url and destroys it.
func sessionRoundTrip(ctx context.Context, url, body string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url+"/v1/session/create", strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("session create: %s: %s", resp.Status, b)
	}
	var created struct{ ID string }
	if err := json.Unmarshal(b, &created); err == nil && created.ID != "" {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, url+"/v1/session/destroy/"+created.ID, nil)
		if err == nil {
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}
	return nil
}

// distinctFreePorts returns n different free ports.
func distinctFreePorts(n int) ([]int, error) {
	seen := make(map[int]bool)
	var out []int
	for len(out) < n {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// HTTPAddr is the server's HTTP API host:port.
func (n *ConsulNode) HTTPAddr() string { return fmt.Sprintf("127.0.0.1:%d", n.httpPort) }

// ServerAddr is the server's RPC (Raft) host:port, as Leader reports it.
func (n *ConsulNode) ServerAddr() string { return fmt.Sprintf("127.0.0.1:%d", n.serverPort) }

// URL is the server's HTTP API base URL, what a Consul client is given.
func (n *ConsulNode) URL() string { return "http://" + n.HTTPAddr() }

// Start starts a stopped server and waits until its HTTP API listens.
func (n *ConsulNode) Start() error {
	if err := n.Process.Start(); err != nil {
		return err
	}
	return WaitTCPIn(n.Namespace(), n.HTTPAddr(), n.Exited(), 30*time.Second)
}

// Restart implements Node. A -dev server comes back empty; a cluster
// server keeps its data directory and rejoins.
func (n *ConsulNode) Restart() error {
	if err := n.Process.Stop(); err != nil {
		return err
	}
	return n.Start()
}

// Leader asks this server who the Raft leader is; "" if there is none.
func (n *ConsulNode) Leader(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.URL()+"/v1/status/leader", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("cluster: %s: status/leader: %s", n.Name(), resp.Status)
	}
	return strings.Trim(strings.TrimSpace(string(b)), `"`), nil
}

// WaitLeader waits until every running server reports the same leader and
// that leader accepts writes (a session can be created), or timeout passes.
func (c *Consul) WaitLeader(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last error
	for {
		if last = c.leaderReady(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: consul has no leader after %v: %w", timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Consul) leaderReady(ctx context.Context) error {
	var leader string
	var up *ConsulNode
	for _, n := range c.nodes {
		if !n.Running() || n.Paused() {
			continue
		}
		l, err := n.Leader(ctx)
		if err != nil {
			return err
		}
		if l == "" || (leader != "" && l != leader) {
			return fmt.Errorf("%s sees leader %q", n.Name(), l)
		}
		leader, up = l, n
	}
	if up == nil {
		return errors.New("no server is running")
	}
	// A leader is elected before it has established itself; a session
	// create (then destroy) proves that writes go through.
	return sessionRoundTrip(ctx, up.URL(), `{"Name":"locksim-ready","TTL":"10s"}`)
}

// Nodes are the servers.
func (c *Consul) Nodes() []*ConsulNode { return c.nodes }

// URLs are the servers' HTTP API base URLs.
func (c *Consul) URLs() []string {
	urls := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		urls[i] = n.URL()
	}
	return urls
}

// Close kills every agent and server and removes the temporary directory.
func (c *Consul) Close() error {
	for _, n := range append(slices.Clone(c.agents), c.nodes...) {
		if n.Process != nil {
			_ = n.Kill()
		}
	}
	return errors.Join(c.place.close(), os.RemoveAll(c.dir))
}
