package consul_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/consul"
)

// Consul::Mutex#synchronize: only one instance of the block runs at any
// given moment; a lost lock cancels it and comes back as ErrLockLost.
func Example() {
	servers, err := cluster.StartConsul(cluster.ConsulConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer servers.Close()

	l, err := consul.New(consul.Config{Address: servers.URLs()[0], Value: []byte("worker-1")})
	if err != nil {
		log.Fatal(err)
	}
	err = locks.Run(context.Background(), l, "service/deploy", func(ctx context.Context, lease locks.Lease) error {
		fmt.Println("deploying, token > 0:", lease.Token() > 0)
		return nil
	})
	switch {
	case errors.Is(err, locks.ErrLockLost):
		fmt.Println("lost the lock:", err)
	case err != nil:
		fmt.Println("failed:", err)
	default:
		fmt.Println("done")
	}
	// Output:
	// deploying, token > 0: true
	// done
}

// A guarded write: a KV transaction that checks that the lock key is
// still held by the lease's session and sets the data key, in one Raft
// entry. A holder whose session was invalidated gets ErrNotHeld instead
// of overwriting the new holder's data.
func ExampleLease_GuardedPut() {
	servers, err := cluster.StartConsul(cluster.ConsulConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer servers.Close()
	l, err := consul.New(consul.Config{Address: servers.URLs()[0]})
	if err != nil {
		log.Fatal(err)
	}
	err = locks.Run(context.Background(), l, "service/config-lock", func(ctx context.Context, lease locks.Lease) error {
		g := lease.(locks.Guarded)
		if err := g.GuardedPut(ctx, "service/config", []byte("v2")); err != nil {
			return err // errors.Is(err, locks.ErrNotHeld): nothing was written
		}
		v, err := g.GuardedGet(ctx, "service/config")
		fmt.Printf("stored %s\n", v)
		return err
	})
	fmt.Println("err:", err)
	// Output:
	// stored v2
	// err: <nil>
}
