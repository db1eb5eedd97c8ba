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
