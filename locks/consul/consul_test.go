package consul_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/consul"
)

func startConsul(t testing.TB, servers int) *cluster.Consul {
	t.Helper()
	c, err := cluster.StartConsul(cluster.ConsulConfig{Servers: servers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// newLocker is a consul-ttl Locker for tests: a 2 s TTL session (the
// test servers allow 1 s) and no lock-delay unless a test asks for one.
func newLocker(t testing.TB, url string, cfg consul.Config, opts ...locks.Option) *consul.Locker {
	t.Helper()
	cfg.Address, cfg.TTLSession = url, true
	if cfg.LockDelay == 0 {
		cfg.LockDelay = -1
	}
	opts = append([]locks.Option{locks.WithTTL(2 * time.Second), locks.WithRenewEvery(500 * time.Millisecond),
		locks.WithPollInterval(200 * time.Millisecond)}, opts...)
	l, err := consul.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func rawClient(t testing.TB, url string) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: url})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTryAcquireWhileHeldTokensAndValue(t *testing.T) {
	c := startConsul(t, 1)
	url := c.URLs()[0]
	ctx := context.Background()
	a := newLocker(t, url, consul.Config{Value: []byte("host-a")})
	b := newLocker(t, url, consul.Config{})

	la, err := a.TryAcquire(ctx, "service/widgets")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.TryAcquire(ctx, "service/widgets"); !errors.Is(err, locks.ErrNotAcquired) {
		t.Fatalf("TryAcquire while held: %v, want ErrNotAcquired", err)
	}
	pair, _, err := rawClient(t, url).KV().Get("service/widgets", nil)
	if err != nil || string(pair.Value) != "host-a" || pair.Session != la.(*consul.Lease).Session() {
		t.Fatalf("key after acquire: %+v, %v", pair, err)
	}
	if err := la.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	lb, err := b.TryAcquire(ctx, "service/widgets")
	if err != nil {
		t.Fatal(err)
	}
	if lb.Token() <= la.Token() {
		t.Fatalf("tokens %d then %d", la.Token(), lb.Token())
	}
	// Delete the key under b: the lease is lost with the seed's reason and
	// LockIndex starts again, but the token (ModifyIndex) still grows.
	if _, err := rawClient(t, url).KV().Delete("service/widgets", nil); err != nil {
		t.Fatal(err)
	}
	waitLost(t, lb, "key deleted")
	lc, err := a.TryAcquire(ctx, "service/widgets")
	if err != nil {
		t.Fatal(err)
	}
	if lc.Token() <= lb.Token() {
		t.Fatalf("token after delete %d, before %d", lc.Token(), lb.Token())
	}
	if li := lc.(*consul.Lease).LockIndex(); li != 1 {
		t.Fatalf("LockIndex after delete = %d, want 1 (which is why it is not the token)", li)
	}
	// b, no longer the owner, cannot release a's lock.
	if err := lb.Release(ctx); !errors.Is(err, locks.ErrLockLost) {
		t.Fatalf("release by non-owner: %v", err)
	}
	if _, err := b.TryAcquire(ctx, "service/widgets"); !errors.Is(err, locks.ErrNotAcquired) {
		t.Fatalf("lock free after a non-owner's release: %v", err)
	}
	if err := lc.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

func waitLost(t *testing.T, lease locks.Lease, reason string) {
	t.Helper()
	select {
	case <-lease.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("lease not lost")
	}
	if err := lease.Err(); !errors.Is(err, locks.ErrLockLost) || !strings.Contains(err.Error(), reason) {
		t.Fatalf("loss: %v, want %q", err, reason)
	}
}

// A session destroyed from outside: the key is released, the watcher
// sees it, fn's context is cancelled and Run returns ErrLockLost, well
// within the session TTL.
func TestSessionDestroyedCancelsRun(t *testing.T) {
	c := startConsul(t, 1)
	url := c.URLs()[0]
	l := newLocker(t, url, consul.Config{}, locks.WithTTL(10*time.Second), locks.WithRenewEvery(3*time.Second))
	raw := rawClient(t, url)

	var destroyed time.Time
	cancelled := make(chan time.Duration, 1)
	err := locks.Run(context.Background(), l, "job", func(ctx context.Context, lease locks.Lease) error {
		destroyed = time.Now()
		if _, err := raw.Session().Destroy(lease.(*consul.Lease).Session(), nil); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			cancelled <- time.Since(destroyed)
		case <-time.After(10 * time.Second):
		}
		return nil
	})
	elapsed := time.Since(destroyed)
	if !errors.Is(err, locks.ErrLockLost) || !strings.Contains(err.Error(), "no active session") {
		t.Fatalf("Run: %v, want ErrLockLost (no active session)", err)
	}
	select {
	case d := <-cancelled:
		t.Logf("fn cancelled %v after the session was destroyed; Run returned after %v", d, elapsed)
	default:
		t.Fatal("fn's context was not cancelled")
	}
	if elapsed > 10*time.Second {
		t.Fatalf("Run returned %v after the loss, more than the session TTL", elapsed)
	}
}

// Lock-delay: after a session is invalidated, its lock cannot be taken
// for the delay, then it can.
func TestLockDelay(t *testing.T) {
	c := startConsul(t, 1)
	url := c.URLs()[0]
	ctx := context.Background()
	a := newLocker(t, url, consul.Config{LockDelay: time.Second})
	b := newLocker(t, url, consul.Config{})
	la, err := a.TryAcquire(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rawClient(t, url).Session().Destroy(la.(*consul.Lease).Session(), nil); err != nil {
		t.Fatal(err)
	}
	waitLost(t, la, "no active session")
	if _, err := b.TryAcquire(ctx, "k"); !errors.Is(err, locks.ErrNotAcquired) {
		t.Fatalf("TryAcquire during the lock-delay: %v", err)
	}
	start := time.Now()
	lb, err := b.Acquire(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("acquired %v after the lock-delay started", time.Since(start))
	if err := lb.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestAcquireWaitsForReleaseAndStopsOnCancel(t *testing.T) {
	c := startConsul(t, 1)
	url := c.URLs()[0]
	ctx := context.Background()
	a := newLocker(t, url, consul.Config{})
	b := newLocker(t, url, consul.Config{})
	la, err := a.TryAcquire(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := b.Acquire(short, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire with a cancelled context: %v", err)
	}
	got := make(chan error, 1)
	go func() {
		lb, err := b.Acquire(ctx, "k")
		if err == nil {
			err = lb.Release(ctx)
		}
		got <- err
	}()
	time.Sleep(200 * time.Millisecond)
	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiting Acquire did not get the released lock")
	}
}

// Consul down: errors are typed.
func TestConsulErrorIsTyped(t *testing.T) {
	c := startConsul(t, 1)
	url := c.URLs()[0]
	if err := c.Nodes()[0].Kill(); err != nil {
		t.Fatal(err)
	}
	_, err := newLocker(t, url, consul.Config{}).TryAcquire(context.Background(), "k")
	var be *locks.BackendError
	if !errors.As(err, &be) || be.Backend != "consul" {
		t.Fatalf("TryAcquire with Consul down: %v, want a consul *locks.BackendError", err)
	}
}

// Three servers. The lock survives the loss of a follower. The loss of
// the leader fails the watcher's blocking query, and, as in the seed
// (whose watcher raised ConsulError), that ends the hold: the lease is
// lost with an error that is also a *locks.BackendError.
func TestThreeServers(t *testing.T) {
	c := startConsul(t, 3)
	ctx := context.Background()
	leaderAddr, err := c.Nodes()[0].Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var leader *cluster.ConsulNode
	var followers []*cluster.ConsulNode
	for _, n := range c.Nodes() {
		if n.ServerAddr() == leaderAddr {
			leader = n
		} else {
			followers = append(followers, n)
		}
	}
	if leader == nil || len(followers) != 2 {
		t.Fatalf("leader %s among %v", leaderAddr, c.URLs())
	}
	l := newLocker(t, followers[0].URL(), consul.Config{})
	lease, err := l.TryAcquire(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}

	if err := followers[1].Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if err := lease.Renew(ctx); err != nil {
		t.Fatalf("renew with a follower down: %v", err)
	}

	if err := leader.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lease.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("the watch outlived the leader and the quorum")
	}
	var be *locks.BackendError
	if err := lease.Err(); !errors.Is(err, locks.ErrLockLost) || !errors.As(err, &be) || be.Backend != "consul" {
		t.Fatalf("loss: %v, want ErrLockLost and a consul *locks.BackendError", err)
	}
	t.Logf("after the leader was killed: %v", lease.Err())
}

func TestLossReason(t *testing.T) {
	for _, tc := range []struct {
		pair *api.KVPair
		want string
	}{
		{nil, "key deleted"},
		{&api.KVPair{}, "no active session"},
		{&api.KVPair{Session: "other"}, "taken by session other"},
		{&api.KVPair{Session: "ours"}, ""},
	} {
		if got := consul.LossReason(tc.pair, "ours"); got != tc.want {
			t.Errorf("LossReason(%+v) = %q, want %q", tc.pair, got, tc.want)
		}
	}
}

// Backend consul, Consul::Mutex as written: through a client agent, the
// session is the agent node's, with Consul's defaults (no TTL, lock-delay
// 15 s, serfHealth); Renew sends nothing; Release releases, destroys the
// session and deletes the key (DELETE ?cas) since no session holds it.
func TestSeedSession(t *testing.T) {
	c, err := cluster.StartConsul(cluster.ConsulConfig{Clients: []string{"a1", "a2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	mk := func(agent int) *consul.Locker {
		l, err := consul.New(consul.Config{Address: c.Agents()[agent].URL(), Value: []byte("worker")},
			locks.WithTTL(2*time.Second), locks.WithRenewEvery(500*time.Millisecond), locks.WithPollInterval(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	a, b := mk(0), mk(1)
	lease, err := a.Acquire(ctx, "service/seed")
	if err != nil {
		t.Fatal(err)
	}
	raw := rawClient(t, c.URLs()[0])
	info, _, err := raw.Session().Info(lease.(*consul.Lease).Session(), nil)
	if err != nil || info == nil || info.Node != "a1" || info.TTL != "" || info.LockDelay != 15*time.Second ||
		len(info.NodeChecks) != 1 || info.NodeChecks[0] != "serfHealth" {
		t.Fatalf("session info %+v, %v", info, err)
	}
	if _, err := b.TryAcquire(ctx, "service/seed"); !errors.Is(err, locks.ErrNotAcquired) {
		t.Fatalf("TryAcquire while held: %v", err)
	}
	// 2.5 s: longer than the options' TTL, which has no effect.
	time.Sleep(2500 * time.Millisecond)
	if err := lease.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lease.Err(); err != nil {
		t.Fatalf("lease lost: %v", err)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if p, _, err := raw.KV().Get("service/seed", nil); err != nil || p != nil {
		t.Fatalf("the key after release: %+v, %v, want deleted", p, err)
	}
	if s, _, err := raw.Session().Info(lease.(*consul.Lease).Session(), nil); err != nil || s != nil {
		t.Fatalf("the session after release: %+v, %v, want destroyed", s, err)
	}
	// b waits in blocking queries on the key, and gets it once a, which
	// took it again, releases it (the delete wakes b's query).
	la, err := a.Acquire(ctx, "service/seed")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		lb, err := b.Acquire(ctx, "service/seed")
		if err == nil {
			err = lb.Release(ctx)
		}
		got <- err
	}()
	time.Sleep(300 * time.Millisecond)
	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("b not granted 10 s after the release")
	}
}
