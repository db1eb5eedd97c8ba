package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/postgres"
)

// holderPool is a pool of one connection, named app in pg_stat_activity,
// that never pings before a statement: a terminated connection fails the
// next statement sent on it, as an idle connection of the gem's would.
func holderPool(t *testing.T, app string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(server.DSN())
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	cfg.ConnConfig.RuntimeParams["application_name"] = app
	cfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// backends are the server pids of app's connections.
func backends(t *testing.T, admin *pgxpool.Pool, app string) []int32 {
	t.Helper()
	rows, err := admin.Query(context.Background(), `SELECT pid FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid`, app)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var pids []int32
	for rows.Next() {
		var pid int32
		if err := rows.Scan(&pid); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return pids
}

// lockedUntil reads key's locked_until.
func lockedUntil(t *testing.T, pool *pgxpool.Pool, key string) time.Time {
	t.Helper()
	var until time.Time
	if err := pool.QueryRow(context.Background(), `SELECT locked_until FROM locks WHERE key = $1`, key).Scan(&until); err != nil {
		t.Fatal(err)
	}
	return until
}

// The holder's connection is terminated (pg_terminate_backend) while Run
// holds the lock, so that its next renewal fails with a database error.
// Under RenewRetry the following renewal, on a new connection, keeps the
// lease: another client cannot take the row for three TTLs, and Run
// releases cleanly. Under RenewerDies (the gem's renewer thread, which
// rescues nothing) the lease renews no more and sends nothing: another
// client takes the row once locked_until passes, while the first runs on
// with its context alive and Lost open, and learns only at Release.
func TestLockerRenewalDatabaseError(t *testing.T) {
	for _, mode := range []postgres.RenewErrors{postgres.RenewRetry, postgres.RenewerDies} {
		t.Run(string(mode), func(t *testing.T) {
			leakCheck(t)
			admin := newPool(t)
			key := testKey(t)
			app := fmt.Sprintf("holder-%d", time.Now().UnixNano())
			const ttl, renewEvery = 2 * time.Second, 200 * time.Millisecond
			a := newLocker(t, holderPool(t, app), "a", postgres.Config{RenewErrors: mode},
				locks.WithTTL(ttl), locks.WithRenewEvery(renewEvery))
			if got := a.Config().RenewErrors; got != mode {
				t.Fatalf("Config().RenewErrors = %q", got)
			}
			b := newLocker(t, admin, "b", postgres.Config{})
			ctx := ctxTimeout(t, 30*time.Second)

			var taken locks.Lease
			err := locks.Run(ctx, a, key, func(fctx context.Context, lease locks.Lease) error {
				pl := lease.(*postgres.Lease)
				// A renewal goes through first.
				before := lockedUntil(t, admin, key)
				deadline := time.Now().Add(5 * time.Second)
				for !lockedUntil(t, admin, key).After(before) {
					if time.Now().After(deadline) {
						return errors.New("no renewal within 5 s")
					}
					time.Sleep(50 * time.Millisecond)
				}
				old := backends(t, admin, app)
				if len(old) != 1 {
					return fmt.Errorf("holder has %d connections, want 1", len(old))
				}
				var ok bool
				if err := admin.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, old[0]).Scan(&ok); err != nil || !ok {
					return fmt.Errorf("pg_terminate_backend(%d): %v, %v", old[0], ok, err)
				}
				cut := time.Now()

				if mode == postgres.RenewRetry {
					// For three TTLs the row stays a's: renewals go on over
					// a new connection.
					for time.Since(cut) < 3*ttl {
						if _, err := b.TryAcquire(ctx, key); !errors.Is(err, locks.ErrNotAcquired) {
							return fmt.Errorf("b's TryAcquire %v after the terminate: %v, want ErrNotAcquired", time.Since(cut), err)
						}
						time.Sleep(100 * time.Millisecond)
					}
					if now := backends(t, admin, app); len(now) != 1 || now[0] == old[0] {
						return fmt.Errorf("holder's connections %v after the terminate of %d: want one new one", now, old[0])
					}
					if err := pl.RenewerDied(); err != nil {
						return fmt.Errorf("RenewerDied under RenewRetry: %v", err)
					}
					if fctx.Err() != nil || lease.Err() != nil {
						return fmt.Errorf("lease ended under RenewRetry: ctx %v, lease %v", fctx.Err(), lease.Err())
					}
					return nil
				}

				// RenewerDies: b gets the row once a's lease runs out.
				for {
					l, err := b.TryAcquire(ctx, key)
					if err == nil {
						taken = l
						break
					}
					if !errors.Is(err, locks.ErrNotAcquired) {
						return err
					}
					if time.Since(cut) > 3*ttl {
						return fmt.Errorf("b did not get the row within %v of the terminate", 3*ttl)
					}
					time.Sleep(50 * time.Millisecond)
				}
				if d := time.Since(cut); d < ttl-2*renewEvery {
					return fmt.Errorf("b got the row %v after the terminate, before a's lease could have run out", d)
				}
				if pl.RenewerDied() == nil {
					return errors.New("RenewerDied is nil after the renewer's database error")
				}
				if err := lease.Renew(ctx); !errors.Is(err, postgres.ErrRenewerDied) {
					return fmt.Errorf("Renew after the renewer died: %v, want ErrRenewerDied", err)
				}
				// The holder still believes: its context lives, Lost is open.
				time.Sleep(3 * renewEvery)
				select {
				case <-lease.Lost():
					return fmt.Errorf("Lost closed: %v", lease.Err())
				case <-fctx.Done():
					return errors.New("fn's context ended while the holder believed")
				default:
				}
				// Nothing was sent since the failed renewal: no connection
				// came back.
				if now := backends(t, admin, app); len(now) != 0 {
					return fmt.Errorf("holder's connections %v after its renewer died, want none", now)
				}
				return nil
			})
			if mode == postgres.RenewRetry {
				if err != nil {
					t.Fatalf("Run under RenewRetry: %v", err)
				}
				if by := holderOf(t, admin, "locks", key); by != nil {
					t.Fatalf("locked_by = %q after Run released", *by)
				}
				return
			}
			var fnErr *locks.FnError
			if errors.As(err, &fnErr) {
				t.Fatal(err)
			}
			if !errors.Is(err, locks.ErrLockLost) {
				t.Fatalf("Run under RenewerDies: %v, want ErrLockLost from the release", err)
			}
			if taken == nil {
				t.Fatal("b never held the row")
			}
			if by := holderOf(t, admin, "locks", key); by == nil || *by != taken.(*postgres.Lease).LockedBy() {
				t.Fatalf("locked_by = %v after a's release, want b's", by)
			}
			if taken.Token() <= 1 {
				t.Errorf("b's token %v", taken.Token())
			}
		})
	}
}

// A renewal the caller cancels does not kill the renewer: only database
// errors and deadlines do.
func TestLockerRenewerSurvivesCancel(t *testing.T) {
	pool := newPool(t)
	key := testKey(t)
	l := newLocker(t, pool, "a", postgres.Config{RenewErrors: postgres.RenewerDies})
	lease, err := l.Acquire(ctxTimeout(t, 5*time.Second), key)
	if err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := lease.Renew(cancelled); err == nil {
		t.Fatal("Renew with a cancelled context succeeded")
	}
	if err := lease.(*postgres.Lease).RenewerDied(); err != nil {
		t.Fatalf("a cancelled renewal killed the renewer: %v", err)
	}
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if err := lease.Renew(expired); err == nil {
		t.Fatal("Renew past its deadline succeeded")
	}
	if lease.(*postgres.Lease).RenewerDied() == nil {
		t.Fatal("a renewal past its deadline did not kill the renewer")
	}
	before := lockedUntil(t, pool, key)
	if err := lease.Renew(ctxTimeout(t, 5*time.Second)); !errors.Is(err, postgres.ErrRenewerDied) {
		t.Fatalf("Renew after the renewer died: %v", err)
	}
	if after := lockedUntil(t, pool, key); !after.Equal(before) {
		t.Fatalf("locked_until moved from %v to %v after the renewer died", before, after)
	}
	if err := lease.Release(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatalf("Release of a row still ours after the renewer died: %v", err)
	}
}

func TestLockerRenewErrorsValidated(t *testing.T) {
	if _, err := postgres.New(context.Background(), newPool(t), postgres.Config{RenewErrors: "sometimes"}); err == nil {
		t.Fatal("unknown RenewErrors accepted")
	}
	l, err := postgres.New(context.Background(), newPool(t), postgres.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Config().RenewErrors; got != postgres.RenewRetry {
		t.Fatalf("default RenewErrors = %q, want %q", got, postgres.RenewRetry)
	}
}
