package cluster_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/faults"
)

func TestMain(m *testing.M) {
	cluster.MaybeRunEtcdMember()
	os.Exit(m.Run())
}

func startEtcd(t *testing.T, members int) *cluster.Etcd {
	t.Helper()
	c, err := cluster.StartEtcd(cluster.EtcdConfig{Members: members})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newClient(t *testing.T, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// put writes key=val with a deadline and returns the error.
func put(cli *clientv3.Client, key, val string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, err := cli.Put(ctx, key, val)
	return err
}

// putEventually retries put until it succeeds or d passes: a write that
// reaches a paused leader is lost and times out on the server (etcd does
// not retry it), so the first attempts after a fault may fail.
func putEventually(cli *clientv3.Client, key, val string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		err := put(cli, key, val, time.Second)
		if err == nil || time.Now().After(deadline) {
			return err
		}
	}
}

// alive reports whether a process with this pid exists (zombies count as
// gone: their parent has not reaped them yet, but they run nothing).
func alive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(data))
	return len(f) > 2 && f[2] != "Z"
}

func TestEtcdSingleMember(t *testing.T) {
	c := startEtcd(t, 1)
	if got := len(c.Endpoints()); got != 1 {
		t.Fatalf("endpoints: %d", got)
	}
	for _, ep := range c.Endpoints() {
		if !strings.HasPrefix(ep, "http://127.0.0.1:") {
			t.Errorf("endpoint %q is not on loopback", ep)
		}
	}
	cli := newClient(t, c.Endpoints())
	if err := put(cli, "k", "v", 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestEtcdNodes(t *testing.T) {
	c := startEtcd(t, 3)
	dir := c.Dir()
	var pids []int
	for _, n := range c.Nodes() {
		if n.PID() == 0 {
			t.Fatalf("%s has no pid", n.Name())
		}
		pids = append(pids, n.PID())
	}
	cli := newClient(t, c.Endpoints())
	if err := put(cli, "before", "1", 5*time.Second); err != nil {
		t.Fatal(err)
	}

	// Pausing one member of three leaves a quorum.
	m1 := c.Member("etcd1")
	if err := m1.Pause(); err != nil {
		t.Fatal(err)
	}
	if !m1.Paused() {
		t.Error("etcd1 not reported paused")
	}
	if err := putEventually(cli, "paused1", "1", 15*time.Second); err != nil {
		t.Fatalf("put with one member paused: %v", err)
	}
	if err := m1.Resume(); err != nil {
		t.Fatal(err)
	}

	// Pausing two of three loses the quorum: writes time out.
	m2, m3 := c.Member("etcd2"), c.Member("etcd3")
	if err := m2.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := m3.Pause(); err != nil {
		t.Fatal(err)
	}
	only1 := newClient(t, []string{m1.ClientURL()})
	if err := put(only1, "noquorum", "1", 500*time.Millisecond); err == nil {
		t.Error("write succeeded with two of three members paused")
	}
	if err := m2.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := m3.Resume(); err != nil {
		t.Fatal(err)
	}

	// Kill one member, write, restart it: it keeps its data and ports and
	// catches up.
	if err := m2.Kill(); err != nil {
		t.Fatal(err)
	}
	if m2.PID() != 0 || m2.Running() {
		t.Error("etcd2 still running after Kill")
	}
	if alive(pids[1]) {
		t.Errorf("etcd2 process %d still alive after Kill", pids[1])
	}
	if err := putEventually(cli, "killed2", "1", 15*time.Second); err != nil {
		t.Fatalf("put with one member killed: %v", err)
	}
	if err := m2.Restart(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m2.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	only2 := newClient(t, []string{m2.ClientURL()})
	for _, k := range []string{"before", "killed2"} {
		resp, err := only2.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) != 1 {
			t.Errorf("restarted etcd2 lacks %q", k)
		}
	}

	// Stop (SIGTERM) and restart another one.
	if err := m3.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := m3.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	pids = append(pids, m2.PID(), m3.PID())

	// Close leaves no process and no directory behind.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("member process %d alive after Close", pid)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cluster dir %s still there after Close: %v", dir, err)
	}
}

// TestEtcdClosePaused checks that Close also kills paused members.
func TestEtcdClosePaused(t *testing.T) {
	c := startEtcd(t, 3)
	var pids []int
	for _, m := range c.Members() {
		pids = append(pids, m.PID())
		if err := m.Pause(); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil && alive(pid) {
			t.Errorf("paused member %d alive after Close", pid)
		}
	}
}

// With Peers, each member runs in a namespace of its own and the traffic
// between members goes through the peer network: isolating one member
// there leaves it without a quorum while the other two go on, and a
// restarted member comes back in its namespace.
func TestEtcdPeersInNamespaces(t *testing.T) {
	net := faults.NewNetwork()
	defer net.Close()
	c, err := cluster.StartEtcd(cluster.EtcdConfig{Members: 3, Peers: net})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, m := range c.Members() {
		if m.Namespace() == nil {
			t.Fatalf("%s runs in locksim's own namespace", m.Name())
		}
	}
	// 3 members: 6 ordered pairs, one link each.
	if got := len(net.Links()); got != 6 {
		t.Fatalf("%d peer links, want 6", got)
	}
	net.Isolate("etcd1")
	ready := func(m *cluster.EtcdMember, wait time.Duration) bool {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		return m.WaitReady(ctx) == nil
	}
	time.Sleep(500 * time.Millisecond) // > the 100 ms election timeout
	if ready(c.Member("etcd1"), time.Second) {
		t.Error("etcd1 serves linearizable reads while cut off from its peers")
	}
	for _, name := range []string{"etcd2", "etcd3"} {
		if !ready(c.Member(name), 10*time.Second) {
			t.Errorf("%s not ready: the majority lost its quorum", name)
		}
	}
	net.Heal()
	if !ready(c.Member("etcd1"), 10*time.Second) {
		t.Error("etcd1 not ready after heal")
	}
	if err := c.Member("etcd2").Restart(); err != nil {
		t.Fatal(err)
	}
	if !ready(c.Member("etcd2"), 10*time.Second) {
		t.Error("etcd2 not ready after restart in its namespace")
	}
}

func TestEtcdBadSize(t *testing.T) {
	if _, err := cluster.StartEtcd(cluster.EtcdConfig{Members: 2}); err == nil {
		t.Error("a 2-member cluster was accepted")
	}
}

// TestEtcdSweepsStaleDirs checks that starting a cluster removes the
// directory of a cluster whose owner died without Close.
func TestEtcdSweepsStaleDirs(t *testing.T) {
	parent := t.TempDir()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(parent, "locksim-etcd-stale")
	if err := os.MkdirAll(filepath.Join(stale, "etcd1"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stale, cluster.OwnerFile), []byte(strconv.Itoa(dead.Process.Pid)), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := cluster.StartEtcd(cluster.EtcdConfig{Members: 1, Dir: parent})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale dir still there: %v", err)
	}
	if _, err := os.Stat(c.Dir()); err != nil {
		t.Errorf("live cluster dir: %v", err)
	}
}
