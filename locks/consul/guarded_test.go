package consul_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/consul"
)

// A guarded write lands while the lease's session holds the lock key.
// Once that session is destroyed (as Consul invalidates a session whose
// node failed or whose TTL ran out) and another client holds the key, the
// old holder's guarded write and read are refused by the transaction's
// session check at the server, and the data keeps the new holder's value.
func TestGuardedWriteRefusedAfterSessionGone(t *testing.T) {
	c := startConsul(t, 1)
	url := c.URLs()[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	oldL := newLocker(t, url, consul.Config{})
	nextL := newLocker(t, url, consul.Config{})
	raw := rawClient(t, url)
	const key, data = "service/guarded", "service/guarded-data"

	a, err := oldL.TryAcquire(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	g := a.(locks.Guarded)
	if v, err := g.GuardedGet(ctx, data); err != nil || v != nil {
		t.Fatalf("guarded get of an absent key: %q, %v", v, err)
	}
	if err := g.GuardedPut(ctx, data, []byte("1")); err != nil {
		t.Fatal(err)
	}
	if v, err := g.GuardedGet(ctx, data); err != nil || string(v) != "1" {
		t.Fatalf("guarded get: %q, %v", v, err)
	}

	if _, err := raw.Session().Destroy(a.(*consul.Lease).Session(), nil); err != nil {
		t.Fatal(err)
	}
	b, err := nextL.Acquire(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release(context.Background())
	gb := b.(locks.Guarded)
	if err := gb.GuardedPut(ctx, data, []byte("2")); err != nil {
		t.Fatal(err)
	}
	err = g.GuardedPut(ctx, data, []byte("stale"))
	if !errors.Is(err, locks.ErrNotHeld) || !errors.Is(err, locks.ErrLockLost) {
		t.Fatalf("old holder's guarded put: %v, want ErrNotHeld and ErrLockLost", err)
	}
	if _, err := g.GuardedGet(ctx, data); !errors.Is(err, locks.ErrNotHeld) {
		t.Fatalf("old holder's guarded get: %v, want ErrNotHeld", err)
	}
	select {
	case <-a.Lost():
	default:
		t.Fatal("old holder's lease not lost")
	}
	pair, _, err := raw.KV().Get(data, nil)
	if err != nil || pair == nil || string(pair.Value) != "2" {
		t.Fatalf("Consul holds %+v, %v; want the new holder's 2", pair, err)
	}
	if pair.Session != "" {
		t.Fatalf("the data key is locked by %s", pair.Session)
	}
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := gb.GuardedPut(ctx, data, []byte("3")); !errors.Is(err, locks.ErrNotHeld) {
		t.Fatalf("guarded put after release: %v, want ErrNotHeld", err)
	}
}
