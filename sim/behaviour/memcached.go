package behaviour

import (
	"errors"
	"fmt"
	"time"
)

// Memcached is one memcached server as locks/memcache uses it: the
// protocol's commands, and the faults the catalogue applies to it.
// Expiries are memcached's exptime: relative seconds (0 never, negative
// already expired).
type Memcached interface {
	Clock
	// Add stores key only if it is absent (or expired): false is
	// NOT_STORED.
	Add(key, value string, exp int) (bool, error)
	// Set stores key whatever was there.
	Set(key, value string, exp int) error
	// Gets returns the item's value and CAS id; ok false is a miss.
	Gets(key string) (value string, cas uint64, ok bool, err error)
	// Cas stores key if its CAS id is still cas.
	Cas(key, value string, exp int, cas uint64) (CasResult, error)
	// Incr adds one to a number; ok false is NOT_FOUND (incr creates
	// nothing).
	Incr(key string) (n uint64, ok bool, err error)
	// Touch sets a live item's expiry; false is NOT_FOUND.
	Touch(key string, exp int) (bool, error)
	// Delete removes key; false is NOT_FOUND.
	Delete(key string) (bool, error)

	// StepClock moves the server's clock by d (libfaketime on the real
	// server), on top of earlier steps.
	StepClock(d time.Duration) error
	// Restart stops the server and starts it again.
	Restart() error
	// Flood is memory pressure: what the catalogue's evict fault writes.
	Flood() error
	// Link is another client of the server, on a link of its own that
	// can be cut, as each client of a run reaches the servers (a
	// toxiproxy link of faults.Network on the real server). Its
	// operations time out after 5 s.
	Link() (MemcachedLink, error)
}

// MemcachedLink is a client of the server on a link that can be cut.
type MemcachedLink interface {
	// Cut drops everything on the link, both ways, as faults.Network.Cut
	// does; Heal ends the cut as faults.Network.Heal does.
	Cut() error
	Heal() error
	// StartAdd sends an add and returns at once; wait blocks until its
	// answer (or error) and says how long after the send it came.
	StartAdd(key, value string, exp int) (wait func() (stored bool, after time.Duration, err error))
}

// CasResult is the answer to a cas.
type CasResult int

// The answers to a cas.
const (
	CasStored   CasResult = iota // STORED
	CasExists                    // EXISTS: the item changed since the gets
	CasNotFound                  // NOT_FOUND
)

func (r CasResult) String() string {
	return [...]string{"STORED", "EXISTS", "NOT_FOUND"}[r]
}

// MemcachedCase is one behaviour of memcached that a verdict can depend on.
type MemcachedCase struct {
	Name string
	// Run drives a fresh server (nothing stored, no clock step) and
	// returns what differs from the expected outcome.
	Run func(m Memcached) error
}

// MemcachedCases is the table both the real server and the model run.
var MemcachedCases = []MemcachedCase{
	{"add is a test-and-set", func(m Memcached) error {
		if ok, err := m.Add("lock", "c1 1", 10); err != nil || !ok {
			return fmt.Errorf("first add: stored %v, %v", ok, err)
		}
		if ok, err := m.Add("lock", "c2 1", 10); err != nil || ok {
			return fmt.Errorf("second add: stored %v, %v; want NOT_STORED", ok, err)
		}
		return wantValue(m, "lock", "c1 1")
	}},
	{"delete frees the key; a second delete finds nothing", func(m Memcached) error {
		if _, err := m.Add("lock", "c1 1", 10); err != nil {
			return err
		}
		if ok, err := m.Delete("lock"); err != nil || !ok {
			return fmt.Errorf("delete: %v, %v", ok, err)
		}
		if ok, err := m.Delete("lock"); err != nil || ok {
			return fmt.Errorf("second delete: %v, %v; want NOT_FOUND", ok, err)
		}
		if ok, err := m.Add("lock", "c2 1", 10); err != nil || !ok {
			return fmt.Errorf("add after the delete: %v, %v", ok, err)
		}
		return nil
	}},
	{"gets and cas: a changed item is not overwritten", func(m Memcached) error {
		if _, err := m.Add("lock", "c1 1", 10); err != nil {
			return err
		}
		_, cas, ok, err := m.Gets("lock")
		if err != nil || !ok {
			return fmt.Errorf("gets: %v, %v", ok, err)
		}
		if r, err := m.Cas("lock", "c1 1", 10, cas); err != nil || r != CasStored {
			return fmt.Errorf("cas with the id just read: %v, %v", r, err)
		}
		if r, err := m.Cas("lock", "c1 1", 10, cas); err != nil || r != CasExists {
			return fmt.Errorf("cas with the old id: %v, %v; want EXISTS", r, err)
		}
		if _, err := m.Delete("lock"); err != nil {
			return err
		}
		if r, err := m.Cas("lock", "c1 1", 10, cas); err != nil || r != CasNotFound {
			return fmt.Errorf("cas on a deleted item: %v, %v; want NOT_FOUND", r, err)
		}
		return nil
	}},
	{"incr creates nothing; the token is add 0, then incr", func(m Memcached) error {
		if _, ok, err := m.Incr("tok"); err != nil || ok {
			return fmt.Errorf("incr of a missing key: found %v, %v; want NOT_FOUND", ok, err)
		}
		if ok, err := m.Add("tok", "0", 0); err != nil || !ok {
			return fmt.Errorf("add 0: %v, %v", ok, err)
		}
		for want := uint64(1); want <= 3; want++ {
			if n, ok, err := m.Incr("tok"); err != nil || !ok || n != want {
				return fmt.Errorf("incr: %d %v %v, want %d", n, ok, err, want)
			}
		}
		return nil
	}},
	{"touch extends a live item and finds nothing once it is gone", func(m Memcached) error {
		if _, err := m.Add("lock", "c1 1", 2); err != nil {
			return err
		}
		if ok, err := m.Touch("lock", 10); err != nil || !ok {
			return fmt.Errorf("touch: %v, %v", ok, err)
		}
		m.Sleep(3 * time.Second)
		if err := wantValue(m, "lock", "c1 1"); err != nil {
			return fmt.Errorf("3 s after a touch to 10 s: %v", err)
		}
		if ok, err := m.Touch("nothing", 10); err != nil || ok {
			return fmt.Errorf("touch of a missing key: %v, %v; want NOT_FOUND", ok, err)
		}
		return nil
	}},
	{"a negative expiry expires at once", func(m Memcached) error {
		if err := m.Set("lock", "c1 1", -1); err != nil {
			return err
		}
		return wantMiss(m, "lock")
	}},
	{"expiry in whole seconds: an item of e s lives between e-1 and e s", func(m Memcached) error {
		// Three items: each expires when current_time, which ticks once a
		// second at the server's own phase, reaches set time + 2. A clock
		// read at the call would give 2 s each time.
		short := 0
		for i := 0; i < 3; i++ {
			key := fmt.Sprintf("lock%d", i)
			if _, err := m.Add(key, "c1 1", 2); err != nil {
				return err
			}
			took, gone, err := pollUntil(m, 20*time.Millisecond, 3*time.Second, missing(m, key))
			if err != nil {
				return err
			}
			if !gone {
				return fmt.Errorf("%s still there after %v", key, took)
			}
			if err := within("a 2 s item expired", took, time.Second-50*time.Millisecond, 2*time.Second+150*time.Millisecond); err != nil {
				return err
			}
			if took < 1900*time.Millisecond {
				short++
			}
			// The next item at another phase of the tick.
			m.Sleep(time.Duration(137*(i+1)) * time.Millisecond)
		}
		if short == 0 {
			return errors.New("three 2 s items each lived 1.9 s or more: expiry does not follow a once-a-second tick")
		}
		return nil
	}},
	{"a server clock step shows at the next tick, not at once", func(m Memcached) error {
		// memcached reads the clock once a second: an item whose expiry a
		// step passes goes at the next tick, within a second of the step.
		late := 0
		for i := 0; i < 3; i++ {
			key := fmt.Sprintf("lock%d", i)
			if _, err := m.Add(key, "c1 1", 10); err != nil {
				return err
			}
			m.Sleep(time.Duration(150+211*i) * time.Millisecond)
			if err := m.StepClock(30 * time.Second); err != nil {
				return err
			}
			took, gone, err := pollUntil(m, 20*time.Millisecond, 3*time.Second, missing(m, key))
			if err != nil {
				return err
			}
			if !gone {
				return fmt.Errorf("%s still there %v after a 30 s clock step", key, took)
			}
			if err := within("the clock step expired the item", took, 0, 1150*time.Millisecond); err != nil {
				return err
			}
			if took >= 100*time.Millisecond {
				late++
			}
		}
		if late == 0 {
			return errors.New("three clock steps each expired their item within 100 ms: the step was seen at once, not at a tick")
		}
		return nil
	}},
	{"a restart empties the server: lock and token counter gone", func(m Memcached) error {
		if _, err := m.Add("lock", "c1 1", 0); err != nil {
			return err
		}
		if _, err := m.Add("tok", "5", 0); err != nil {
			return err
		}
		if err := m.Restart(); err != nil {
			return err
		}
		if err := wantMiss(m, "lock"); err != nil {
			return err
		}
		if _, ok, err := m.Incr("tok"); err != nil || ok {
			return fmt.Errorf("incr of the token after a restart: found %v, %v", ok, err)
		}
		return nil
	}},
	{"an add sent into a cut is lost, and the heal fails it at once", func(m Memcached) error {
		// What a cut-off client's operations meet when its cut heals
		// (holder-cut-off: the holder's add in flight at the heal fails
		// then, and its next try goes to the next server): the proxy
		// dropped what was sent into the cut, and the heal resets the
		// link, so the add is never stored and the client reads an error
		// at the heal, not at its own timeout. Measured on the real
		// server: the error 0-10 ms after the heal.
		l, err := m.Link()
		if err != nil {
			return err
		}
		if err := l.Cut(); err != nil {
			return err
		}
		wait := l.StartAdd("lock", "c1 1", 10)
		const cut = 300 * time.Millisecond
		m.Sleep(cut)
		if err := l.Heal(); err != nil {
			return err
		}
		stored, after, err := wait()
		switch {
		case err == nil:
			return fmt.Errorf("the add sent into the cut was answered (stored %v) %v after the send: want an error at the heal", stored, after)
		case after < cut || after > cut+250*time.Millisecond:
			return fmt.Errorf("the add sent into the cut failed %v after the send (%v); want at the heal, %v", after, err, cut)
		}
		if err := wantMiss(m, "lock"); err != nil {
			return fmt.Errorf("after the heal: %v (the add sent into the cut was stored)", err)
		}
		stored, _, err = l.StartAdd("lock", "c1 2", 10)()
		if err != nil || !stored {
			return fmt.Errorf("an add on the healed link: stored %v, %v", stored, err)
		}
		return wantValue(m, "lock", "c1 2")
	}},
	{"memory pressure evicts the lock and its token counter", func(m Memcached) error {
		if _, err := m.Add("lock", "c1 1", 0); err != nil {
			return err
		}
		if _, err := m.Add("tok", "0", 0); err != nil {
			return err
		}
		if err := m.Flood(); err != nil {
			return err
		}
		if err := wantMiss(m, "lock"); err != nil {
			return fmt.Errorf("after the flood: %v", err)
		}
		if _, ok, err := m.Incr("tok"); err != nil || ok {
			return fmt.Errorf("incr of the token after the flood: found %v, %v", ok, err)
		}
		return nil
	}},
}

func missing(m Memcached, key string) func() (bool, error) {
	return func() (bool, error) {
		_, _, ok, err := m.Gets(key)
		return !ok, err
	}
}

func wantValue(m Memcached, key, want string) error {
	v, _, ok, err := m.Gets(key)
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("%s: a miss, want %q", key, want)
	case v != want:
		return fmt.Errorf("%s = %q, want %q", key, v, want)
	}
	return nil
}

func wantMiss(m Memcached, key string) error {
	v, _, ok, err := m.Gets(key)
	switch {
	case err != nil:
		return err
	case ok:
		return fmt.Errorf("%s = %q, want a miss", key, v)
	}
	return nil
}
