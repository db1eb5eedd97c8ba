package megamutex_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	gomemcache "github.com/bradfitz/gomemcache/memcache"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/megamutex"
	"github.com/locksim/locksim/locks/megamutex/machine"
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

func newLocker(t testing.TB, cfg megamutex.Config, opts ...locks.Option) *megamutex.Locker {
	t.Helper()
	l, err := megamutex.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func tryAcquire(t *testing.T, l *megamutex.Locker, key string) *megamutex.Lease {
	t.Helper()
	lease, err := l.TryAcquire(context.Background(), key)
	if err != nil {
		t.Fatalf("TryAcquire(%q): %v", key, err)
	}
	return lease.(*megamutex.Lease)
}

// home is the server a key's first try goes to (memcache-client's
// continuum over cfg's servers).
func home(cfg megamutex.Config, key string) int {
	m := machine.New(megamutex.MachineConfig(cfg, locks.Options{}, 0))
	return m.Order(m.CacheKey(key))[0]
}

// The item is mega_mutex:<key> holding "pid.object_id.time", on the
// server memcache-client's continuum names; a second client's try is
// refused; unlock! deletes it.
func TestLockItemAndUnlock(t *testing.T) {
	m := startServers(t, cluster.MemcachedConfig{Servers: 3})
	cfg := megamutex.Config{Servers: m.Addrs()}
	a := newLocker(t, cfg)
	b := newLocker(t, cfg)
	for k := range 12 {
		key := "locksim-" + strconv.Itoa(k)
		la := tryAcquire(t, a, key)
		parts := strings.Split(la.ID(), ".")
		if len(parts) != 3 || parts[0] != strconv.Itoa(os.Getpid()) || la.Token() != 0 || la.HasToken() {
			t.Fatalf("lock id %q, token %d", la.ID(), la.Token())
		}
		if unix, _ := strconv.ParseInt(parts[2], 10, 64); time.Since(time.Unix(unix, 0)) > 5*time.Second {
			t.Fatalf("lock id %q: time part is not now", la.ID())
		}
		h := home(cfg, key)
		for i, addr := range m.Addrs() {
			it, err := gomemcache.New(addr).Get("mega_mutex:" + key)
			switch {
			case i == h && (err != nil || string(it.Value) != la.ID()):
				t.Fatalf("%s on its server %s: %v, %v", key, addr, it, err)
			case i != h && !errors.Is(err, gomemcache.ErrCacheMiss):
				t.Fatalf("%s also on %s: %v", key, addr, err)
			}
		}
		if _, err := b.TryAcquire(context.Background(), key); !errors.Is(err, locks.ErrNotAcquired) {
			t.Fatalf("second client: %v, want ErrNotAcquired", err)
		}
		if err := la.Release(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := gomemcache.New(m.Addrs()[h]).Get("mega_mutex:" + key); !errors.Is(err, gomemcache.ErrCacheMiss) {
			t.Fatalf("after unlock: %v", err)
		}
	}
}

// A holder that never unlocks holds for ever: the item has no expiry, and
// a waiter with a timeout gets ErrNotAcquired after polling every 0.1 s.
func TestDeadHolderHoldsForever(t *testing.T) {
	m := startServers(t, cluster.MemcachedConfig{})
	cfg := megamutex.Config{Servers: m.Addrs()}
	tryAcquire(t, newLocker(t, cfg), "widgets") // never released
	time.Sleep(1100 * time.Millisecond)         // longer than any 1 s expiry
	b := newLocker(t, cfg, locks.WithWaitTimeout(400*time.Millisecond))
	start := time.Now()
	_, err := b.Acquire(context.Background(), "widgets")
	if !errors.Is(err, locks.ErrNotAcquired) {
		t.Fatalf("waiter: %v, want ErrNotAcquired", err)
	}
	if d := time.Since(start); d < 400*time.Millisecond || d > 3*time.Second {
		t.Fatalf("waited %v for a 400ms timeout", d)
	}
	// memcached's own statistics: the waiter read the key about twice per
	// 0.1 s poll (get, get), 4 polls and the first attempt, plus the
	// ensure unlock!'s get.
	stats, err := statGets(m.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	if stats < 8 || stats > 20 {
		t.Fatalf("cmd_get %d, want about 11 (polling every 0.1 s)", stats)
	}
}

// With Config.TTL the item expires: b takes the lock while a, which never
// checks, still holds it; a's unlock! then reads b's id and deletes
// nothing. (Had a's get come before the expiry and its delete after b's
// add, a would delete b's lock: machine/testdata/unlock plays that
// interleaving, which a real server cannot be made to show on demand.)
func TestTTLExpiresAndOldHolderIsRefused(t *testing.T) {
	m := startServers(t, cluster.MemcachedConfig{})
	cfg := megamutex.Config{Servers: m.Addrs(), TTL: time.Second}
	la := tryAcquire(t, newLocker(t, cfg), "widgets")
	time.Sleep(2100 * time.Millisecond)
	lb := tryAcquire(t, newLocker(t, cfg), "widgets")
	if la.Err() != nil {
		t.Fatal("a knows it lost the lock")
	}
	if err := la.Release(context.Background()); !errors.Is(err, locks.ErrLockLost) || !strings.Contains(err.Error(), lb.ID()) {
		t.Fatalf("a's release of b's lock: %v, want ErrLockLost naming %s", err, lb.ID())
	}
	if it, err := gomemcache.New(m.Addrs()[0]).Get("mega_mutex:widgets"); err != nil || string(it.Value) != lb.ID() {
		t.Fatalf("b's lock after a's release: %v, %v", it, err)
	}
}

// Two servers; the key's server is stopped. The next client's connect is
// refused, the server is marked dead, and the key goes to the other
// server, where it is free: two holders. A holder there that unlocks
// while the first server is still marked dead deletes its own item only.
func TestFailoverGivesTwoHolders(t *testing.T) {
	m := startServers(t, cluster.MemcachedConfig{Servers: 2})
	cfg := megamutex.Config{Servers: m.Addrs()}
	h := home(cfg, "widgets")
	la := tryAcquire(t, newLocker(t, cfg), "widgets")
	if err := m.Nodes()[h].Stop(); err != nil {
		t.Fatal(err)
	}
	b := newLocker(t, cfg)
	lb := tryAcquire(t, b, "widgets")
	if it, err := gomemcache.New(m.Addrs()[1-h]).Get("mega_mutex:widgets"); err != nil || string(it.Value) != lb.ID() {
		t.Fatalf("b's lock on the other server: %v, %v", it, err)
	}
	if la.Err() != nil {
		t.Fatal("a knows it lost the lock")
	}
	// Without failover: "No servers available".
	nf := cfg
	nf.NoFailover = true
	_, err := newLocker(t, nf).TryAcquire(context.Background(), "widgets")
	var be *locks.BackendError
	if !errors.As(err, &be) || be.Backend != "megamutex" || !strings.Contains(err.Error(), "no servers available") {
		t.Fatalf("without failover: %v", err)
	}
	// The first server comes back (empty: a restart); b's client still
	// skips it for 30 s, so b's unlock! finds its own item.
	if err := m.Nodes()[h].Start(); err != nil {
		t.Fatal(err)
	}
	if err := lb.Release(context.Background()); err != nil {
		t.Fatalf("b's release within the dead window: %v", err)
	}
}

// A server that does not answer (SIGSTOP) within the timeout: the
// operation raises, the server is marked dead, and the client's next
// request goes to the other server at once, without waiting for the
// stopped one.
func TestTimeoutMarksServerDead(t *testing.T) {
	m := startServers(t, cluster.MemcachedConfig{Servers: 2})
	cfg := megamutex.Config{Servers: m.Addrs(), Timeout: 300 * time.Millisecond}
	h := home(cfg, "widgets")
	a := newLocker(t, cfg)
	la := tryAcquire(t, a, "widgets") // connects a to the key's server
	if err := m.Nodes()[h].Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Nodes()[h].Resume() })
	err := la.Release(context.Background())
	var be *locks.BackendError
	if !errors.As(err, &be) || be.Op != "unlock" {
		t.Fatalf("release on a stopped server: %v, want a backend error of unlock", err)
	}
	start := time.Now()
	lb := tryAcquire(t, a, "widgets") // on the other server, while a's first lock stays
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Fatalf("the second request took %v: it waited for the dead server", d)
	}
	if it, err := gomemcache.New(m.Addrs()[1-h]).Get("mega_mutex:widgets"); err != nil || string(it.Value) != lb.ID() {
		t.Fatalf("lock on the other server: %v, %v", it, err)
	}
}

// A key with spaces (MegaMutex's README's "WidgetMaker Mutex ID") is
// refused, as memcache-client refuses it.
func TestKeyWithSpaces(t *testing.T) {
	m := startServers(t, cluster.MemcachedConfig{})
	_, err := newLocker(t, megamutex.Config{Servers: m.Addrs()}).TryAcquire(context.Background(), "WidgetMaker Mutex ID")
	var be *locks.BackendError
	if !errors.As(err, &be) {
		t.Fatalf("key with spaces: %v, want a backend error", err)
	}
}

// Acquire polls until the holder unlocks, and stops when ctx ends.
func TestAcquireWaitsAndCancels(t *testing.T) {
	m := startServers(t, cluster.MemcachedConfig{})
	cfg := megamutex.Config{Servers: m.Addrs()}
	la := tryAcquire(t, newLocker(t, cfg), "k")
	b := newLocker(t, cfg)
	got := make(chan error, 1)
	go func() {
		lb, err := b.Acquire(context.Background(), "k")
		if err == nil {
			err = lb.Release(context.Background())
		}
		got <- err
	}()
	time.Sleep(300 * time.Millisecond)
	if err := la.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("waiter: %v", err)
	}
	tryAcquire(t, newLocker(t, cfg), "k")
	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	if _, err := b.Acquire(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled waiter: %v", err)
	}
}
