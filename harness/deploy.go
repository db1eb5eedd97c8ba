package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/netns"
)

// deployment is the servers of one run and what the nemesis needs of them.
type deployment struct {
	kind  string
	nodes []cluster.Node
	// upstreams are the servers' client addresses, in node order.
	upstreams []string
	// dsn builds the DSN for a client given its proxied address
	// (PostgreSQL only).
	dsn func(addr string) string
	// leader names the current leader, for consensus backends.
	leader func(ctx context.Context) (string, error)
	// setServerClock sets a server's clock offset through libfaketime, if
	// the backend's servers are C programs run under it.
	setServerClock func(node string, offset time.Duration) error
	// agents are the Consul client agents' HTTP addresses by client name
	// (backend consul: each client talks to its own agent).
	agents map[string]string
	// notes are what the verdict must say about this deployment.
	notes []string
	close func() error
}

func (d *deployment) node(name string) cluster.Node {
	for _, n := range d.nodes {
		if n.Name() == name {
			return n
		}
	}
	return nil
}

func (d *deployment) nodeNames() []string {
	names := make([]string, len(d.nodes))
	for i, n := range d.nodes {
		names[i] = n.Name()
	}
	return names
}

// faketimeSpec is libfaketime's relative offset syntax.
func faketimeSpec(d time.Duration) string {
	return fmt.Sprintf("%+ds", int64(d/time.Second))
}

// deployArgs are what deploying a run's servers needs: kind is the
// backend; size is the scenario's cluster size; serverClock says whether
// the scenario skews server clocks (then C servers run under libfaketime
// from the start, at offset 0); peers are proxied through net where the
// backend allows it; evict gives memcached a memory limit small enough to
// force evictions. clients are the clients' names: backend consul gives
// each a Consul client agent of its own.
type deployArgs struct {
	kind        string
	size        int
	dir         string
	serverClock bool
	evict       bool
	net         *faults.Network
	exe         string
	clients     []string
}

// deploy starts the servers of a.kind, as its entry of parts says.
func deploy(a deployArgs) (*deployment, error) {
	p, ok := parts[a.kind]
	if !ok {
		return nil, fmt.Errorf("harness: unknown backend %q", a.kind)
	}
	return p.deploy(a)
}

// deployEtcd starts etcd members: three if the scenario asks for three or
// more, else one.
func deployEtcd(a deployArgs) (*deployment, error) {
	members := 1
	if a.size >= 3 {
		members = 3
	}
	peers, note := peerNetwork(a.net, members)
	c, err := cluster.StartEtcd(cluster.EtcdConfig{
		Members:    members,
		Dir:        a.dir,
		Executable: a.exe,
		Peers:      peers,
	})
	if err != nil {
		return nil, err
	}
	d := &deployment{kind: a.kind, nodes: c.Nodes(), close: c.Close}
	d.notes = append(d.notes, note...)
	for _, m := range c.Members() {
		d.upstreams = append(d.upstreams, strings.TrimPrefix(m.ClientURL(), "http://"))
	}
	d.leader = func(ctx context.Context) (string, error) { return etcdLeader(ctx, c) }
	return d, nil
}

// deployPostgres starts one PostgreSQL server.
func deployPostgres(a deployArgs) (*deployment, error) {
	cfg := cluster.PostgresConfig{Name: "pg", Settings: map[string]string{
		// Notice a dead client (a cut or paused holder) within seconds,
		// so that an advisory lock dies with its connection.
		"tcp_keepalives_idle": "2", "tcp_keepalives_interval": "1", "tcp_keepalives_count": "3",
		"max_connections": "200",
	}}
	// The server runs as another user (postgres refuses root): its
	// libfaketime file lives in a directory that user can read.
	clockDir := filepath.Join(a.dir, "pg-clock")
	clockFile := filepath.Join(clockDir, "faketime")
	if a.serverClock {
		if err := os.Mkdir(clockDir, 0o755); err != nil {
			return nil, err
		}
		if err := os.Chmod(a.dir, 0o711); err != nil {
			return nil, err
		}
		if err := os.WriteFile(clockFile, []byte("+0s\n"), 0o644); err != nil {
			return nil, err
		}
		cfg.Env = []string{"LD_PRELOAD=" + cluster.FaketimeLib, "FAKETIME_TIMESTAMP_FILE=" + clockFile, "FAKETIME_NO_CACHE=1"}
	}
	pg, err := cluster.StartPostgres(cfg)
	if err != nil {
		return nil, err
	}
	d := &deployment{kind: a.kind, nodes: []cluster.Node{pg}, upstreams: []string{pg.Addr()}, close: pg.Close}
	d.dsn = func(addr string) string {
		return fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable&connect_timeout=2", addr)
	}
	if a.serverClock {
		d.setServerClock = func(_ string, off time.Duration) error {
			return os.WriteFile(clockFile, []byte(faketimeSpec(off)+"\n"), 0o644)
		}
	}
	return d, nil
}

// deployMariaDB starts one MariaDB server.
func deployMariaDB(a deployArgs) (*deployment, error) {
	m, err := cluster.StartMariaDB(cluster.MariaDBConfig{Name: "mysql", Settings: mariadbRunSettings})
	if err != nil {
		return nil, err
	}
	d := &deployment{kind: a.kind, nodes: []cluster.Node{m}, upstreams: []string{m.Addr()}, close: m.Close}
	d.dsn = func(addr string) string { return cluster.MariaDBDSN(addr) + "?timeout=2s" }
	return d, nil
}

// deployMemcached starts the scenario's number of memcached servers.
func deployMemcached(a deployArgs) (*deployment, error) {
	cfg := cluster.MemcachedConfig{Servers: max(1, a.size)}
	if a.evict {
		cfg.MemoryMB = 2 // small enough for the nemesis to force evictions
	}
	if a.serverClock {
		cfg.Faketime = "+0s"
	}
	m, err := cluster.StartMemcached(cfg)
	if err != nil {
		return nil, err
	}
	d := &deployment{kind: a.kind, close: m.Close, upstreams: m.Addrs()}
	for _, n := range m.Nodes() {
		d.nodes = append(d.nodes, n)
	}
	if a.serverClock {
		d.setServerClock = func(node string, off time.Duration) error {
			for _, n := range m.Nodes() {
				if n.Name() == node {
					return n.SetFaketime(faketimeSpec(off))
				}
			}
			return fmt.Errorf("no memcached node %q", node)
		}
	}
	return d, nil
}

// deployConsul starts the scenario's number of Consul servers, and with
// agents a client agent per client (Consul::Mutex's session belongs to the
// node of the agent it talks to).
func deployConsul(a deployArgs, agents bool) (*deployment, error) {
	servers := max(1, a.size)
	cfg := cluster.ConsulConfig{Servers: servers}
	var note []string
	cfg.Peers, note = peerNetwork(a.net, servers)
	if agents {
		// Each client's agent sits behind the client's links where
		// namespaces can be made.
		cfg.Clients = a.clients
		if err := netns.Supported(); err != nil {
			note = append(note, fmt.Sprintf("the clients' Consul agents run beside the servers, so cutting a client off does not cut its agent off (no serfHealth failure): %v", err))
		} else {
			cfg.Peers = a.net
		}
	}
	c, err := cluster.StartConsul(cfg)
	if err != nil {
		return nil, err
	}
	d := &deployment{kind: a.kind, close: c.Close, notes: note}
	for _, n := range c.Nodes() {
		d.nodes = append(d.nodes, n)
		d.upstreams = append(d.upstreams, n.HTTPAddr())
	}
	if len(c.Agents()) > 0 {
		d.agents = make(map[string]string)
		for _, a := range c.Agents() {
			d.agents[a.Name()] = a.HTTPAddr()
		}
	}
	d.leader = func(ctx context.Context) (string, error) { return consulLeader(ctx, c) }
	return d, nil
}

// mariadbRunSettings are the MariaDB server options of a run: its
// defaults for how long a server waits on a silent connection
// (wait_timeout 28800 s, net_read_timeout 30 s, net_write_timeout 60 s)
// are kept, and so is its TCP keepalive (the kernel's: tcp_keepalive_time
// 0); see sim/behaviour/mysql.go for what they mean behind the proxies.
var mariadbRunSettings = map[string]string{"max_connections": "200"}

// peerNetwork returns what carries the traffic between servers: net, with
// each server in a network namespace of its own, where this process can
// make namespaces. Where it cannot, servers talk directly and the note
// says that partitions between them are not applied.
func peerNetwork(net *faults.Network, servers int) (cluster.PeerNetwork, []string) {
	if servers < 2 {
		return nil, nil
	}
	if err := netns.Supported(); err != nil {
		return nil, []string{fmt.Sprintf("server-to-server traffic is not proxied, so partitions between servers are not applied: %v", err)}
	}
	return net, nil
}

// etcdLeader asks each member for the leader and names it.
func etcdLeader(ctx context.Context, c *cluster.Etcd) (string, error) {
	for _, m := range c.Members() {
		if !m.Running() {
			continue
		}
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.ClientURL()}, DialTimeout: time.Second, Logger: quietZap()})
		if err != nil {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := cli.Status(sctx, m.ClientURL())
		var name string
		if err == nil && st.Leader != 0 {
			if ml, err := cli.MemberList(sctx); err == nil {
				for _, mm := range ml.Members {
					if mm.ID == st.Leader {
						name = mm.Name
					}
				}
			}
		}
		cancel()
		cli.Close()
		if name != "" {
			return name, nil
		}
	}
	return "", errors.New("harness: no etcd leader known")
}

// consulLeader names the Consul server that leads.
func consulLeader(ctx context.Context, c *cluster.Consul) (string, error) {
	for _, n := range c.Nodes() {
		if !n.Running() {
			continue
		}
		addr, err := n.Leader(ctx)
		if err != nil || addr == "" {
			continue
		}
		for _, m := range c.Nodes() {
			if strings.HasSuffix(addr, fmt.Sprintf(":%s", portOf(m.ServerAddr()))) {
				return m.Name(), nil
			}
		}
	}
	return "", errors.New("harness: no consul leader known")
}

func portOf(hostport string) string {
	if i := strings.LastIndex(hostport, ":"); i >= 0 {
		return hostport[i+1:]
	}
	return hostport
}
