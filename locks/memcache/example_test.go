package memcache_test

import (
	"context"
	"fmt"
	"log"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/memcache"
)

// Seed 004's mutex_lock: run a critical section under a lock
// held in memcached, and fence the work with the lease's token.
func Example() {
	servers, err := cluster.StartMemcached(cluster.MemcachedConfig{Servers: 2})
	if err != nil {
		log.Fatal(err)
	}
	defer servers.Close()

	l, err := memcache.New(memcache.Config{Servers: servers.Addrs()})
	if err != nil {
		log.Fatal(err)
	}
	err = locks.Run(context.Background(), l, "WidgetMaker Mutex ID", func(ctx context.Context, lease locks.Lease) error {
		fmt.Println("making widgets with token", lease.Token())
		return nil
	})
	fmt.Println("err:", err)
	// Output:
	// making widgets with token 1
	// err: <nil>
}

// Seed 004's distinct list: an item goes in once.
func ExampleList() {
	servers, err := cluster.StartMemcached(cluster.MemcachedConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer servers.Close()
	l, err := memcache.New(memcache.Config{Servers: servers.Addrs()})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	list := l.List("results", 0)
	var acked []string
	for _, item := range []string{"foo", "bar", "foo"} {
		n, inserted, err := list.Insert(ctx, item)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(item, n, inserted)
		if inserted {
			acked = append(acked, item)
		}
	}
	got, err := list.Contents(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(got.Items, memcache.CheckList(acked, got).OK())
	// Output:
	// foo 1 true
	// bar 2 true
	// foo 0 false
	// [foo bar] true
}
