package cluster

import (
	"context"
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
