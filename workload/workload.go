// Package workload is what a run's clients do — the counter and rotation
// workloads around locks.Run, and memcache's distinct list — written once,
// without I/O, as machines in the style of the lock clients' (package
// locks/machine): a driver feeds a machine its inputs (the lock granted or
// lost, how an operation on the resource ended, a timer firing, how
// locks.Run ended) and carries out its outputs: the history events to
// record, the lock to acquire, the resource's reads and writes, the
// timers to set, the critical section's end. Randomness (which key, how
// long a hold, how long to back off) comes in through the inputs, as a
// Rand the driver owns.
//
// Two drivers run the same machines: harness/ on goroutines over
// locks.Run and the resource's HTTP client in real runs, and the
// simulator (package sim) from its event loop, with locks.Run's hold loop
// as the machine of package locks/machine/hold.
package workload

import (
	"strconv"
	"time"

	"github.com/locksim/locksim/history"
	lm "github.com/locksim/locksim/locks/machine"
)

// Rand is the driver's source of randomness.
type Rand interface {
	// Int64N is a uniform draw in [0, n), n > 0.
	Int64N(n int64) int64
}

// Config is one client's workload.
type Config struct {
	// Kind is counter or rotation (scenario.Workload.Kind).
	Kind string
	// Keys are the lock keys; each cycle draws one.
	Keys []string
	// HoldMin and HoldMax bound the hold, drawn uniformly.
	HoldMin, HoldMax time.Duration
	// ReadToken: the read carries the holder's token (fencing all and
	// guarded).
	ReadToken bool
	// Poll is the lock's poll interval, which sizes the counter's
	// back-off between cycles.
	Poll time.Duration
	// Tokenless: the lock's grants carry no fencing token (MegaMutex):
	// no event or operation of a hold carries one.
	Tokenless bool
}

// Kind is the kind of an Output.
type Kind uint8

const (
	// OutEmit: record Event (the driver stamps its time and proc).
	OutEmit Kind = iota
	// OutAcquire: run the critical section under the lock on Key
	// (locks.Run); its grant is Granted, its end RunDone.
	OutAcquire
	// OutRead: read the counter of Key (with Token if HasToken); its
	// end is ReadDone.
	OutRead
	// OutWrite: write Value to the counter of Key with Token; its end is
	// WriteDone.
	OutWrite
	// OutTimer: wait D of true time (the hold, or the sleep between
	// cycles); its firing is Fire.
	OutTimer
	// OutSectionDone: the critical section is over (fn returns).
	OutSectionDone
	// OutInsert: insert Item into the list Key (the list workload); its
	// end is List.Inserted.
	OutInsert
)

var kindNames = [...]string{"emit", "acquire", "read", "write", "timer", "section-done", "insert"}

// String names the kind as the test scripts print it.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind?"
}

// Output is one thing the driver must do.
type Output struct {
	Kind     Kind
	Event    history.Event // OutEmit: all but T and Proc
	Key      string
	Token    int64
	HasToken bool
	Value    int64         // OutWrite
	D        time.Duration // OutTimer, on true time
	Item     string        // OutInsert
}

// Outcome is how an operation on the resource ended.
type Outcome uint8

const (
	// Done: the read answered, or the write was accepted.
	Done Outcome = iota
	// Refused: the resource (or the lock service, guarded) refused it.
	Refused
	// Unknown: no answer; the outcome is unknown.
	Unknown
)

type state uint8

const (
	idle      state = iota // between cycles: the timer runs
	acquiring              // the lock is asked for
	reading
	holding
	writing
	ending // the section is over; locks.Run releases (or not)
	dead   // crashed, or the run is over
)

// Machine is one client's counter or rotation workload.
type Machine struct {
	cfg Config
	st  state

	key      string
	tok      int64
	granted  bool
	lost     bool // the lock is known lost in this cycle
	ended    bool // the lost notice or the release invoke is written
	released bool // the release invoke is written
	read     int64
	open     history.Event // the operation in progress; F "" if none
}

// New returns the workload of one client, idle until Begin.
func New(cfg Config) *Machine { return &Machine{cfg: cfg} }

// Begin starts a cycle (the client's start, or the end of its timer):
// draw a key, ask for its lock.
func (m *Machine) Begin(r Rand, out []Output) []Output {
	if m.st != idle {
		return out
	}
	m.key = m.cfg.Keys[0]
	if len(m.cfg.Keys) > 1 {
		m.key = m.cfg.Keys[r.Int64N(int64(len(m.cfg.Keys)))]
	}
	m.tok, m.granted, m.lost, m.ended, m.released = 0, false, false, false, false
	m.st = acquiring
	out = m.invoke(out, history.FAcquire, 0, false, nil)
	return append(out, Output{Kind: OutAcquire, Key: m.key})
}

// Granted is the lock granted with its token: the critical section
// begins with the read.
func (m *Machine) Granted(token int64, out []Output) []Output {
	if m.st != acquiring {
		return out
	}
	m.tok, m.granted = token, true
	m.open.Token, m.open.HasToken = token, m.hasToken()
	out = m.complete(out, history.OK, nil)
	m.st = reading
	readTok := m.cfg.ReadToken && m.hasToken()
	out = m.invoke(out, history.FRead, token, readTok, nil)
	return append(out, Output{Kind: OutRead, Key: m.key, Token: token, HasToken: readTok})
}

// ReadDone is the read's end: the value, a refusal or no answer (why is
// the event's value on a refusal, or nil). After a value the hold, drawn
// in [HoldMin, HoldMax), begins, unless the lock is lost by now; else the
// section is over.
func (m *Machine) ReadDone(o Outcome, v int64, why []byte, r Rand, out []Output) []Output {
	if m.st != reading {
		return out
	}
	switch o {
	case Done:
		out = m.complete(out, history.OK, Num(v))
	case Refused:
		return m.sectionDone(m.complete(out, history.Fail, why))
	default:
		return m.sectionDone(m.complete(out, history.Info, why))
	}
	if m.lost {
		return m.sectionDone(out)
	}
	m.read = v
	m.st = holding
	hold := m.cfg.HoldMin
	if m.cfg.HoldMax > m.cfg.HoldMin {
		hold += time.Duration(r.Int64N(int64(m.cfg.HoldMax - m.cfg.HoldMin)))
	}
	return append(out, Output{Kind: OutTimer, D: hold})
}

// Fire is the timer's end: after the hold, the write; between cycles,
// the next cycle.
func (m *Machine) Fire(r Rand, out []Output) []Output {
	switch m.st {
	case idle:
		return m.Begin(r, out)
	case holding:
		m.st = writing
		v := m.read + 1
		out = m.invoke(out, history.FWrite, m.tok, m.hasToken(), Num(v))
		return append(out, Output{Kind: OutWrite, Key: m.key, Token: m.tok, HasToken: m.hasToken(), Value: v})
	}
	return out
}

// WriteDone is the write's end: accepted, refused (a stale token) or
// unknown. The section is over.
func (m *Machine) WriteDone(o Outcome, out []Output) []Output {
	if m.st != writing {
		return out
	}
	t := [...]history.Type{Done: history.OK, Refused: history.Fail, Unknown: history.Info}[o]
	return m.sectionDone(m.complete(out, t, m.open.Value))
}

// Lost is the lock lost while this client held it (why: the event's
// value, the reason). The first notice before the release is recorded;
// the hold is cut short (as locks.Run cancels the section's context), a
// read or write under way runs on.
func (m *Machine) Lost(why []byte, out []Output) []Output {
	if !m.granted || m.ended || m.st == dead {
		return out
	}
	m.lost, m.ended = true, true
	out = append(out, Output{Kind: OutEmit, Event: history.Event{Type: history.Info, F: history.FLost, Key: m.key, Token: m.tok, HasToken: m.hasToken(), Value: why}})
	if m.st == holding {
		return m.sectionDone(out)
	}
	return out
}

// Stop is the section's context ended by the run's end (not a loss): a
// hold is cut short, the section is over.
func (m *Machine) Stop(out []Output) []Output {
	if m.st == holding {
		return m.sectionDone(out)
	}
	return out
}

func (m *Machine) sectionDone(out []Output) []Output {
	m.st = ending
	if !m.ended {
		m.ended, m.released = true, true
		out = m.invoke(out, history.FRelease, m.tok, m.hasToken(), nil)
	}
	return append(out, Output{Kind: OutSectionDone})
}

// RunDone is the end of locks.Run (why: the event's value of an error,
// or nil): a failed acquire (NotAcquired or Cancelled: the lock was
// not taken; else unknown), or the hold's end — the release's outcome
// (ok; lost before the release or found lost by it: failed; else
// unknown). Then the wait before the next cycle: a rotation sleeps 1 s
// plus a random fraction (Locker's pattern), a counter backs off about
// as long as a waiter polls, so that the last holder does not win every
// time.
func (m *Machine) RunDone(res lm.Result, why []byte, r Rand, out []Output) []Output {
	switch {
	case m.st == acquiring:
		t := history.Info
		if res == lm.NotAcquired || res == lm.Cancelled {
			t = history.Fail
		}
		out = m.complete(out, t, why)
	case m.st == ending:
		if m.released {
			switch res {
			case lm.OK:
				out = m.complete(out, history.OK, nil)
			case lm.Lost:
				out = m.complete(out, history.Fail, why)
			default:
				out = m.complete(out, history.Info, why)
			}
		}
	default:
		return out
	}
	m.st = idle
	m.granted = false
	var d int64
	if m.cfg.Kind == "rotation" {
		d = int64(time.Second) + r.Int64N(int64(time.Second))
	} else {
		d = r.Int64N(max(int64(20*time.Millisecond), 2*int64(m.cfg.Poll)))
	}
	return append(out, Output{Kind: OutTimer, D: time.Duration(d)})
}

// Crash is the client process killed: its open operation's outcome is
// unknown, and a hold it had ends with it (why: the lost notice's
// value). The machine is done.
func (m *Machine) Crash(why []byte, out []Output) []Output {
	if m.open.F != "" {
		out = m.complete(out, history.Info, nil)
	}
	if m.granted && !m.ended {
		out = m.Lost(why, out)
	}
	m.st = dead
	return out
}

// Finish is the run's end: an operation still open ends with an unknown
// outcome. The machine is done.
func (m *Machine) Finish(out []Output) []Output {
	if m.open.F != "" {
		out = m.complete(out, history.Info, nil)
	}
	m.st = dead
	return out
}

// hasToken reports whether a hold's events and operations carry its
// token.
func (m *Machine) hasToken() bool { return !m.cfg.Tokenless }

// Holds reports whether the client believes it holds a lock: granted, and
// neither lost nor released.
func (m *Machine) Holds() bool { return m.granted && !m.ended }

func (m *Machine) invoke(out []Output, f string, tok int64, hasTok bool, value []byte) []Output {
	m.open = history.Event{Type: history.Invoke, F: f, Key: m.key, Token: tok, HasToken: hasTok, Value: value}
	return append(out, Output{Kind: OutEmit, Event: m.open})
}

func (m *Machine) complete(out []Output, t history.Type, value []byte) []Output {
	e := m.open
	e.Type, e.Value = t, value
	m.open = history.Event{}
	return append(out, Output{Kind: OutEmit, Event: e})
}

// Num is v in decimal, as an event's value. The values of a run are small
// counts (the resource's counter): those below numSmall are slices of one
// shared, read-only buffer (no allocation; their capacity ends with them,
// so an append copies), the rest are allocated.
func Num(v int64) []byte {
	if v >= 0 && v < numSmall {
		lo, hi := numEnds[v], numEnds[v+1]
		return numDigits[lo:hi:hi]
	}
	return strconv.AppendInt(nil, v, 10)
}

const numSmall = 4096

// numDigits holds 0..numSmall-1 in decimal, one after the other, and
// numEnds where each starts (numEnds[v]) and ends (numEnds[v+1]).
var numDigits, numEnds = func() ([]byte, []int32) {
	var b []byte
	ends := make([]int32, 0, numSmall+1)
	for v := int64(0); v < numSmall; v++ {
		ends = append(ends, int32(len(b)))
		b = strconv.AppendInt(b, v, 10)
	}
	return b, append(ends, int32(len(b)))
}()
