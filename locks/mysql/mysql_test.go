package mysql_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/mysql"
)

// One holder at a time; the token is the name's counter, one up at every
// grant; IS_USED_LOCK names the lease's connection; release frees it.
func TestTryAcquireTokenRelease(t *testing.T) {
	ctx := ctxTimeout(t, 20*time.Second)
	a, b := newLocker(t, mysql.Config{}), newLocker(t, mysql.Config{})
	key := testKey(t)
	la, err := a.TryAcquire(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if la.Token() != 1 {
		t.Errorf("first token %d, want 1", la.Token())
	}
	id := la.(*mysql.Lease).ConnectionID()
	if got := scalar(t, "SELECT IS_USED_LOCK(?)", key); !got.Valid || got.Int64 != id {
		t.Errorf("IS_USED_LOCK = %v, want the lease's connection %d", got, id)
	}
	if _, err := b.TryAcquire(ctx, key); !errors.Is(err, locks.ErrNotAcquired) {
		t.Fatalf("second try: %v, want ErrNotAcquired", err)
	}
	if err := la.Renew(ctx); err != nil {
		t.Fatalf("renew: %v", err)
	}
	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if got := scalar(t, "SELECT IS_USED_LOCK(?)", key); got.Valid {
		t.Errorf("IS_USED_LOCK after release = %v, want NULL", got)
	}
	if err := la.Release(ctx); err != nil {
		t.Errorf("second release: %v", err)
	}
	lb, err := b.TryAcquire(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if lb.Token() != 2 {
		t.Errorf("second token %d, want 2", lb.Token())
	}
	if err := lb.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// Acquire waits on the server and is granted when the holder releases.
func TestAcquireWaitsOnServer(t *testing.T) {
	ctx := ctxTimeout(t, 20*time.Second)
	a, b := newLocker(t, mysql.Config{}), newLocker(t, mysql.Config{})
	key := testKey(t)
	la, err := a.Acquire(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan locks.Lease, 1)
	errc := make(chan error, 1)
	go func() {
		l, err := b.Acquire(ctx, key)
		errc <- err
		got <- l
	}()
	select {
	case err := <-errc:
		t.Fatalf("second acquire returned while held: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	released := time.Now()
	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	lb := <-got
	if d := time.Since(released); d > 2*time.Second {
		t.Errorf("granted %v after the release", d)
	}
	if lb.Token() <= la.Token() {
		t.Errorf("tokens %d then %d", la.Token(), lb.Token())
	}
	_ = lb.Release(ctx)
}

// WaitTimeout is GET_LOCK's timeout: ErrNotAcquired after it. A caller
// that gives up ends its wait on the server (the connection is hung up),
// so the lock is not granted to a waiter that is gone.
func TestWaitTimeoutAndCancel(t *testing.T) {
	ctx := ctxTimeout(t, 20*time.Second)
	a := newLocker(t, mysql.Config{})
	key := testKey(t)
	la, err := a.Acquire(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	b := newLocker(t, mysql.Config{}, locks.WithWaitTimeout(400*time.Millisecond))
	start := time.Now()
	if _, err := b.Acquire(ctx, key); !errors.Is(err, locks.ErrNotAcquired) {
		t.Fatalf("acquire: %v, want ErrNotAcquired", err)
	}
	if d := time.Since(start); d < 350*time.Millisecond || d > 3*time.Second {
		t.Errorf("gave up after %v, want about 400ms", d)
	}

	c := newLocker(t, mysql.Config{})
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	var cerr error
	go func() {
		defer wg.Done()
		_, cerr = c.Acquire(cctx, key)
	}()
	time.Sleep(200 * time.Millisecond)
	cancel()
	wg.Wait()
	if !errors.Is(cerr, context.Canceled) {
		t.Fatalf("cancelled acquire: %v", cerr)
	}
	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if got := scalar(t, "SELECT IS_USED_LOCK(?)", key); got.Valid {
		t.Errorf("after the release the lock is held by connection %d: the cancelled waiter's wait lived on", got.Int64)
	}
}

// The server ends the holder's connection (KILL): the lock is free as soon
// as the killed thread notices (KILL returns before that: within
// milliseconds, longer under load), and the holder learns it at its next
// Renew.
func TestKilledConnectionLosesLease(t *testing.T) {
	ctx := ctxTimeout(t, 20*time.Second)
	a, b := newLocker(t, mysql.Config{}), newLocker(t, mysql.Config{})
	key := testKey(t)
	la, err := a.TryAcquire(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.DB().ExecContext(ctx, "KILL CONNECTION ?", la.(*mysql.Lease).ConnectionID()); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	var lb locks.Lease
	for {
		if lb, err = b.TryAcquire(ctx, key); err == nil {
			break
		}
		if !errors.Is(err, locks.ErrNotAcquired) || time.Since(killed) > 2*time.Second {
			t.Fatalf("lock not free %v after the holder's connection was killed: %v", time.Since(killed).Round(time.Millisecond), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-la.Lost():
		t.Fatal("lost before any renewal")
	default:
	}
	mustLost(t, la.Renew(ctx), "renew after the kill")
	<-la.Lost()
	mustLost(t, la.Release(ctx), "release after the loss")
	if lb.Token() <= la.Token() {
		t.Errorf("tokens %d then %d", la.Token(), lb.Token())
	}
	_ = lb.Release(ctx)
}

// A server restart drops every connection and every lock; the counter
// rows survive, so tokens go on increasing.
func TestServerRestart(t *testing.T) {
	ctx := ctxTimeout(t, 60*time.Second)
	a := newLocker(t, mysql.Config{})
	key := testKey(t)
	la, err := a.TryAcquire(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := server.Restart(); err != nil {
		t.Fatal(err)
	}
	mustLost(t, la.Renew(ctx), "renew after the restart")
	lb, err := a.TryAcquire(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if lb.Token() <= la.Token() {
		t.Errorf("tokens %d then %d across the restart", la.Token(), lb.Token())
	}
	_ = lb.Release(ctx)
}

// The pitfall: the lock taken on the pool goes with the pool's
// connection, the pool's ping says all is well, and only the release sees
// it.
func TestPooledPitfall(t *testing.T) {
	ctx := ctxTimeout(t, 20*time.Second)
	p := newLocker(t, mysql.Config{Pooled: true})
	b := newLocker(t, mysql.Config{})
	key := testKey(t)
	lp, err := p.TryAcquire(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var lb locks.Lease
	deadline := time.Now().Add(2 * time.Second)
	for lb == nil {
		lb, err = b.TryAcquire(ctx, key)
		if err != nil && (!errors.Is(err, locks.ErrNotAcquired) || time.Now().After(deadline)) {
			t.Fatalf("the pooled holder's lock did not go: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := lp.Renew(ctx); err != nil {
		t.Fatalf("pooled renew: %v (the pitfall's ping should not see the loss)", err)
	}
	mustLost(t, lp.Release(ctx), "pooled release")
	_ = lb.Release(ctx)
}

func TestBadTokenTable(t *testing.T) {
	if _, err := mysql.New(context.Background(), server.DSN(), mysql.Config{TokenTable: "x; DROP"}); err == nil {
		t.Fatal("a token table that is no identifier was accepted")
	}
}
