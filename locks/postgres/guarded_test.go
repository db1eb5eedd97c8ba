package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/postgres"
)

// refused checks that err is a guarded operation refused by the server:
// it matches ErrNotHeld and ErrLockLost, and the lease is lost.
func refused(t *testing.T, what string, err error, lease locks.Lease) {
	t.Helper()
	if !errors.Is(err, locks.ErrNotHeld) || !errors.Is(err, locks.ErrLockLost) {
		t.Fatalf("%s: %v, want an error matching ErrNotHeld and ErrLockLost", what, err)
	}
	select {
	case <-lease.Lost():
	default:
		t.Fatalf("%s: refused, yet the lease is not lost", what)
	}
}

// The lease table: a guarded write lands while the lease holds the row;
// once another owner took the row (the old holder's locked_until passed on
// the new one's clock), the old holder's guarded write and read are
// refused by the server and the data keeps the new holder's value.
func TestLockerGuardedWriteRefusedAfterSteal(t *testing.T) {
	pool := newPool(t)
	key := testKey(t)
	data := key + "/data"
	ctx := ctxTimeout(t, 30*time.Second)
	old := newLocker(t, pool, "old", postgres.Config{Clock: postgres.ClockClient})
	thief := newLocker(t, pool, "thief", postgres.Config{Clock: postgres.ClockClient},
		locks.WithClock(skewedClock{offset: time.Hour}))

	a, err := old.TryAcquire(ctx, key)
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

	b, err := thief.TryAcquire(ctx, key) // the old row has expired on the thief's clock
	if err != nil {
		t.Fatal(err)
	}
	gb := b.(locks.Guarded)
	if err := gb.GuardedPut(ctx, data, []byte("2")); err != nil {
		t.Fatal(err)
	}
	refused(t, "old holder's guarded put", g.GuardedPut(ctx, data, []byte("stale")), a)
	_, err = g.GuardedGet(ctx, data)
	refused(t, "old holder's guarded get", err, a)
	if v, err := gb.GuardedGet(ctx, data); err != nil || string(v) != "2" {
		t.Fatalf("after the refused write: %q, %v; want the thief's 2", v, err)
	}
	var inTable []byte
	if err := pool.QueryRow(ctx, `SELECT value FROM locks_data WHERE key = $1`, data).Scan(&inTable); err != nil || string(inTable) != "2" {
		t.Fatalf("the table holds %q, %v", inTable, err)
	}

	// Released: the row is nobody's, and a guarded write is refused.
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := gb.GuardedPut(ctx, data, []byte("3")); !errors.Is(err, locks.ErrNotHeld) {
		t.Fatalf("guarded put after release: %v, want ErrNotHeld", err)
	}
}

// The same owner taking the row again (a new grant, a new sequence) does
// not revive an old lease: the guard checks the sequence, not only
// locked_by.
func TestLockerGuardedChecksSequence(t *testing.T) {
	pool := newPool(t)
	key := testKey(t)
	ctx := ctxTimeout(t, 30*time.Second)
	l := newLocker(t, pool, "same", postgres.Config{DataTable: "guarded_seq_data"})
	a, err := l.TryAcquire(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	// Another grant to the same locked_by: what Locker's get does when the
	// row is already ours.
	if _, err := pool.Exec(ctx, `UPDATE locks SET sequence = sequence + 1 WHERE key = $1`, key); err != nil {
		t.Fatal(err)
	}
	refused(t, "guarded put with an old sequence", a.(locks.Guarded).GuardedPut(ctx, key, []byte("x")), a)
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM guarded_seq_data WHERE key = $1`, key).Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows written: %d, %v", n, err)
	}
}

// Advisory: the guarded write runs on the lock's own connection. Once the
// server ended that session (pg_terminate_backend) and another client
// holds the lock, the old holder's guarded write cannot land: the lease is
// lost, the error matches ErrLockLost, and the data keeps the new holder's
// value. After Release a guarded write is refused at once.
func TestAdvisoryGuardedWriteAfterSessionEnded(t *testing.T) {
	key := testKey(t)
	data := key + "/data"
	ctx := ctxTimeout(t, 30*time.Second)
	old, next := newAdvisory(t), newAdvisory(t)
	a, err := old.TryAcquire(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	g := a.(locks.Guarded)
	if err := g.GuardedPut(ctx, data, []byte("1")); err != nil {
		t.Fatal(err)
	}
	if v, err := g.GuardedGet(ctx, data); err != nil || string(v) != "1" {
		t.Fatalf("guarded get: %q, %v", v, err)
	}
	// Another session cannot pass the guard: the lock is not its own.
	if _, err := next.TryAcquire(ctx, key); !errors.Is(err, locks.ErrNotAcquired) {
		t.Fatalf("second TryAcquire: %v", err)
	}

	pool := newPool(t)
	var ok bool
	if err := pool.QueryRow(ctx, "SELECT pg_terminate_backend($1::int4, 5000)", int32(a.(*postgres.AdvisoryLease).BackendPID())).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend: %v, %v", ok, err)
	}
	b, err := next.Acquire(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release(context.Background())
	gb := b.(locks.Guarded)
	if err := gb.GuardedPut(ctx, data, []byte("2")); err != nil {
		t.Fatal(err)
	}
	err = g.GuardedPut(ctx, data, []byte("stale"))
	if !errors.Is(err, locks.ErrLockLost) {
		t.Fatalf("old holder's guarded put: %v, want an error matching ErrLockLost", err)
	}
	select {
	case <-a.Lost():
	default:
		t.Fatal("old holder's lease not lost")
	}
	if v, err := gb.GuardedGet(ctx, data); err != nil || string(v) != "2" {
		t.Fatalf("after the old holder's write: %q, %v; want 2", v, err)
	}
	// Now refused without a round trip, and reported as such.
	refused(t, "old holder's second guarded put", g.GuardedPut(ctx, data, []byte("stale")), a)

	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := gb.GuardedPut(ctx, data, []byte("3")); !errors.Is(err, locks.ErrNotHeld) {
		t.Fatalf("guarded put after release: %v, want ErrNotHeld", err)
	}
}
