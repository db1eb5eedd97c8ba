package cluster

import (
	"context"
	"testing"
	"time"
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
