package memcache_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	gomemcache "github.com/bradfitz/gomemcache/memcache"

	"github.com/locksim/locksim/checker"
	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/memcache"
)

func startServers(t testing.TB, cfg cluster.MemcachedConfig) *cluster.Memcached {
	t.Helper()
	m, err := cluster.StartMemcached(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func newLocker(t testing.TB, cfg memcache.Config, opts ...locks.Option) *memcache.Locker {
	t.Helper()
	l, err := memcache.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func tryAcquire(t *testing.T, l *memcache.Locker, key string) locks.Lease {
	t.Helper()
	lease, err := l.TryAcquire(context.Background(), key)
	if err != nil {
		t.Fatalf("TryAcquire(%q): %v", key, err)
	}
	return lease
}

// recorder writes the history events of a test on one clock, for the
// checker.
type recorder struct {
	start  time.Time
	events []history.Event
}

func newRecorder() *recorder { return &recorder{start: time.Now()} }

func (r *recorder) add(proc string, typ history.Type, f, key string, tok locks.Token) {
	e := history.Event{T: int64(time.Since(r.start)), Proc: proc, Type: typ, F: f, Key: key}
	if typ == history.OK && f == history.FAcquire {
		e.Token, e.HasToken = int64(tok), true
	}
	r.events = append(r.events, e)
}

// acquire records c's TryAcquire.
func (r *recorder) acquire(t *testing.T, proc string, l *memcache.Locker, key string) locks.Lease {
	t.Helper()
	r.add(proc, history.Invoke, history.FAcquire, key, 0)
	lease := tryAcquire(t, l, key)
	r.add(proc, history.OK, history.FAcquire, key, lease.Token())
	return lease
}

// release records proc's Release of lease and returns its error.
func (r *recorder) release(t *testing.T, proc string, lease locks.Lease) error {
	t.Helper()
	time.Sleep(time.Millisecond) // after the other acquire, not touching it
	r.add(proc, history.Invoke, history.FRelease, lease.Key(), 0)
	err := lease.Release(context.Background())
	typ := history.OK
	if err != nil {
		typ = history.Fail
	}
	r.add(proc, typ, history.FRelease, lease.Key(), 0)
	return err
}

func (r *recorder) check() checker.Result {
	c := checker.New(checker.Options{})
	for i := range r.events {
		c.Add(&r.events[i])
	}
	return c.Finish()
}

func TestTryAcquireWhileHeldAndTokensIncrease(t *testing.T) {
	m := startServers(t, cluster.MemcachedConfig{})
	ctx := context.Background()
	a := newLocker(t, memcache.Config{Servers: m.Addrs()}, locks.WithOwner("a"))
	b := newLocker(t, memcache.Config{Servers: m.Addrs()}, locks.WithOwner("b"))

	la := tryAcquire(t, a, "widgets")
	if _, err := b.TryAcquire(ctx, "widgets"); !errors.Is(err, locks.ErrNotAcquired) {
		t.Fatalf("second TryAcquire while held: %v, want ErrNotAcquired", err)
	}
	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	lb := tryAcquire(t, b, "widgets")
	if lb.Token() <= la.Token() {
		t.Fatalf("tokens %d then %d: not increasing", la.Token(), lb.Token())
	}
	if err := lb.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lb.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if la.Err() != nil || lb.Err() != nil {
		t.Fatal("a released lease reports itself lost")
	}
}

// The server holding the key is killed and restarted while a holds the
// lock: the key and its token counter are gone, b acquires while a still
// believes it holds, with a token no greater than a's. The checker sees
// both.
func TestServerRestartGivesTwoHolders(t *testing.T) {
	m := startServers(t, cluster.MemcachedConfig{})
	ctx := context.Background()
	a := newLocker(t, memcache.Config{Servers: m.Addrs()}, locks.WithOwner("a"))
	b := newLocker(t, memcache.Config{Servers: m.Addrs()}, locks.WithOwner("b"))
	c := newLocker(t, memcache.Config{Servers: m.Addrs()}, locks.WithOwner("c"))
	rec := newRecorder()

	la := rec.acquire(t, "c1", a, "widgets")
	if err := m.Nodes()[0].Kill(); err != nil {
		t.Fatal(err)
	}
	if err := m.Nodes()[0].Restart(); err != nil {
		t.Fatal(err)
	}
	lb := rec.acquire(t, "c2", b, "widgets")
	if la.Err() != nil {
		t.Fatal("a already knows it lost the lock")
	}
	if lb.Token() > la.Token() {
		t.Fatalf("token counter survived the restart: %d then %d", la.Token(), lb.Token())
	}

	// a's release is refused and does not free b's lock.
	if err := rec.release(t, "c1", la); !errors.Is(err, locks.ErrLockLost) {
		t.Fatalf("release by a, no longer the owner: %v, want ErrLockLost", err)
	}
	res := rec.check()
	counts := res.Counts()
	if counts[checker.MutualExclusion] == 0 || counts[checker.FencingLock] == 0 {
		t.Fatalf("checker missed the violations: %+v", res.Violations)
	}
	if !strings.Contains(la.Err().Error(), "taken by b") {
		t.Fatalf("loss reason: %v", la.Err())
	}
	if _, err := c.TryAcquire(ctx, "widgets"); !errors.Is(err, locks.ErrNotAcquired) {
		t.Fatalf("lock free after the non-owner's release: %v", err)
	}
}

// Under a 2 MB limit, writes of items the size of the lock push it out of
// memcached's LRU: b acquires while a still believes it holds.
func TestEvictionGivesTwoHolders(t *testing.T) {
	m := startServers(t, cluster.MemcachedConfig{MemoryMB: 2})
	ctx := context.Background()
	a := newLocker(t, memcache.Config{Servers: m.Addrs()}, locks.WithOwner("a"))
	b := newLocker(t, memcache.Config{Servers: m.Addrs()}, locks.WithOwner("b"))
	rec := newRecorder()

	la := rec.acquire(t, "c1", a, "lock")
	if _, err := b.TryAcquire(ctx, "lock"); !errors.Is(err, locks.ErrNotAcquired) {
		t.Fatalf("b got the lock before the eviction: %v", err)
	}
	// Same key length and value size as the lock ("a " + 16 hex digits),
	// so the fill lands in the lock's slab class.
	raw := gomemcache.New(m.Addrs()...)
	fill := []byte(strings.Repeat("f", 18))
	for i := range 60_000 {
		if err := raw.Set(&gomemcache.Item{Key: fmt.Sprintf("%04x", i), Value: fill}); err != nil {
			t.Fatal(err)
		}
	}
	rec.acquire(t, "c2", b, "lock")
	if la.Err() != nil {
		t.Fatal("a already knows it lost the lock")
	}
	if err := rec.release(t, "c1", la); !errors.Is(err, locks.ErrLockLost) {
		t.Fatalf("release after eviction: %v, want ErrLockLost", err)
	}
	res := rec.check()
	if res.Counts()[checker.MutualExclusion] == 0 {
		t.Fatal("checker missed the overlap")
	}
}

// Two servers; the one holding the key is stopped. A client that finds it
// down fails over to the other server and takes the lock there while the
// first holder still holds it: two holders. Without failover it fails.
func TestFailoverGivesTwoHolders(t *testing.T) {
	m := startServers(t, cluster.MemcachedConfig{Servers: 2})
	cfg := memcache.Config{Servers: m.Addrs(), Timeout: 200 * time.Millisecond}
	a := newLocker(t, cfg, locks.WithOwner("a"))
	b := newLocker(t, cfg, locks.WithOwner("b"))
	noFailover := cfg
	noFailover.NoFailover = true
	c := newLocker(t, noFailover, locks.WithOwner("c"))

	la := tryAcquire(t, a, "widgets").(*memcache.Lease)
	for _, n := range m.Nodes() {
		if n.Addr() == la.Server() {
			if err := n.Stop(); err != nil {
				t.Fatal(err)
			}
		}
	}
	lb := tryAcquire(t, b, "widgets").(*memcache.Lease)
	if lb.Server() == la.Server() {
		t.Fatalf("both on %s", la.Server())
	}
	if la.Err() != nil || lb.Err() != nil {
		t.Fatal("a holder knows it lost the lock")
	}
	_, err := c.TryAcquire(context.Background(), "widgets")
	var be *locks.BackendError
	if !errors.As(err, &be) || be.Backend != "memcache" {
		t.Fatalf("without failover: %v, want a memcache *locks.BackendError", err)
	}
}

func TestAcquirePollsUntilReleasedAndStopsOnCancel(t *testing.T) {
	m := startServers(t, cluster.MemcachedConfig{})
	ctx := context.Background()
	a := newLocker(t, memcache.Config{Servers: m.Addrs()})
	b := newLocker(t, memcache.Config{Servers: m.Addrs()}, locks.WithPollInterval(20*time.Millisecond))
	la := tryAcquire(t, a, "k")

	short, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel()
	if _, err := b.Acquire(short, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire with a cancelled context: %v", err)
	}
	timed := newLocker(t, memcache.Config{Servers: m.Addrs()},
		locks.WithPollInterval(20*time.Millisecond), locks.WithWaitTimeout(100*time.Millisecond))
	if _, err := timed.Acquire(ctx, "k"); !errors.Is(err, locks.ErrNotAcquired) {
		t.Fatalf("Acquire past its wait timeout: %v", err)
	}

	got := make(chan error, 1)
	go func() {
		lb, err := b.Acquire(ctx, "k")
		if err == nil {
			err = lb.Release(ctx)
		}
		got <- err
	}()
	time.Sleep(100 * time.Millisecond)
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

// Run renews the lease; when the server restarts, the next renewal finds
// the key gone, fn's context is cancelled and Run returns ErrLockLost.
func TestRunLosesLockOnRestart(t *testing.T) {
	m := startServers(t, cluster.MemcachedConfig{})
	l := newLocker(t, memcache.Config{Servers: m.Addrs()},
		locks.WithTTL(2*time.Second), locks.WithRenewEvery(100*time.Millisecond))
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- locks.Run(context.Background(), l, "job", func(ctx context.Context, _ locks.Lease) error {
			close(started)
			<-ctx.Done()
			return nil
		})
	}()
	<-started
	if err := m.Nodes()[0].Restart(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, locks.ErrLockLost) {
			t.Fatalf("Run: %v, want ErrLockLost", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not notice the loss")
	}
}

func TestListConcurrentInserts(t *testing.T) {
	m := startServers(t, cluster.MemcachedConfig{Servers: 2})
	l := newLocker(t, memcache.Config{Servers: m.Addrs()})
	list := l.List("results", 0)
	const workers, items = 6, 40
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range items {
				item := fmt.Sprintf("key%d", (i+w*7)%items) // all workers, all items, different orders
				_, ok, err := list.Insert(context.Background(), item)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					mu.Lock()
					acked = append(acked, item)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	got, err := list.Contents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	v := memcache.CheckList(acked, got)
	if !v.OK() || len(v.Holes) > 0 || len(acked) != items || got.Count != items {
		t.Fatalf("acked %d, count %d, verdict %+v", len(acked), got.Count, v)
	}
}

// A restart empties the count and the markers: new inserts overwrite the
// first positions and the acknowledged inserts before it are missing.
func TestListRestartLosesAcknowledgedInserts(t *testing.T) {
	m := startServers(t, cluster.MemcachedConfig{})
	l := newLocker(t, memcache.Config{Servers: m.Addrs()})
	list := l.List("results", 0)
	ctx := context.Background()
	var acked []string
	insert := func(item string) {
		if _, ok, err := list.Insert(ctx, item); err != nil || !ok {
			t.Fatalf("Insert(%q): %v %v", item, ok, err)
		}
		acked = append(acked, item)
	}
	for i := range 5 {
		insert(fmt.Sprintf("old%d", i))
	}
	if err := m.Nodes()[0].Restart(); err != nil {
		t.Fatal(err)
	}
	insert("new0")
	insert("old0") // accepted again: its marker went with the restart
	got, err := list.Contents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v := memcache.CheckList(acked, got)
	if v.OK() || len(v.Missing) != 4 {
		t.Fatalf("verdict %+v on %+v", v, got)
	}
}

func TestCheckList(t *testing.T) {
	for _, tc := range []struct {
		name      string
		acked     []string
		got       memcache.ListContents
		dup, miss int
		ok        bool
	}{
		{"all there", []string{"a", "b"}, memcache.ListContents{Count: 2, Items: []string{"b", "a"}}, 0, 0, true},
		{"listed twice", []string{"a", "a"}, memcache.ListContents{Count: 2, Items: []string{"a", "a"}}, 1, 0, false},
		{"missing", []string{"a", "b"}, memcache.ListContents{Count: 1, Items: []string{"b"}}, 0, 1, false},
		{"hole only", []string{"a"}, memcache.ListContents{Count: 2, Items: []string{"a"}, Holes: []uint64{2}}, 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := memcache.CheckList(tc.acked, tc.got)
			if v.OK() != tc.ok || len(v.Duplicates) != tc.dup || len(v.Missing) != tc.miss {
				t.Fatalf("%+v", v)
			}
		})
	}
}

// A server whose clock runs ten times too fast (libfaketime) expires a
// 10 s lock after about 1 s of real time: b acquires while a, which was
// promised 10 s, still believes it holds.
func TestFastServerClockGivesTwoHolders(t *testing.T) {
	m := startServers(t, cluster.MemcachedConfig{Faketime: "+0 x10"})
	ttl := locks.WithTTL(10 * time.Second)
	a := newLocker(t, memcache.Config{Servers: m.Addrs()}, ttl, locks.WithRenewEvery(5*time.Second))
	b := newLocker(t, memcache.Config{Servers: m.Addrs()}, ttl, locks.WithRenewEvery(5*time.Second),
		locks.WithPollInterval(100*time.Millisecond))
	la := tryAcquire(t, a, "k")
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := b.Acquire(ctx, "k"); err != nil {
		t.Fatalf("b waiting for a 10 s lock on a x10 server: %v", err)
	}
	if held := time.Since(start); held > 5*time.Second || la.Err() != nil {
		t.Fatalf("a held %v, lost=%v", held, la.Err())
	}
	t.Logf("b acquired %v into a's 10 s lease", time.Since(start).Round(time.Millisecond))
}
