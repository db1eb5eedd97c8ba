package mysql_test

import (
	"context"
	"fmt"
	"log"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/mysql"
)

// Seed 004's recommendation: a critical section under GET_LOCK on a
// MariaDB server, fenced with the lease's token.
func Example() {
	srv, err := cluster.StartMariaDB(cluster.MariaDBConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	ctx := context.Background()
	l, err := mysql.New(ctx, srv.DSN(), mysql.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	for range 2 {
		err = locks.Run(ctx, l, "WidgetMaker Mutex ID", func(ctx context.Context, lease locks.Lease) error {
			fmt.Println("making widgets with token", lease.Token())
			return nil
		})
		fmt.Println("err:", err)
	}
	// Output:
	// making widgets with token 1
	// err: <nil>
	// making widgets with token 2
	// err: <nil>
}
