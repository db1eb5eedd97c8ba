package cluster

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/locksim/locksim/faults"
)

func startConsul(t *testing.T, cfg ConsulConfig) *Consul {
	t.Helper()
	c, err := StartConsul(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestConsulDevServer(t *testing.T) {
	c := startConsul(t, ConsulConfig{})
	n := c.Nodes()[0]
	var _ Node = n
	if err := n.Pause(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := n.Leader(ctx); err == nil {
		t.Fatal("paused server answered")
	}
	if err := n.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitLeader(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestConsulThreeServersSurviveOneKilled(t *testing.T) {
	c := startConsul(t, ConsulConfig{Servers: 3})
	if len(c.URLs()) != 3 {
		t.Fatalf("URLs: %v", c.URLs())
	}
	ctx := context.Background()
	leader, err := c.Nodes()[0].Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Kill the leader: the other two elect a new one.
	var killed *ConsulNode
	for _, n := range c.Nodes() {
		if leader == n.ServerAddr() {
			killed = n
		}
	}
	if killed == nil {
		t.Fatalf("leader %s is none of the servers", leader)
	}
	if err := killed.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitLeader(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := killed.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitLeader(30 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// With Peers, each server runs in a namespace of its own and Raft and
// gossip go through the peer network: isolating the leader there makes
// the other two elect another, and after a heal all three agree again.
func TestConsulPeersInNamespaces(t *testing.T) {
	net := faults.NewNetwork()
	defer net.Close()
	c := startConsul(t, ConsulConfig{Servers: 3, Peers: net})
	// 3 servers: 6 ordered pairs × 3 TCP ports.
	if got := len(net.Links()); got != 18 {
		t.Fatalf("%d peer links, want 18", got)
	}
	ctx := context.Background()
	leader, err := c.Nodes()[0].Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var old *ConsulNode
	var rest []*ConsulNode
	for _, n := range c.Nodes() {
		if n.Namespace() == nil {
			t.Fatalf("%s runs in locksim's own namespace", n.Name())
		}
		if n.ServerAddr() == leader {
			old = n
		} else {
			rest = append(rest, n)
		}
	}
	if old == nil {
		t.Fatalf("leader %s is none of the servers", leader)
	}
	net.Isolate(old.Name())
	deadline := time.Now().Add(30 * time.Second)
	for {
		a, errA := rest[0].Leader(ctx)
		b, errB := rest[1].Leader(ctx)
		if errA == nil && errB == nil && a != "" && a == b && a != leader {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new leader with %s isolated: %q %v, %q %v", old.Name(), a, errA, b, errB)
		}
		time.Sleep(200 * time.Millisecond)
	}
	net.Heal()
	if err := c.WaitLeader(30 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// Client agents (ConsulConfig.Clients) join the servers; a session made
// through one with an empty body (Consul::Mutex's) belongs to the agent's
// node, with its serfHealth check. Isolating the client's name cuts its
// agent off: serfHealth fails on the servers
// and the session is invalidated. The time from the cut to the
// invalidation is logged (go test -v -run TestConsulClientAgents).
func TestConsulClientAgents(t *testing.T) {
	net := faults.NewNetwork()
	defer net.Close()
	c := startConsul(t, ConsulConfig{Servers: 3, Peers: net, Clients: []string{"c1", "c2"}})
	if len(c.Agents()) != 2 {
		t.Fatalf("%d agents", len(c.Agents()))
	}
	a := c.Agents()[0]
	if a.Name() != "c1" || a.Namespace() == nil {
		t.Fatalf("agent %s in %s", a.Name(), a.Namespace().Name())
	}
	id := createSession(t, a.URL(), "")
	info := sessionInfo(t, c.Nodes()[0].URL(), id)
	if info == nil || info.Node != "c1" || info.LockDelay != 15*time.Second || info.Behavior != "release" || info.TTL != "" ||
		len(info.NodeChecks) != 1 || info.NodeChecks[0] != "serfHealth" {
		t.Fatalf("session %s: %+v", id, info)
	}
	cut := time.Now()
	net.Isolate("c1")
	var gone time.Duration
	for {
		if sessionInfo(t, c.Nodes()[0].URL(), id) == nil {
			gone = time.Since(cut)
			break
		}
		if time.Since(cut) > 60*time.Second {
			t.Fatal("session still there 60 s after its agent was cut off")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("session of the cut-off agent invalidated %v after the cut", gone)
	if gone < 500*time.Millisecond {
		t.Fatalf("session gone %v after the cut: before any failure detection could have run", gone)
	}
	// The other agent's session is untouched.
	id2 := createSession(t, c.Agents()[1].URL(), "")
	time.Sleep(time.Second)
	if sessionInfo(t, c.Nodes()[0].URL(), id2) == nil {
		t.Fatal("c2's session is gone")
	}
	net.Heal()
	if err := c.WaitAgents(60 * time.Second); err != nil {
		t.Fatal(err)
	}
}

type sessionEntry struct {
	ID, Node, Behavior, TTL string
	LockDelay               time.Duration
	NodeChecks              []string
}

func createSession(t *testing.T, url, body string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, url+"/v1/session/create", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.ID == "" {
		t.Fatalf("session create: %s %v", resp.Status, err)
	}
	return out.ID
}

// sessionInfo is the session's entry, nil if Consul no longer has it.
func sessionInfo(t *testing.T, url, id string) *sessionEntry {
	t.Helper()
	resp, err := http.Get(url + "/v1/session/info/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []sessionEntry
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("session info: %s %v", resp.Status, err)
	}
	if len(out) == 0 {
		return nil
	}
	return &out[0]
}
