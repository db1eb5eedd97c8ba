package behaviour

import (
	"errors"
	"fmt"
	"time"
)

// Postgres is one PostgreSQL 15 server as locks/postgres uses it: Locker's
// lease-table statements (read as locks/postgres/table.go issues them),
// advisory locks held by client processes of their own (as
// locks/postgres.Advisory holds them, one connection per lease), and the
// faults the catalogue applies to them.
type Postgres interface {
	Clock
	// Get is Locker's acquire: the ensure INSERT of key's row, then the
	// UPDATE that takes the row when it is free, already id's or expired,
	// with clock ("db": clock_timestamp(); "client": the client's clock,
	// sent as parameters) and locked_until = now + ttl. ok false is no row
	// updated (held by another owner, unexpired). seq is the row's
	// sequence after the take (the token), until its locked_until.
	Get(clock, key, id string, ttl time.Duration) (seq int64, until time.Time, ok bool, err error)
	// Renew is Locker's renew: locked_until = now + ttl where locked_by is
	// still id; ok false is no row updated.
	Renew(clock, key, id string, ttl time.Duration) (until time.Time, ok bool, err error)
	// Release is Locker's release: locked_by = NULL where it is id; false
	// is no row updated.
	Release(key, id string) (bool, error)
	// ServerNow is the server's clock_timestamp().
	ServerNow() (time.Time, error)
	// StepServerClock moves the server's clock by d (libfaketime on the
	// real server, as harness/deploy.go applies it), on top of earlier
	// steps.
	StepServerClock(d time.Duration) error
	// StepClientClock moves the clock that clock "client" reads by d.
	StepClientClock(d time.Duration) error
	// Restart stops the server (a fast shutdown) and starts it again on
	// the same data.
	Restart() error

	// Hold starts a client process that takes key's advisory lock as
	// Advisory.Acquire does (a connection of its own, pg_advisory_lock,
	// then nextval for the token) and returns once the lock is granted.
	// The client reaches the server through a link of its own that can be
	// cut (a toxiproxy link of package faults, as harness/ gives each
	// client), or directly if direct is set.
	Hold(key string, direct bool) (Holder, error)
	// Free reports whether key's advisory lock is free: another session's
	// pg_try_advisory_lock, let go at once if it was granted.
	Free(key string) (bool, error)
}

// Holder is one client process holding an advisory lock.
type Holder interface {
	// Token is the token taken at the grant.
	Token() int64
	// Renew is AdvisoryLease.Renew (SELECT 1 on the lock's connection)
	// bounded by timeout, as locks.Run bounds a renewal by renew_every.
	Renew(timeout time.Duration) (RenewResult, error)
	// Release is AdvisoryLease.Release: pg_advisory_unlock, then the
	// connection is closed.
	Release() (RenewResult, error)
	// Cut drops everything on the holder's link, both ways, as
	// faults.Network.Cut does; Heal ends the cut as faults.Network.Heal
	// does.
	Cut() error
	Heal() error
	// Pause stops the client process (SIGSTOP); Resume continues it.
	Pause() error
	Resume() error
	// Kill kills the client process (SIGKILL).
	Kill() error
}

// RenewResult is what a renewal or release of an advisory lease returned.
type RenewResult int

// The outcomes of an advisory lease's renewal or release.
const (
	LeaseOK     RenewResult = iota // nil
	LeaseLost                      // an error matching locks.ErrLockLost: the connection is gone
	LeaseFailed                    // another error (a timeout on a live connection)
)

func (r RenewResult) String() string {
	return [...]string{"ok", "lost", "failed"}[r]
}

// PostgresCase is one behaviour of PostgreSQL that a verdict can depend
// on.
type PostgresCase struct {
	Name string
	// Alone is set for a case that changes the whole server (a clock
	// step, a restart): it needs a server of its own. The others may share
	// one, each on keys of its own.
	Alone bool
	// Run drives a server (no clock step, nothing held on the case's
	// keys) and returns what differs from the expected outcome.
	Run func(p Postgres) error
}

// PostgresCases is the table both the real server and the model run: the
// lease table's cases once per clock source, then the advisory lock's.
var PostgresCases = append(append(tableCases("db"), tableCases("client")...), advisoryCases...)

// keepaliveGiveUp is when the server's TCP keepalive, as harness/deploy.go
// configures it (tcp_keepalives_idle 2 s, then 3 probes 1 s apart), gives
// up on a peer that does not answer, with a margin.
const keepaliveGiveUp = 2*time.Second + 3*time.Second + 3*time.Second

// pgxCloseAfter is how long pgx (pgconn.asyncClose) waits, after a query
// it gave up on, before it closes the socket: the deadline of the cancel
// request it sends first.
const pgxCloseAfter = 15 * time.Second

func tableCases(clock string) []PostgresCase {
	in := " (clock: " + clock + ")"
	return []PostgresCase{
		{"lease table" + in + ": taken when free, refused while held, taken once expired", false, func(p Postgres) error {
			s1, _, ok, err := p.Get(clock, clock+"-t1", "A", 2*time.Second)
			if err != nil || !ok {
				return fmt.Errorf("get of a free row: %v, %v", ok, err)
			}
			if _, _, ok, err := p.Get(clock, clock+"-t1", "B", 2*time.Second); err != nil || ok {
				return fmt.Errorf("get of a row held by another: taken %v, %v; want refused", ok, err)
			}
			p.Sleep(1500 * time.Millisecond)
			if _, _, ok, err := p.Get(clock, clock+"-t1", "B", 2*time.Second); err != nil || ok {
				return fmt.Errorf("get 1.5 s into a 2 s lease: taken %v, %v; want refused", ok, err)
			}
			// Taken by the first get after locked_until.
			var s2 int64
			took, ok, err := pollUntil(p, 20*time.Millisecond, 2*time.Second, func() (bool, error) {
				var ok bool
				var err error
				s2, _, ok, err = p.Get(clock, clock+"-t1", "B", 2*time.Second)
				return ok, err
			})
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("a 2 s lease still held %v after 1.5 s", took)
			}
			if err := within("the lease expired", 1500*time.Millisecond+took, 2*time.Second-50*time.Millisecond, 2*time.Second+150*time.Millisecond); err != nil {
				return err
			}
			if s2 <= s1 {
				return fmt.Errorf("sequence %d after %d: want strictly increasing", s2, s1)
			}
			return nil
		}},
		{"lease table" + in + ": the owner's renew extends locked_until, another's updates nothing", false, func(p Postgres) error {
			_, u1, ok, err := p.Get(clock, clock+"-t2", "A", 2*time.Second)
			if err != nil || !ok {
				return fmt.Errorf("get: %v, %v", ok, err)
			}
			p.Sleep(time.Second)
			if _, ok, err := p.Renew(clock, clock+"-t2", "B", 2*time.Second); err != nil || ok {
				return fmt.Errorf("renew by a non-owner: updated %v, %v; want nothing", ok, err)
			}
			u2, ok, err := p.Renew(clock, clock+"-t2", "A", 2*time.Second)
			if err != nil || !ok {
				return fmt.Errorf("renew by the owner: %v, %v", ok, err)
			}
			if err := within("the renew moved locked_until", u2.Sub(u1), time.Second-50*time.Millisecond, time.Second+150*time.Millisecond); err != nil {
				return err
			}
			// 2.5 s after the get, 1.5 s after the renew: still held.
			p.Sleep(1500 * time.Millisecond)
			if _, _, ok, err := p.Get(clock, clock+"-t2", "B", 2*time.Second); err != nil || ok {
				return fmt.Errorf("get 1.5 s after a renew of a 2 s lease: taken %v, %v; want refused", ok, err)
			}
			// A renew past expiry still succeeds while nobody took the row.
			p.Sleep(time.Second)
			if _, ok, err := p.Renew(clock, clock+"-t2", "A", 2*time.Second); err != nil || !ok {
				return fmt.Errorf("renew of an expired row nobody took: %v, %v; want updated", ok, err)
			}
			return nil
		}},
		{"lease table" + in + ": release by the owner frees, by another does nothing; sequence up at every grant", false, func(p Postgres) error {
			s1, _, ok, err := p.Get(clock, clock+"-t3", "A", 10*time.Second)
			if err != nil || !ok {
				return fmt.Errorf("get: %v, %v", ok, err)
			}
			if ok, err := p.Release(clock+"-t3", "B"); err != nil || ok {
				return fmt.Errorf("release by a non-owner: updated %v, %v; want nothing", ok, err)
			}
			if _, _, ok, err := p.Get(clock, clock+"-t3", "B", 10*time.Second); err != nil || ok {
				return fmt.Errorf("get after another's release: taken %v, %v; want refused", ok, err)
			}
			if ok, err := p.Release(clock+"-t3", "A"); err != nil || !ok {
				return fmt.Errorf("release by the owner: %v, %v", ok, err)
			}
			if ok, err := p.Release(clock+"-t3", "A"); err != nil || ok {
				return fmt.Errorf("second release: updated %v, %v; want nothing", ok, err)
			}
			s2, _, ok, err := p.Get(clock, clock+"-t3", "B", 10*time.Second)
			if err != nil || !ok {
				return fmt.Errorf("get after the release: %v, %v", ok, err)
			}
			// The owner taking its own row again is a grant too.
			s3, _, ok, err := p.Get(clock, clock+"-t3", "B", 10*time.Second)
			if err != nil || !ok {
				return fmt.Errorf("get by the holder: %v, %v", ok, err)
			}
			if !(s1 < s2 && s2 < s3) {
				return fmt.Errorf("sequence %d, %d, %d: want strictly increasing", s1, s2, s3)
			}
			return nil
		}},
		{"lease table" + in + ": a server clock step", true, func(p Postgres) error {
			if _, _, ok, err := p.Get(clock, clock+"-t4", "A", 10*time.Second); err != nil || !ok {
				return fmt.Errorf("get: %v, %v", ok, err)
			}
			p.Sleep(200 * time.Millisecond)
			if err := p.StepServerClock(30 * time.Second); err != nil {
				return err
			}
			took, taken, err := pollUntil(p, 20*time.Millisecond, time.Second, func() (bool, error) {
				_, _, ok, err := p.Get(clock, clock+"-t4", "B", 10*time.Second)
				return ok, err
			})
			if err != nil {
				return err
			}
			if clock == "client" {
				// The server's clock decides nothing.
				if taken {
					return fmt.Errorf("a 10 s lease taken %v after a +30 s server clock step; want held (clock: client)", took)
				}
				return nil
			}
			if !taken {
				return fmt.Errorf("a 10 s lease still held %v after a +30 s server clock step", took)
			}
			// clock_timestamp() reads the clock at every call.
			return within("the clock step freed the row", took, 0, 150*time.Millisecond)
		}},
		{"lease table" + in + ": a client clock running ahead", false, func(p Postgres) error {
			if _, _, ok, err := p.Get(clock, clock+"-t5", "A", 10*time.Second); err != nil || !ok {
				return fmt.Errorf("get: %v, %v", ok, err)
			}
			if err := p.StepClientClock(30 * time.Second); err != nil {
				return err
			}
			_, _, ok, err := p.Get(clock, clock+"-t5", "B", 10*time.Second)
			if err != nil {
				return err
			}
			if clock == "db" && ok {
				return errors.New("a 10 s lease taken by a client whose clock runs 30 s ahead; want held (clock: db)")
			}
			if clock == "client" && !ok {
				return errors.New("a 10 s lease held against a client whose clock runs 30 s ahead; want taken (clock: client)")
			}
			return nil
		}},
		{"lease table" + in + ": a restart keeps the rows and the sequence", true, func(p Postgres) error {
			s1, _, ok, err := p.Get(clock, clock+"-t6", "A", 30*time.Second)
			if err != nil || !ok {
				return fmt.Errorf("get: %v, %v", ok, err)
			}
			if err := p.Restart(); err != nil {
				return err
			}
			if _, _, ok, err := p.Get(clock, clock+"-t6", "B", 30*time.Second); err != nil || ok {
				return fmt.Errorf("get after a restart: taken %v, %v; want refused (the row survives)", ok, err)
			}
			if ok, err := p.Release(clock+"-t6", "A"); err != nil || !ok {
				return fmt.Errorf("release by the owner after a restart: %v, %v", ok, err)
			}
			s2, _, ok, err := p.Get(clock, clock+"-t6", "B", 30*time.Second)
			if err != nil || !ok {
				return fmt.Errorf("get after the release: %v, %v", ok, err)
			}
			if s2 <= s1 {
				return fmt.Errorf("sequence %d after a restart, %d before: want strictly increasing", s2, s1)
			}
			return nil
		}},
	}
}

var advisoryCases = []PostgresCase{
	{"clock_timestamp() shows a server clock step at once", true, func(p Postgres) error {
		for i := 0; i < 3; i++ {
			before, err := p.ServerNow()
			if err != nil {
				return err
			}
			if err := p.StepServerClock(30 * time.Second); err != nil {
				return err
			}
			took, jumped, err := pollUntil(p, 10*time.Millisecond, time.Second, func() (bool, error) {
				now, err := p.ServerNow()
				return now.Sub(before) > 29*time.Second, err
			})
			if err != nil {
				return err
			}
			if !jumped {
				return fmt.Errorf("clock_timestamp() had not jumped %v after a +30 s step", took)
			}
			if err := within("clock_timestamp() jumped", took, 0, 150*time.Millisecond); err != nil {
				return err
			}
			p.Sleep(time.Duration(150+211*i) * time.Millisecond)
		}
		return nil
	}},
	{"advisory: held until released, one holder at a time; tokens increase", false, func(p Postgres) error {
		h1, err := p.Hold("a1", false)
		if err != nil {
			return err
		}
		if free, err := p.Free("a1"); err != nil || free {
			return fmt.Errorf("a held advisory lock: free %v, %v", free, err)
		}
		if r, err := h1.Renew(time.Second); err != nil || r != LeaseOK {
			return fmt.Errorf("renew of a held lock: %v, %v", r, err)
		}
		if r, err := h1.Release(); err != nil || r != LeaseOK {
			return fmt.Errorf("release: %v, %v", r, err)
		}
		if free, err := p.Free("a1"); err != nil || !free {
			return fmt.Errorf("after the release: free %v, %v", free, err)
		}
		h2, err := p.Hold("a1", false)
		if err != nil {
			return err
		}
		if h2.Token() <= h1.Token() {
			return fmt.Errorf("token %d after %d: want strictly increasing", h2.Token(), h1.Token())
		}
		_, err = h2.Release()
		return err
	}},
	{"advisory: a killed client's lock goes at once", false, func(p Postgres) error {
		h, err := p.Hold("a2", false)
		if err != nil {
			return err
		}
		if err := h.Kill(); err != nil {
			return err
		}
		return freedWithin(p, "a2", "after the client was killed", 300*time.Millisecond)
	}},
	{"advisory: a paused client keeps its lock (its kernel answers keepalives)", false, func(p Postgres) error {
		// Connected directly: the server's keepalive probes reach the
		// paused client's own socket.
		h, err := p.Hold("a3", true)
		if err != nil {
			return err
		}
		if err := h.Pause(); err != nil {
			return err
		}
		p.Sleep(keepaliveGiveUp)
		free, err := p.Free("a3")
		if err != nil {
			return err
		}
		if err := h.Resume(); err != nil {
			return err
		}
		if free {
			return fmt.Errorf("a paused client's lock was freed within %v", keepaliveGiveUp)
		}
		if r, err := h.Renew(time.Second); err != nil || r != LeaseOK {
			return fmt.Errorf("renew after the resume: %v, %v", r, err)
		}
		_, err = h.Release()
		return err
	}},
	{"advisory: a cut holder keeps its lock while cut, whatever the keepalive; the heal frees it", false, func(p Postgres) error {
		// The server's peer is the proxy, which answers keepalives: the
		// lock outlives tcp_keepalives_*. Heal resets the cut link's
		// connections, and the server frees the lock then.
		h, err := p.Hold("a4", false)
		if err != nil {
			return err
		}
		if err := h.Cut(); err != nil {
			return err
		}
		p.Sleep(keepaliveGiveUp)
		if free, err := p.Free("a4"); err != nil || free {
			return fmt.Errorf("a cut holder's lock %v into the cut: free %v, %v; want held", keepaliveGiveUp, free, err)
		}
		if err := h.Heal(); err != nil {
			return err
		}
		if err := freedWithin(p, "a4", "after the heal", 300*time.Millisecond); err != nil {
			return err
		}
		if r, err := h.Renew(time.Second); err != nil || r != LeaseLost {
			return fmt.Errorf("renew after the heal: %v, %v; want lost (the connection was reset)", r, err)
		}
		return nil
	}},
	{"advisory: a cut holder's renewal times out: lost at once, the lock freed when pgx closes the socket 15 s later", false, func(p Postgres) error {
		h, err := p.Hold("a5", false)
		if err != nil {
			return err
		}
		if err := h.Cut(); err != nil {
			return err
		}
		p.Sleep(200 * time.Millisecond)
		start := p.Elapsed()
		r, err := h.Renew(time.Second)
		if err != nil {
			return err
		}
		if err := within("the renewal returned", p.Elapsed()-start, time.Second-50*time.Millisecond, time.Second+300*time.Millisecond); err != nil {
			return err
		}
		if r != LeaseLost {
			return fmt.Errorf("renewal timed out in a cut: %v; want lost (pgx closes the connection)", r)
		}
		// pgx's asyncClose first sends a cancel request, on a new
		// connection through the same cut link, and waits up to 15 s for
		// it; only then does it close the socket. The close reaches the
		// proxy, which closes the server's side.
		took, free, err := pollUntil(p, 50*time.Millisecond, 17*time.Second, func() (bool, error) {
			return p.Free("a5")
		})
		if err != nil {
			return err
		}
		if !free {
			return fmt.Errorf("advisory lock still held %v after the renewal timed out", took)
		}
		return within("the advisory lock freed after the renewal timed out", took, pgxCloseAfter-150*time.Millisecond, pgxCloseAfter+600*time.Millisecond)
	}},
	{"advisory: a client killed while cut frees its lock at once", false, func(p Postgres) error {
		h, err := p.Hold("a6", false)
		if err != nil {
			return err
		}
		if err := h.Cut(); err != nil {
			return err
		}
		p.Sleep(500 * time.Millisecond)
		if err := h.Kill(); err != nil {
			return err
		}
		return freedWithin(p, "a6", "after the cut client was killed", 300*time.Millisecond)
	}},
	{"advisory: a restart frees every advisory lock; the token sequence survives", true, func(p Postgres) error {
		h1, err := p.Hold("a7", false)
		if err != nil {
			return err
		}
		if err := p.Restart(); err != nil {
			return err
		}
		if free, err := p.Free("a7"); err != nil || !free {
			return fmt.Errorf("after a restart: free %v, %v", free, err)
		}
		if r, err := h1.Renew(time.Second); err != nil || r != LeaseLost {
			return fmt.Errorf("renew after a restart: %v, %v; want lost", r, err)
		}
		h2, err := p.Hold("a7", false)
		if err != nil {
			return err
		}
		if h2.Token() <= h1.Token() {
			return fmt.Errorf("token %d after a restart, %d before: want strictly increasing", h2.Token(), h1.Token())
		}
		_, err = h2.Release()
		return err
	}},
}

// freedWithin polls key's advisory lock until it is free, and wants that
// within limit.
func freedWithin(p Postgres, key, what string, limit time.Duration) error {
	took, free, err := pollUntil(p, 10*time.Millisecond, limit+2*time.Second, func() (bool, error) {
		return p.Free(key)
	})
	if err != nil {
		return err
	}
	if !free {
		return fmt.Errorf("advisory lock still held %v %s", took, what)
	}
	return within("the advisory lock freed "+what, took, 0, limit)
}
