package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/postgres"
)

// Locker.run("new-feed-checker", blocking: true) { |sequence| ... }: hold the
// lock while the function runs, renewed in the background; the token is the
// row's sequence.
func ExampleLocker() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, server.DSN()) // any PostgreSQL DSN
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	pool.Exec(ctx, "DROP TABLE IF EXISTS example_locks") // a fresh table: the first token is 1

	locker, err := postgres.New(ctx, pool, postgres.Config{Table: "example_locks"},
		locks.WithTTL(30*time.Second), locks.WithRenewEvery(10*time.Second))
	if err != nil {
		panic(err)
	}
	err = locks.Run(ctx, locker, "new-feed-checker", func(ctx context.Context, lease locks.Lease) error {
		// Only one process gets here at a time. Pass lease.Token() along
		// with every write so that the resource can refuse stale holders.
		fmt.Println("checking feeds, token", lease.Token())
		return nil
	})
	fmt.Println("err:", err)
	// Output:
	// checking feeds, token 1
	// err: <nil>
}

// Locker.run without blocking skips the block when another process holds
// the lock.
func ExampleLocker_TryAcquire() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, server.DSN())
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	pool.Exec(ctx, "DROP TABLE IF EXISTS example_try_locks")
	cfg := postgres.Config{Table: "example_try_locks"}
	server1, _ := postgres.New(ctx, pool, cfg, locks.WithOwner("server1"))
	server2, _ := postgres.New(ctx, pool, cfg, locks.WithOwner("server2"))

	lease, err := server1.TryAcquire(ctx, "new-feed-checker")
	fmt.Println("server1:", err)
	_, err = server2.TryAcquire(ctx, "new-feed-checker")
	fmt.Println("server2 skips:", errors.Is(err, locks.ErrNotAcquired))
	fmt.Println("release:", lease.Release(ctx))
	// Output:
	// server1: <nil>
	// server2 skips: true
	// release: <nil>
}

// Config.Clock decides whose clock judges expiry: the database's (Locker's
// behaviour, immune to client skew) or the client's injected locks.Clock.
func ExampleConfig() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, server.DSN())
	if err != nil {
		panic(err)
	}
	defer pool.Close()

	for _, clock := range []postgres.ClockSource{postgres.ClockDB, postgres.ClockClient} {
		cfg := postgres.Config{Table: "example_clock_locks_" + string(clock), Clock: clock}
		pool.Exec(ctx, "DROP TABLE IF EXISTS example_clock_locks_"+string(clock))
		honest, _ := postgres.New(ctx, pool, cfg)
		fastClock, _ := postgres.New(ctx, pool, cfg, locks.WithClock(skewedClock{offset: time.Hour}))

		if _, err := honest.TryAcquire(ctx, "k"); err != nil {
			panic(err)
		}
		_, err := fastClock.TryAcquire(ctx, "k")
		fmt.Printf("clock=%s: a client an hour ahead takes the held lock: %v\n", clock, err == nil)
	}
	// Output:
	// clock=db: a client an hour ahead takes the held lock: false
	// clock=client: a client an hour ahead takes the held lock: true
}

// An advisory lock lives as long as the connection opened for it; Renew
// checks that connection, and Release unlocks and closes it.
func ExampleNewAdvisory() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, server.DSN())
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	pool.Exec(ctx, "DROP SEQUENCE IF EXISTS example_tokens") // a fresh sequence: the first token is 1

	adv, err := postgres.NewAdvisory(ctx, server.DSN(), postgres.AdvisoryConfig{Sequence: "example_tokens"})
	if err != nil {
		panic(err)
	}
	lease, err := adv.Acquire(ctx, "nightly-report")
	if err != nil {
		panic(err)
	}
	fmt.Println("token", lease.Token())
	fmt.Println("renew:", lease.Renew(ctx))
	fmt.Println("release:", lease.Release(ctx))
	// Output:
	// token 1
	// renew: <nil>
	// release: <nil>
}

// A guarded write: the data lives in a table of the same database, and
// the write checks, in the same statement, that the lock row is still
// this lease's. A holder whose row was taken (paused past locked_until)
// gets ErrNotHeld instead of overwriting the new holder's data.
func ExampleLease_GuardedPut() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, server.DSN())
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	locker, err := postgres.New(ctx, pool, postgres.Config{DataTable: "example_data"})
	if err != nil {
		panic(err)
	}
	err = locks.Run(ctx, locker, "example-counter", func(ctx context.Context, lease locks.Lease) error {
		g := lease.(locks.Guarded)
		v, err := g.GuardedGet(ctx, "counter")
		if err != nil {
			return err
		}
		n := len(v) // read, modify ...
		// ... write, only while the lock is ours.
		if err := g.GuardedPut(ctx, "counter", append(v, '+')); errors.Is(err, locks.ErrNotHeld) {
			return err // the lock was taken meanwhile: nothing was written
		}
		fmt.Println("counter was", n)
		return err
	})
	fmt.Println("err:", err)
	pool.Exec(ctx, "DROP TABLE example_data")
	// Output:
	// counter was 0
	// err: <nil>
}

// On advisory locks the guarded write runs on the connection that holds
// the lock, checked against pg_locks in the same statement.
func ExampleAdvisoryLease_GuardedPut() {
	ctx := context.Background()
	locker, err := postgres.NewAdvisory(ctx, server.DSN(), postgres.AdvisoryConfig{DataTable: "example_advisory_data"})
	if err != nil {
		panic(err)
	}
	lease, err := locker.Acquire(ctx, "example-advisory")
	if err != nil {
		panic(err)
	}
	g := lease.(locks.Guarded)
	fmt.Println("put:", g.GuardedPut(ctx, "greeting", []byte("hello")))
	v, err := g.GuardedGet(ctx, "greeting")
	fmt.Printf("get: %s %v\n", v, err)
	fmt.Println("release:", lease.Release(ctx))
	err = g.GuardedPut(ctx, "greeting", []byte("too late"))
	fmt.Println("after release, not held:", errors.Is(err, locks.ErrNotHeld))
	// Output:
	// put: <nil>
	// get: hello <nil>
	// release: <nil>
	// after release, not held: true
}

// Locker.prune(5.minutes.ago): delete the rows whose lease ended before
// then. A deleted key's sequence starts again, so a later grant's token
// can be below a token granted before the prune.
func ExampleLocker_Prune() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, server.DSN())
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	pool.Exec(ctx, "DROP TABLE IF EXISTS example_prune_locks")
	locker, err := postgres.New(ctx, pool, postgres.Config{Table: "example_prune_locks"},
		locks.WithTTL(time.Second), locks.WithRenewEvery(100*time.Millisecond))
	if err != nil {
		panic(err)
	}
	for range 3 {
		lease, _ := locker.Acquire(ctx, "nightly-report")
		fmt.Println("token", lease.Token())
		lease.Release(ctx)
	}
	time.Sleep(1100 * time.Millisecond) // the last lease has run out
	n, err := locker.Prune(ctx, time.Now())
	fmt.Println("pruned:", n, err)
	lease, _ := locker.Acquire(ctx, "nightly-report")
	fmt.Println("token after the prune", lease.Token())
	lease.Release(ctx)
	// Output:
	// token 1
	// token 2
	// token 3
	// pruned: 1 <nil>
	// token after the prune 1
}

// Config.RenewErrors: RenewerDies is the gem's renewer thread, which dies
// at the first database error of a renewal; later renewals send nothing
// and the lease is not marked lost.
func ExampleRenewErrors() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, server.DSN())
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	locker, err := postgres.New(ctx, pool, postgres.Config{RenewErrors: postgres.RenewerDies})
	if err != nil {
		panic(err)
	}
	lease, err := locker.Acquire(ctx, "example-renewer")
	if err != nil {
		panic(err)
	}
	// A renewal that fails: here, one whose deadline has passed.
	late, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel()
	fmt.Println("renewal failed:", lease.Renew(late) != nil)
	err = lease.Renew(ctx)
	fmt.Println("renewer died:", errors.Is(err, postgres.ErrRenewerDied))
	fmt.Println("lost:", lease.Err())
	fmt.Println("release:", lease.Release(ctx))
	// Output:
	// renewal failed: true
	// renewer died: true
	// lost: <nil>
	// release: <nil>
}
