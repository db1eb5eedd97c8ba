package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/etcd"
)

// endpoints are the client URLs of a running etcd cluster (here the one
// TestMain started with cluster.StartEtcd).
func endpoints() []string { return shared.Endpoints() }

// Run holds the lock while the function runs, renews it, and cancels the
// function's context if the lock is lost. Writes to a protected resource
// carry the lease's fencing token.
func Example() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()

	locker, err := etcd.New(cli, locks.WithTTL(5*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	err = locks.Run(ctx, locker, "example/widgets", func(ctx context.Context, lease locks.Lease) error {
		fmt.Println("holding", lease.Key(), "token > 0:", lease.Token() > 0)
		return nil
	})
	fmt.Println("err:", err)
	// Output:
	// holding example/widgets token > 0: true
	// err: <nil>
}

// TryAcquire does not wait: it reports ErrNotAcquired while somebody else
// holds the lock.
func ExampleLocker_TryAcquire() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	locker, err := etcd.New(cli, locks.WithTTL(5*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	first, err := locker.TryAcquire(ctx, "example/try")
	if err != nil {
		log.Fatal(err)
	}
	_, err = locker.TryAcquire(ctx, "example/try")
	fmt.Println("second attempt not acquired:", errors.Is(err, locks.ErrNotAcquired))

	if err := first.Release(ctx); err != nil {
		log.Fatal(err)
	}
	second, err := locker.TryAcquire(ctx, "example/try")
	fmt.Println("after release:", err, "token increased:", second.Token() > first.Token())
	_ = second.Release(ctx)
	// Output:
	// second attempt not acquired: true
	// after release: <nil> token increased: true
}

// IsOwner guards a write inside etcd itself: the transaction applies only
// while this grant still holds the lock.
func ExampleLease_IsOwner() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	locker, err := etcd.New(cli, locks.WithTTL(5*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	lease, err := locker.Acquire(ctx, "example/guarded")
	if err != nil {
		log.Fatal(err)
	}
	defer lease.Release(ctx)

	resp, err := cli.Txn(ctx).
		If(lease.(*etcd.Lease).IsOwner()).
		Then(clientv3.OpPut("/example/config", "v2")).
		Commit()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("written:", resp.Succeeded)
	// Output: written: true
}

// A guarded write: etcd's transaction makes the put conditional on the
// lock key, If(IsOwner()), in one step. A holder whose lease expired while
// it was paused gets ErrNotHeld instead of overwriting the new holder's
// data.
func ExampleLease_GuardedPut() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	locker, err := etcd.New(cli, locks.WithTTL(5*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	err = locks.Run(ctx, locker, "example/config", func(ctx context.Context, lease locks.Lease) error {
		g := lease.(locks.Guarded)
		if err := g.GuardedPut(ctx, "/example/config/value", []byte("v2")); err != nil {
			return err // errors.Is(err, locks.ErrNotHeld): nothing was written
		}
		v, err := g.GuardedGet(ctx, "/example/config/value")
		fmt.Printf("stored %s\n", v)
		return err
	})
	fmt.Println("err:", err)
	// Output:
	// stored v2
	// err: <nil>
}
