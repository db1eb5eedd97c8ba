package megamutex_test

import (
	"context"
	"fmt"
	"log"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/megamutex"
)

// MegaMutex's with_distributed_mutex: a critical section under a lock
// held in memcached as mega_mutex:<key>. There is no fencing token.
func Example() {
	servers, err := cluster.StartMemcached(cluster.MemcachedConfig{Servers: 2})
	if err != nil {
		log.Fatal(err)
	}
	defer servers.Close()

	l, err := megamutex.New(megamutex.Config{Servers: servers.Addrs()})
	if err != nil {
		log.Fatal(err)
	}
	err = locks.Run(context.Background(), l, "WidgetMaker", func(ctx context.Context, lease locks.Lease) error {
		fmt.Println("making widgets; token", lease.Token(), "has token:", lease.(*megamutex.Lease).HasToken())
		return nil
	})
	fmt.Println("err:", err)
	// Output:
	// making widgets; token 0 has token: false
	// err: <nil>
}
