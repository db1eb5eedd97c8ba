package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/etcd"
)

// shared is the three-member cluster most tests and the benchmarks use.
var shared *cluster.Etcd

func TestMain(m *testing.M) {
	cluster.MaybeRunEtcdMember()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	c, err := cluster.StartEtcd(cluster.EtcdConfig{Members: 3})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	shared = c
	code := m.Run()
	if err := c.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close cluster:", err)
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	return code
}

// newClient returns a client of endpoints, closed when the test ends.
func newClient(tb testing.TB, endpoints []string) *clientv3.Client {
	tb.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cli.Close() })
	return cli
}

// newLocker returns a Locker on its own client of the shared cluster.
func newLocker(tb testing.TB, opts ...locks.Option) (*etcd.Locker, *clientv3.Client) {
	tb.Helper()
	cli := newClient(tb, shared.Endpoints())
	l, err := etcd.New(cli, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return l, cli
}

// testKey is a key no other test uses.
func testKey(t testing.TB) string { return t.Name() }

func timeout(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

// revoke revokes a lease from another client, as an operator or a fault
// would.
func revoke(t *testing.T, id clientv3.LeaseID) {
	t.Helper()
	other := newClient(t, shared.Endpoints())
	if _, err := other.Revoke(timeout(t, 5*time.Second), id); err != nil {
		t.Fatal(err)
	}
}

func TestCounterNoLostIncrement(t *testing.T) {
	const clients, rounds = 5, 8
	key := testKey(t)
	var (
		counter int // read-modify-write under the lock only
		inside  atomic.Int32
		overlap atomic.Bool
		wg      sync.WaitGroup
		errs    = make(chan error, clients*rounds)
	)
	for range clients {
		l, _ := newLocker(t, locks.WithTTL(2*time.Second))
		wg.Go(func() {
			for range rounds {
				err := locks.Run(timeout(t, 60*time.Second), l, key, func(ctx context.Context, _ locks.Lease) error {
					if inside.Add(1) != 1 {
						overlap.Store(true)
					}
					v := counter
					time.Sleep(time.Millisecond) // widen the race window
					counter = v + 1
					inside.Add(-1)
					return nil
				})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if overlap.Load() {
		t.Error("two clients were in the critical section at once")
	}
	if counter != clients*rounds {
		t.Errorf("counter = %d, want %d: increments lost", counter, clients*rounds)
	}
}

func TestTryAcquireWhileHeld(t *testing.T) {
	key := testKey(t)
	a, _ := newLocker(t, locks.WithTTL(2*time.Second))
	b, _ := newLocker(t, locks.WithTTL(2*time.Second))
	ctx := timeout(t, 10*time.Second)
	la, err := a.TryAcquire(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.TryAcquire(ctx, key); !errors.Is(err, locks.ErrNotAcquired) {
		t.Fatalf("TryAcquire while held: %v, want ErrNotAcquired", err)
	}
	// The same locker, another grant: also refused.
	if _, err := a.TryAcquire(ctx, key); !errors.Is(err, locks.ErrNotAcquired) {
		t.Fatalf("second TryAcquire by the holder's locker: %v, want ErrNotAcquired", err)
	}
	if err := locks.TryRun(ctx, b, key, func(context.Context, locks.Lease) error {
		t.Error("TryRun ran fn while the lock was held")
		return nil
	}); !errors.Is(err, locks.ErrNotAcquired) {
		t.Fatalf("TryRun while held: %v", err)
	}
	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	lb, err := b.TryAcquire(ctx, key)
	if err != nil {
		t.Fatalf("TryAcquire after release: %v", err)
	}
	if lb.Token() <= la.Token() {
		t.Errorf("token %d after %d", lb.Token(), la.Token())
	}
	if err := lb.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestReleaseByNonOwner(t *testing.T) {
	key := testKey(t)
	a, _ := newLocker(t, locks.WithTTL(2*time.Second))
	b, _ := newLocker(t, locks.WithTTL(2*time.Second))
	c, _ := newLocker(t, locks.WithTTL(2*time.Second))
	ctx := timeout(t, 10*time.Second)

	la, err := a.Acquire(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	revoke(t, la.(*etcd.Lease).LeaseID())
	lb, err := b.Acquire(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	// a is no longer the owner: its release is refused and b keeps the lock.
	if err := la.Release(ctx); !errors.Is(err, locks.ErrLockLost) {
		t.Fatalf("release by a former holder: %v, want ErrLockLost", err)
	}
	if _, err := c.TryAcquire(ctx, key); !errors.Is(err, locks.ErrNotAcquired) {
		t.Fatalf("after a non-owner's release, TryAcquire: %v, want ErrNotAcquired (b holds it)", err)
	}
	if lb.Err() != nil {
		t.Fatalf("b lost the lock: %v", lb.Err())
	}
	if err := lb.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// A second release is refused too.
	if err := lb.Release(ctx); !errors.Is(err, locks.ErrLockLost) {
		t.Fatalf("second release: %v, want ErrLockLost", err)
	}
}

func TestRenewAfterRevoke(t *testing.T) {
	key := testKey(t)
	l, _ := newLocker(t, locks.WithTTL(time.Second))
	ctx := timeout(t, 10*time.Second)
	lease, err := l.Acquire(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := lease.Renew(ctx); err != nil {
		t.Fatalf("renew while held: %v", err)
	}
	revoke(t, lease.(*etcd.Lease).LeaseID())
	err = lease.Renew(ctx)
	if !errors.Is(err, locks.ErrLockLost) {
		t.Fatalf("renew after revoke: %v, want ErrLockLost", err)
	}
	var lost *locks.LostError
	if !errors.As(err, &lost) || lost.Key != key {
		t.Errorf("renew error %v is not a *LostError for %q", err, key)
	}
	select {
	case <-lease.Lost():
	default:
		t.Error("Lost not closed after a failed renew")
	}
	if !errors.Is(lease.Err(), locks.ErrLockLost) {
		t.Errorf("Err() = %v", lease.Err())
	}
}

// TestLostOnRevoke checks that Lost fires by itself, through the session's
// keepalive, when the lease is revoked from outside.
func TestLostOnRevoke(t *testing.T) {
	l, _ := newLocker(t, locks.WithTTL(time.Second))
	ctx := timeout(t, 10*time.Second)
	lease, err := l.Acquire(ctx, testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	revoke(t, lease.(*etcd.Lease).LeaseID())
	select {
	case <-lease.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("Lost not closed 5 s after the lease was revoked")
	}
	if err := lease.Release(ctx); !errors.Is(err, locks.ErrLockLost) {
		t.Errorf("release after loss: %v", err)
	}
}

func TestRunCancelsFnOnLoss(t *testing.T) {
	key := testKey(t)
	l, _ := newLocker(t, locks.WithTTL(time.Second), locks.WithRenewEvery(200*time.Millisecond))
	ctx := timeout(t, 20*time.Second)
	var cancelledAfter time.Duration
	err := locks.Run(ctx, l, key, func(fnCtx context.Context, lease locks.Lease) error {
		start := time.Now()
		revoke(t, lease.(*etcd.Lease).LeaseID())
		select {
		case <-fnCtx.Done():
			cancelledAfter = time.Since(start)
			return fnCtx.Err()
		case <-time.After(10 * time.Second):
			return errors.New("fn's context not cancelled 10 s after the lease was revoked")
		}
	})
	if !errors.Is(err, locks.ErrLockLost) {
		t.Fatalf("Run: %v, want ErrLockLost", err)
	}
	var fnErr *locks.FnError
	if errors.As(err, &fnErr) {
		t.Fatalf("Run returned a FnError for a lost lock: %v", err)
	}
	t.Logf("fn cancelled %v after the revoke", cancelledAfter)
}

func TestRunFnError(t *testing.T) {
	l, _ := newLocker(t, locks.WithTTL(2*time.Second))
	boom := errors.New("boom")
	err := locks.Run(timeout(t, 10*time.Second), l, testKey(t), func(context.Context, locks.Lease) error { return boom })
	var fnErr *locks.FnError
	if !errors.As(err, &fnErr) || !errors.Is(err, boom) || errors.Is(err, locks.ErrLockLost) {
		t.Fatalf("Run: %v, want a FnError wrapping boom", err)
	}
	// The lock was released: the key is free.
	lease, err := l.TryAcquire(timeout(t, 5*time.Second), testKey(t))
	if err != nil {
		t.Fatalf("lock not released after fn failed: %v", err)
	}
	_ = lease.Release(context.Background())
}

func TestTokensIncrease(t *testing.T) {
	key := testKey(t)
	const clients, rounds = 4, 5
	var (
		mu     sync.Mutex
		tokens []locks.Token // in grant order: appended under the lock
		wg     sync.WaitGroup
	)
	for range clients {
		l, _ := newLocker(t, locks.WithTTL(2*time.Second))
		wg.Go(func() {
			for range rounds {
				err := locks.Run(timeout(t, 60*time.Second), l, key, func(_ context.Context, lease locks.Lease) error {
					mu.Lock()
					tokens = append(tokens, lease.Token())
					mu.Unlock()
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	// Grants also made after a loss and with TryAcquire.
	l, _ := newLocker(t, locks.WithTTL(time.Second))
	ctx := timeout(t, 10*time.Second)
	lease, err := l.TryAcquire(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	tokens = append(tokens, lease.Token())
	revoke(t, lease.(*etcd.Lease).LeaseID())
	lease2, err := l.Acquire(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	tokens = append(tokens, lease2.Token())
	_ = lease2.Release(ctx)

	if len(tokens) != clients*rounds+2 {
		t.Fatalf("%d grants, want %d", len(tokens), clients*rounds+2)
	}
	for i := 1; i < len(tokens); i++ {
		if tokens[i] <= tokens[i-1] {
			t.Fatalf("grant %d has token %d after %d: tokens %v", i, tokens[i], tokens[i-1], tokens)
		}
	}
}

func TestCancelledContextStopsAcquire(t *testing.T) {
	key := testKey(t)
	a, _ := newLocker(t, locks.WithTTL(2*time.Second))
	b, _ := newLocker(t, locks.WithTTL(2*time.Second))
	c, _ := newLocker(t, locks.WithTTL(2*time.Second))
	la, err := a.Acquire(timeout(t, 5*time.Second), key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := b.Acquire(ctx, key)
		done <- err
	}()
	time.Sleep(300 * time.Millisecond) // b is queued behind a
	select {
	case err := <-done:
		t.Fatalf("Acquire returned while the lock was held: %v", err)
	default:
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Acquire: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Acquire still waiting 5 s after its context was cancelled")
	}
	if err := la.Release(timeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	// b left the queue: c gets the lock at once.
	lc, err := c.TryAcquire(timeout(t, 5*time.Second), key)
	if err != nil {
		t.Fatalf("TryAcquire after the cancelled waiter left: %v", err)
	}
	_ = lc.Release(context.Background())
}

func TestWaitTimeout(t *testing.T) {
	key := testKey(t)
	a, _ := newLocker(t, locks.WithTTL(2*time.Second))
	b, _ := newLocker(t, locks.WithTTL(2*time.Second), locks.WithWaitTimeout(300*time.Millisecond))
	la, err := a.Acquire(timeout(t, 5*time.Second), key)
	if err != nil {
		t.Fatal(err)
	}
	defer la.Release(context.Background())
	start := time.Now()
	_, err = b.Acquire(timeout(t, 10*time.Second), key)
	if !errors.Is(err, locks.ErrNotAcquired) {
		t.Fatalf("Acquire past its wait timeout: %v, want ErrNotAcquired", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Errorf("gave up after %v, want about 300ms", d)
	}
}

func TestTTLRounding(t *testing.T) {
	for _, c := range []struct {
		ttl  time.Duration
		want int
	}{{time.Millisecond, 1}, {time.Second, 1}, {1500 * time.Millisecond, 2}, {2 * time.Second, 2}} {
		if got := etcd.TTLSeconds(c.ttl); got != c.want {
			t.Errorf("TTLSeconds(%v) = %d, want %d", c.ttl, got, c.want)
		}
	}
	l, cli := newLocker(t, locks.WithTTL(1500*time.Millisecond))
	if got := l.Options().RenewEvery; got != 500*time.Millisecond {
		t.Errorf("default RenewEvery for TTL 1.5s = %v, want TTL/3", got)
	}
	ctx := timeout(t, 5*time.Second)
	lease, err := l.Acquire(ctx, testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Release(ctx)
	resp, err := cli.TimeToLive(ctx, lease.(*etcd.Lease).LeaseID())
	if err != nil {
		t.Fatal(err)
	}
	if resp.GrantedTTL != 2 {
		t.Errorf("granted TTL %d s, want 2", resp.GrantedTTL)
	}
}

func TestIsOwnerGuardsWrites(t *testing.T) {
	l, cli := newLocker(t, locks.WithTTL(2*time.Second))
	ctx := timeout(t, 10*time.Second)
	lease, err := l.Acquire(ctx, testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	el := lease.(*etcd.Lease)
	guarded := func() bool {
		resp, err := cli.Txn(ctx).If(el.IsOwner()).Then(clientv3.OpPut("/guarded", "x")).Commit()
		if err != nil {
			t.Fatal(err)
		}
		return resp.Succeeded
	}
	if !guarded() {
		t.Error("guarded write refused while held")
	}
	revoke(t, el.LeaseID())
	if guarded() {
		t.Error("guarded write accepted after the lease was revoked")
	}
}

func TestBackendError(t *testing.T) {
	cli := newClient(t, shared.Endpoints())
	l, err := etcd.New(cli)
	if err != nil {
		t.Fatal(err)
	}
	cli.Close()
	_, err = l.TryAcquire(timeout(t, 5*time.Second), testKey(t))
	var be *locks.BackendError
	if !errors.As(err, &be) || be.Backend != "etcd" || be.Op != "acquire" {
		t.Fatalf("TryAcquire on a closed client: %v, want a BackendError from etcd", err)
	}
}

func TestBadOptions(t *testing.T) {
	cli := newClient(t, shared.Endpoints())
	if _, err := etcd.New(cli, locks.WithTTL(time.Second), locks.WithRenewEvery(2*time.Second)); err == nil {
		t.Error("RenewEvery longer than TTL accepted")
	}
}

// TestThreeMembersOneDown runs the lock on its own three-member cluster
// while one member is paused, then killed, then restarted.
func TestThreeMembersOneDown(t *testing.T) {
	c, err := cluster.StartEtcd(cluster.EtcdConfig{Members: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Without gRPC keepalive a client whose connection goes to the paused
	// member waits on it forever (the kernel still accepts its packets);
	// with it, gRPC gives that connection up after Time+Timeout (gRPC's
	// minimum Time is 10 s) and the balancer uses the other members.
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            c.Endpoints(),
		DialTimeout:          2 * time.Second,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	l, err := etcd.New(cli, locks.WithTTL(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	key := testKey(t)
	var last locks.Token
	// hold runs one critical section, retrying for a while: right after a
	// fault a request can reach the stopped member or a lost leader and time
	// out (etcd does not retry it).
	hold := func(what string) {
		t.Helper()
		deadline := time.Now().Add(45 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			err := locks.Run(ctx, l, key, func(_ context.Context, lease locks.Lease) error {
				if lease.Token() <= last {
					return fmt.Errorf("token %d after %d", lease.Token(), last)
				}
				last = lease.Token()
				return nil
			})
			cancel()
			if err == nil {
				return
			}
			var fnErr *locks.FnError
			if errors.As(err, &fnErr) || time.Now().After(deadline) {
				t.Fatalf("%s: %v", what, err)
			}
			t.Logf("%s: retrying after %v", what, err)
		}
	}
	hold("all members up")
	m := c.Member("etcd1")
	if err := m.Pause(); err != nil {
		t.Fatal(err)
	}
	hold("etcd1 paused")
	if err := m.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	hold("etcd1 killed")
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(timeout(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	hold("etcd1 restarted")
}

// TestLostWhenServerPaused: with its only server paused, the holder gets
// no keepalive answer and learns the loss after about one TTL, by the etcd
// client's own lease deadline.
func TestLostWhenServerPaused(t *testing.T) {
	c, err := cluster.StartEtcd(cluster.EtcdConfig{Members: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cli := newClient(t, c.Endpoints())
	l, err := etcd.New(cli, locks.WithTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	lease, err := l.Acquire(timeout(t, 5*time.Second), testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	m := c.Member("etcd1")
	if err := m.Pause(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	select {
	case <-lease.Lost():
		t.Logf("Lost %v after the server was paused", time.Since(start))
	case <-time.After(10 * time.Second):
		t.Fatal("Lost not closed 10 s after the only server was paused")
	}
	if !errors.Is(lease.Err(), locks.ErrLockLost) {
		t.Errorf("Err() = %v", lease.Err())
	}
	if err := m.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := lease.Release(timeout(t, 5*time.Second)); !errors.Is(err, locks.ErrLockLost) {
		t.Errorf("release after loss: %v", err)
	}
}
