package etcd_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/etcd"
)

// A guarded write lands while the lease holds the lock. Once the old
// holder's lease is gone (revoked here, as the server revokes an expired
// one) and another client holds the lock, the old holder's guarded write
// and read are refused by etcd's transaction, and the data keeps the new
// holder's value.
func TestGuardedWriteRefusedAfterLeaseGone(t *testing.T) {
	ctx := timeout(t, 30*time.Second)
	key := testKey(t)
	data := "/locksim-test/data/" + key
	oldL, cli := newLocker(t, locks.WithTTL(5*time.Second))
	nextL, _ := newLocker(t, locks.WithTTL(5*time.Second))

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

	revoke(t, a.(*etcd.Lease).LeaseID())
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
	case <-time.After(5 * time.Second):
		t.Fatal("old holder's lease not lost")
	}
	resp, err := cli.Get(ctx, data)
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "2" {
		t.Fatalf("etcd holds %v, %v; want the new holder's 2", resp, err)
	}
	// The data key is not the lease's: it outlives the lock.
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := gb.GuardedPut(ctx, data, []byte("3")); !errors.Is(err, locks.ErrNotHeld) {
		t.Fatalf("guarded put after release: %v, want ErrNotHeld", err)
	}
	if resp, err := cli.Get(ctx, data); err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "2" {
		t.Fatalf("after release etcd holds %v, %v", resp, err)
	}
}
