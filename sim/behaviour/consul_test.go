package behaviour_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/sim/behaviour"
)

// realConsul is a real Consul from cluster/ (session_ttl_min 1 s): one
// -dev server, or three servers for a leader change. The client talks to
// one server at a time, as locks/consul does.
type realConsul struct {
	srv     *cluster.Consul
	net     *faults.Network
	clients []*api.Client // one per server
	agents  []*api.Client // one per client agent
	cur     int           // the server the client talks to
	start   time.Time
	t       *testing.T
	// linkNet and linked are UseLink's: a network of one link to the
	// server, and a client through it (used from then on).
	linkNet *faults.Network
	linked  *api.Client
}

// Logf shows a case's measurements (go test -v).
func (c *realConsul) Logf(format string, args ...any) { c.t.Logf(format, args...) }

func (c *realConsul) Sleep(d time.Duration)  { time.Sleep(d) }
func (c *realConsul) Elapsed() time.Duration { return time.Since(c.start) }

func (c *realConsul) api() *api.Client {
	if c.linked != nil {
		return c.linked
	}
	return c.clients[c.cur]
}

func (c *realConsul) UseLink() error {
	u, err := url.Parse(c.srv.URLs()[c.cur])
	if err != nil {
		return err
	}
	c.linkNet = faults.NewNetwork()
	l, err := c.linkNet.AddLink("client", "consul", u.Host)
	if err != nil {
		return err
	}
	c.linked, err = api.NewClient(&api.Config{Address: l.Addr()})
	return err
}

func (c *realConsul) StartAcquire(key, session string) func() (behaviour.AcquireResult, time.Duration, error) {
	type answer struct {
		r   behaviour.AcquireResult
		at  time.Duration
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		r, err := c.Acquire(key, session)
		ch <- answer{r, c.Elapsed(), err}
	}()
	return func() (behaviour.AcquireResult, time.Duration, error) {
		a := <-ch
		return a.r, a.at, a.err
	}
}

func (c *realConsul) CutClient(cut bool) error {
	if c.linkNet == nil {
		return errors.New("CutClient before UseLink")
	}
	if cut {
		c.linkNet.Cut("client", "consul", faults.Both)
	} else {
		c.linkNet.Heal()
	}
	return nil
}

func (c *realConsul) CreateSession(ttl, lockDelay time.Duration) (string, error) {
	if lockDelay == 0 {
		lockDelay = time.Nanosecond // as locks/consul asks for none: the api sends 1ms
	}
	id, _, err := c.api().Session().Create(&api.SessionEntry{
		TTL: ttl.String(), LockDelay: lockDelay, Behavior: api.SessionBehaviorRelease,
	}, nil)
	if err != nil && strings.Contains(err.Error(), "Invalid Session TTL") {
		return "", fmt.Errorf("%w: %v", behaviour.ErrSessionTTL, err)
	}
	return id, err
}

func (c *realConsul) RenewSession(id string) (bool, error) {
	e, _, err := c.api().Session().Renew(id, nil)
	return e != nil, err
}

func (c *realConsul) SessionAlive(id string) (bool, error) {
	e, _, err := c.api().Session().Info(id, nil)
	return e != nil, err
}

func (c *realConsul) DestroySession(id string) error {
	_, err := c.api().Session().Destroy(id, nil)
	return err
}

func (c *realConsul) Acquire(key, session string) (behaviour.AcquireResult, error) {
	ok, _, err := c.api().KV().Acquire(&api.KVPair{Key: key, Value: []byte("v"), Session: session}, nil)
	switch {
	case err != nil && strings.Contains(err.Error(), "invalid session"):
		return behaviour.InvalidSession, nil
	case err != nil:
		return 0, err
	case ok:
		return behaviour.Acquired, nil
	}
	return behaviour.NotAcquired, nil
}

func (c *realConsul) Release(key, session string) (bool, error) {
	ok, _, err := c.api().KV().Release(&api.KVPair{Key: key, Session: session}, nil)
	return ok, err
}

func pairKey(p *api.KVPair) behaviour.ConsulKey {
	if p == nil {
		return behaviour.ConsulKey{}
	}
	return behaviour.ConsulKey{Exists: true, Session: p.Session, LockIndex: p.LockIndex, ModifyIndex: p.ModifyIndex}
}

func (c *realConsul) Get(key string) (behaviour.ConsulKey, error) {
	p, _, err := c.api().KV().Get(key, &api.QueryOptions{RequireConsistent: true})
	return pairKey(p), err
}

func (c *realConsul) Watch(key string, index uint64, wait time.Duration) func() (behaviour.ConsulKey, time.Duration, error) {
	type answer struct {
		k   behaviour.ConsulKey
		at  time.Duration
		err error
	}
	ch := make(chan answer, 1)
	cl := c.api()
	go func() {
		p, _, err := cl.KV().Get(key, &api.QueryOptions{WaitIndex: index, WaitTime: wait})
		ch <- answer{pairKey(p), c.Elapsed(), err}
	}()
	return func() (behaviour.ConsulKey, time.Duration, error) {
		a := <-ch
		return a.k, a.at, a.err
	}
}

func (c *realConsul) leader() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nodes := c.srv.Nodes()
	addr, err := nodes[c.cur].Leader(ctx)
	if err != nil {
		return 0, err
	}
	for i, n := range nodes {
		if n.ServerAddr() == addr {
			return i, nil
		}
	}
	return 0, fmt.Errorf("leader %q is none of the servers", addr)
}

func (c *realConsul) UseLeader(leader bool) error {
	l, err := c.leader()
	if err != nil {
		return err
	}
	if leader {
		c.cur = l
	} else {
		c.cur = (l + 1) % len(c.clients)
	}
	return nil
}

func (c *realConsul) KillLeader() error {
	l, err := c.leader()
	if err != nil {
		return err
	}
	if err := c.srv.Nodes()[l].Kill(); err != nil {
		return err
	}
	if l == c.cur {
		c.cur = (l + 1) % len(c.clients)
	}
	return nil
}

func (c *realConsul) WaitLeader() error { return c.srv.WaitLeader(30 * time.Second) }

func (c *realConsul) AgentSession(i int) (string, error) {
	id, _, err := c.agents[i].Session().Create(nil, nil) // no body
	return id, err
}

func (c *realConsul) AgentSessionInfo(id string) (behaviour.SessionInfo, error) {
	e, _, err := c.api().Session().Info(id, nil)
	if err != nil || e == nil {
		return behaviour.SessionInfo{}, fmt.Errorf("session info of %s: %v, %v", id, e, err)
	}
	return behaviour.SessionInfo{Node: e.Node, TTL: e.TTL, LockDelay: e.LockDelay, NodeChecks: e.NodeChecks}, nil
}

func (c *realConsul) CutAgent(i int, cut bool) error {
	if cut {
		c.net.Isolate(c.srv.Agents()[i].Name())
	} else {
		c.net.Heal()
	}
	return nil
}

func (c *realConsul) Delete(key string, cas uint64) (bool, error) {
	ok, _, err := c.api().KV().DeleteCAS(&api.KVPair{Key: key, ModifyIndex: cas}, nil)
	return ok, err
}

func (c *realConsul) ReleaseEmpty(key, session string) (bool, error) {
	ok, _, err := c.api().KV().Release(&api.KVPair{Key: key, Session: session, Value: []byte{}}, nil)
	return ok, err
}

func (c *realConsul) RaceDestroyAcquire(destroy, key, acquirer string, offset time.Duration) (behaviour.AcquireResult, error) {
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- c.DestroySession(destroy) }()
	for time.Since(start) < offset { // a spin: a sleep of a millisecond oversleeps
	}
	r, err := c.Acquire(key, acquirer)
	if derr := <-done; derr != nil {
		return 0, fmt.Errorf("destroy: %v", derr)
	}
	return r, err
}

// The behaviour cases on real Consul, each on fresh servers.
func TestConsulReal(t *testing.T) {
	for _, tc := range behaviour.ConsulCases {
		t.Run(tc.Name, func(t *testing.T) {
			t.Parallel()
			cfg := cluster.ConsulConfig{Servers: tc.Servers}
			var net *faults.Network
			if tc.Agents > 0 {
				net = faults.NewNetwork()
				defer net.Close()
				cfg.Peers = net
				for i := range tc.Agents {
					cfg.Clients = append(cfg.Clients, fmt.Sprintf("a%d", i+1))
				}
			}
			srv, err := cluster.StartConsul(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			c := &realConsul{srv: srv, net: net, t: t}
			defer func() {
				if c.linkNet != nil {
					c.linkNet.Close()
				}
			}()
			for _, a := range srv.Agents() {
				cl, err := api.NewClient(&api.Config{Address: a.URL()})
				if err != nil {
					t.Fatal(err)
				}
				c.agents = append(c.agents, cl)
			}
			for _, u := range srv.URLs() {
				cl, err := api.NewClient(&api.Config{Address: u})
				if err != nil {
					t.Fatal(err)
				}
				c.clients = append(c.clients, cl)
			}
			c.start = time.Now()
			if err := tc.Run(c); err != nil {
				t.Error(err)
			}
		})
	}
}
