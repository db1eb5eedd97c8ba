package behaviour

import (
	"fmt"
	"time"
)

// MySQL is one MariaDB 10.11 server as locks/mysql uses it: named locks
// (GET_LOCK) held by client processes of their own, each on a connection
// pinned for the lease, the token counter row, and the faults the
// catalogue applies. Holders are the advisory lock's Holder: Renew is
// locks/mysql's Lease.Renew (IS_USED_LOCK on the pinned connection),
// Release its RELEASE_LOCK.
type MySQL interface {
	Clock
	// Hold starts a client process that takes key's named lock as
	// locks/mysql's Locker.Acquire does and returns once it is granted.
	// The client reaches the server through a link of its own that can be
	// cut (a toxiproxy link of package faults, as harness/ gives each
	// client), or directly if direct is set.
	Hold(key string, direct bool) (Holder, error)
	// Free reports whether key's named lock is free (IS_FREE_LOCK, on a
	// connection of the case's own, directly connected).
	Free(key string) (bool, error)
	// SetWaitTimeout sets the server's wait_timeout for connections opened
	// from now on (SET GLOBAL wait_timeout; MariaDB's default is 28800 s,
	// which harness/ keeps).
	SetWaitTimeout(d time.Duration) error
	// Restart stops the server (SIGTERM, a clean shutdown) and starts it
	// again on the same data.
	Restart() error
}

// MySQLCase is one behaviour of MariaDB that a verdict can depend on.
type MySQLCase struct {
	Name string
	// Alone is set for a case that changes the whole server (a restart,
	// a global setting): it needs a server of its own.
	Alone bool
	Run   func(m MySQL) error
}

// mysqlHoldOver is how long the cases that want a lock to outlive
// something wait: past any keepalive a kernel or proxy would give up after
// in a run, far short of wait_timeout (28800 s) or net_read_timeout (30 s,
// which bounds only a statement being read, not an idle connection).
const mysqlHoldOver = 4 * time.Second

// MySQLCases is the table both the real server and the model run.
var MySQLCases = []MySQLCase{
	{"named lock: held until released, one holder at a time; tokens increase", false, func(m MySQL) error {
		h1, err := m.Hold("m1", false)
		if err != nil {
			return err
		}
		if free, err := m.Free("m1"); err != nil || free {
			return fmt.Errorf("a held lock: free %v, %v", free, err)
		}
		if r, err := h1.Renew(time.Second); err != nil || r != LeaseOK {
			return fmt.Errorf("renew of a held lock: %v, %v", r, err)
		}
		if r, err := h1.Release(); err != nil || r != LeaseOK {
			return fmt.Errorf("release: %v, %v", r, err)
		}
		if free, err := m.Free("m1"); err != nil || !free {
			return fmt.Errorf("after the release: free %v, %v", free, err)
		}
		h2, err := m.Hold("m1", false)
		if err != nil {
			return err
		}
		if h2.Token() <= h1.Token() {
			return fmt.Errorf("token %d after %d: want strictly increasing", h2.Token(), h1.Token())
		}
		if r, err := h1.Release(); err != nil || r != LeaseOK {
			return fmt.Errorf("a second release: %v, %v; want ok (released before)", r, err)
		}
		_, err = h2.Release()
		return err
	}},
	{"named lock: a killed client's lock goes at once", false, func(m MySQL) error {
		h, err := m.Hold("m2", false)
		if err != nil {
			return err
		}
		if err := h.Kill(); err != nil {
			return err
		}
		return namedFreedWithin(m, "m2", "after the client was killed", 300*time.Millisecond)
	}},
	{"named lock: a paused client keeps its lock", false, func(m MySQL) error {
		h, err := m.Hold("m3", true)
		if err != nil {
			return err
		}
		if err := h.Pause(); err != nil {
			return err
		}
		m.Sleep(mysqlHoldOver)
		free, err := m.Free("m3")
		if err != nil {
			return err
		}
		if err := h.Resume(); err != nil {
			return err
		}
		if free {
			return fmt.Errorf("a paused client's lock was freed within %v", mysqlHoldOver)
		}
		if r, err := h.Renew(time.Second); err != nil || r != LeaseOK {
			return fmt.Errorf("renew after the resume: %v, %v", r, err)
		}
		_, err = h.Release()
		return err
	}},
	{"named lock: a cut holder keeps its lock while cut; the heal frees it", false, func(m MySQL) error {
		// The server's peer is the proxy: nothing tells the server that
		// the client is gone, and an idle connection waits wait_timeout.
		h, err := m.Hold("m4", false)
		if err != nil {
			return err
		}
		if err := h.Cut(); err != nil {
			return err
		}
		m.Sleep(mysqlHoldOver)
		if free, err := m.Free("m4"); err != nil || free {
			return fmt.Errorf("a cut holder's lock %v into the cut: free %v, %v; want held", mysqlHoldOver, free, err)
		}
		if err := h.Heal(); err != nil {
			return err
		}
		if err := namedFreedWithin(m, "m4", "after the heal", 300*time.Millisecond); err != nil {
			return err
		}
		if r, err := h.Renew(time.Second); err != nil || r != LeaseLost {
			return fmt.Errorf("renew after the heal: %v, %v; want lost (the connection was reset)", r, err)
		}
		return nil
	}},
	{"named lock: a cut holder's renewal times out: lost, and the lock freed at once (go-sql-driver closes the socket)", false, func(m MySQL) error {
		h, err := m.Hold("m5", false)
		if err != nil {
			return err
		}
		if err := h.Cut(); err != nil {
			return err
		}
		m.Sleep(200 * time.Millisecond)
		start := m.Elapsed()
		r, err := h.Renew(time.Second)
		if err != nil {
			return err
		}
		if err := within("the renewal returned", m.Elapsed()-start, time.Second-50*time.Millisecond, time.Second+300*time.Millisecond); err != nil {
			return err
		}
		if r != LeaseLost {
			return fmt.Errorf("renewal timed out in a cut: %v; want lost", r)
		}
		return namedFreedWithin(m, "m5", "after the renewal timed out", 300*time.Millisecond)
	}},
	{"named lock: a client killed while cut frees its lock at once", false, func(m MySQL) error {
		h, err := m.Hold("m6", false)
		if err != nil {
			return err
		}
		if err := h.Cut(); err != nil {
			return err
		}
		m.Sleep(500 * time.Millisecond)
		if err := h.Kill(); err != nil {
			return err
		}
		return namedFreedWithin(m, "m6", "after the cut client was killed", 300*time.Millisecond)
	}},
	{"named lock: a restarted server answers only after its startup, 0.1-2 s", true, func(m MySQL) error {
		// Until it answers, clients reconnecting get refused, and a holder
		// renewing meanwhile learns of its loss before anyone else can
		// take the lock: what decides mysql-restart's race.
		for range 3 {
			start := m.Elapsed()
			if err := m.Restart(); err != nil {
				return err
			}
			if _, err := m.Free("m8"); err != nil {
				return err
			}
			took := m.Elapsed() - start
			logf(m, "a restart answered after %v", took)
			if err := within("a restarted server answered", took, 100*time.Millisecond, 2*time.Second); err != nil {
				return err
			}
		}
		return nil
	}},
	{"named lock: a restart frees every lock; the token counter survives", true, func(m MySQL) error {
		h1, err := m.Hold("m7", false)
		if err != nil {
			return err
		}
		if err := m.Restart(); err != nil {
			return err
		}
		if free, err := m.Free("m7"); err != nil || !free {
			return fmt.Errorf("after a restart: free %v, %v", free, err)
		}
		if r, err := h1.Renew(time.Second); err != nil || r != LeaseLost {
			return fmt.Errorf("renew after a restart: %v, %v; want lost", r, err)
		}
		h2, err := m.Hold("m7", false)
		if err != nil {
			return err
		}
		if h2.Token() <= h1.Token() {
			return fmt.Errorf("token %d after a restart, %d before: want strictly increasing", h2.Token(), h1.Token())
		}
		_, err = h2.Release()
		return err
	}},
	{"named lock: wait_timeout ends an idle holder's connection, cut or not, and frees the lock", true, func(m MySQL) error {
		const wt = 2 * time.Second
		if err := m.SetWaitTimeout(wt); err != nil {
			return err
		}
		h1, err := m.Hold("m8", true)
		if err != nil {
			return err
		}
		h2, err := m.Hold("m9", false)
		if err != nil {
			return err
		}
		if err := h2.Cut(); err != nil {
			return err
		}
		for _, key := range []string{"m8", "m9"} {
			took, free, err := pollUntil(m, 50*time.Millisecond, wt+3*time.Second, func() (bool, error) { return m.Free(key) })
			if err != nil {
				return err
			}
			if !free {
				return fmt.Errorf("%s still held %v after the grant, wait_timeout %v", key, took, wt)
			}
			logf(m, "%s freed %v after the grant (wait_timeout %v)", key, took, wt)
		}
		if r, err := h1.Renew(time.Second); err != nil || r != LeaseLost {
			return fmt.Errorf("renew after wait_timeout: %v, %v; want lost", r, err)
		}
		return nil
	}},
}

// namedFreedWithin polls key's named lock until it is free, and wants
// that within limit.
func namedFreedWithin(m MySQL, key, what string, limit time.Duration) error {
	took, free, err := pollUntil(m, 10*time.Millisecond, limit+2*time.Second, func() (bool, error) {
		return m.Free(key)
	})
	if err != nil {
		return err
	}
	if !free {
		return fmt.Errorf("named lock still held %v %s", took, what)
	}
	return within("the named lock freed "+what, took, 0, limit)
}
