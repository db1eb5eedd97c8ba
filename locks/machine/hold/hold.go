// Package hold is locks.Run's hold loop written once, without I/O, as a
// machine (see package locks/machine): between a grant and the end of the
// hold it decides when to renew, when the critical section must be
// cancelled, whether to release, and how the hold ends. locks.Run drives
// it on goroutines over a Lease; the simulator (package sim) drives it
// from its event loop over a simulated lock client.
//
// The loop, as locks.Run has always run it:
//
//   - The renewer: a timer of RenewEvery on the client's clock; when it
//     fires, one renewal, bounded by RenewEvery on the client's clock (one
//     renewal may take until the next is due, no longer); when the renewal
//     is over, the next timer. A renewal that finds the lock lost ends the
//     renewer and cancels the critical section; other errors (a timeout, a
//     server down) are retried at the next tick: the lease decides when it
//     is lost.
//   - The watcher: the lease's own loss notice cancels the critical
//     section at once, even while a renewal hangs.
//   - The end: once the critical section is over, the renewer stops (a
//     renewal in progress is cancelled and waited for); a lease lost by
//     then is not released and the hold ends lost; else one release,
//     bounded by the TTL on the client's clock (after that the lease has
//     expired anyway), whose result ends the hold.
package hold

import (
	"time"

	lm "github.com/locksim/locksim/locks/machine"
)

// Config is the hold loop's timing: the locker's Options.
type Config struct {
	// RenewEvery is the renewer's interval and the bound of one renewal.
	RenewEvery time.Duration
	// TTL bounds the release.
	TTL time.Duration
}

// Kind is the kind of an Output.
type Kind uint8

const (
	// OutTimer: set the renew timer to D on Clock; its firing is Fire.
	OutTimer Kind = iota
	// OutRenew: renew the lease, bounded by D on Clock; its end is
	// Renewed.
	OutRenew
	// OutCancel: the critical section's context ends (the lock is lost,
	// or the section is over): a renewal in progress is cancelled, the
	// renew timer stopped.
	OutCancel
	// OutRelease: release the lease, bounded by D on Clock; its end is
	// Released.
	OutRelease
	// OutDone: the hold is over with Result: OK (released), Lost (lost
	// before the release, or the release found it lost), Failed or
	// Cancelled (the release's error).
	OutDone
)

var kindNames = [...]string{"timer", "renew", "cancel", "release", "done"}

// String names the kind as the test scripts print it.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind?"
}

// Output is one thing the driver must do.
type Output struct {
	Kind   Kind
	D      time.Duration // OutTimer, OutRenew, OutRelease
	Clock  lm.Clock      // what D is measured on
	Result lm.Result     // OutDone
	// Lost is set on the OutCancel of a loss (not of the section's end).
	Lost bool
}

type state uint8

const (
	running   state = iota // the critical section runs
	stopping               // it is over; a renewal in progress is waited for
	releasing              // the release is under way
	done
)

// Machine is one hold: from a grant to its end. Its zero value is not
// usable; use New.
type Machine struct {
	cfg      Config
	st       state
	renewing bool // a renewal is under way
	timer    bool // the renew timer is set
	lost     bool // the lease is known lost
}

// New returns the hold of a grant just made; Start begins it.
func New(cfg Config) *Machine {
	m := &Machine{}
	m.Init(cfg)
	return m
}

// Init makes m the hold of a grant just made, as New does, in memory the
// driver keeps from one hold to the next.
func (m *Machine) Init(cfg Config) { *m = Machine{cfg: cfg} }

// Start begins the hold (the critical section starts): the renewer's
// first timer.
func (m *Machine) Start(out []Output) []Output {
	return m.arm(out)
}

func (m *Machine) arm(out []Output) []Output {
	m.timer = true
	return append(out, Output{Kind: OutTimer, D: m.cfg.RenewEvery, Clock: lm.ClientClock})
}

// Fire is the renew timer firing: one renewal.
func (m *Machine) Fire(out []Output) []Output {
	if m.st != running || !m.timer || m.renewing {
		return out // stale: stopped
	}
	m.timer, m.renewing = false, true
	return append(out, Output{Kind: OutRenew, D: m.cfg.RenewEvery, Clock: lm.ClientClock})
}

// Renewed is the end of a renewal with its result: Lost if the lock is no
// longer ours (the renewer ends and the section is cancelled), anything
// else is retried at the next tick.
func (m *Machine) Renewed(res lm.Result, out []Output) []Output {
	if !m.renewing {
		return out
	}
	m.renewing = false
	switch m.st {
	case stopping:
		if res == lm.Lost {
			m.lost = true
		}
		return m.finish(out)
	case running:
		switch {
		case m.lost:
			return out // the renewer ended at the loss
		case res == lm.Lost:
			return m.lose(out)
		}
		return m.arm(out)
	}
	return out
}

// Lost is the lease's own loss notice (its Lost channel). While the
// section runs it cancels the section; after, it only counts for the
// decision to release, until the release starts.
func (m *Machine) Lost(out []Output) []Output {
	switch m.st {
	case running:
		if !m.lost {
			return m.lose(out)
		}
	case stopping:
		m.lost = true
	}
	return out
}

func (m *Machine) lose(out []Output) []Output {
	m.lost, m.timer = true, false
	return append(out, Output{Kind: OutCancel, Lost: true})
}

// SectionDone is the critical section's end (fn returned): the renewer
// stops, and once a renewal in progress is over, the hold releases the
// lease or, if it is lost, ends lost.
func (m *Machine) SectionDone(out []Output) []Output {
	if m.st != running {
		return out
	}
	m.st, m.timer = stopping, false
	if !m.lost {
		// As Run's cancel() after fn: the section's context ends. After a
		// loss it has already.
		out = append(out, Output{Kind: OutCancel})
	}
	if m.renewing {
		return out // Renewed finishes
	}
	return m.finish(out)
}

func (m *Machine) finish(out []Output) []Output {
	if m.lost {
		m.st = done
		return append(out, Output{Kind: OutDone, Result: lm.Lost})
	}
	m.st = releasing
	return append(out, Output{Kind: OutRelease, D: m.cfg.TTL, Clock: lm.ClientClock})
}

// Released is the end of the release with its result, which ends the
// hold.
func (m *Machine) Released(res lm.Result, out []Output) []Output {
	if m.st != releasing {
		return out
	}
	m.st = done
	return append(out, Output{Kind: OutDone, Result: res})
}

// IsLost reports whether the hold knows the lease lost.
func (m *Machine) IsLost() bool { return m.lost }

// Over reports whether the hold has ended (OutDone was given).
func (m *Machine) Over() bool { return m.st == done }
