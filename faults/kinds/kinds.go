// Package kinds is the registry of fault kinds: each kind a scenario may
// name (pause, partition, clock-drift…) is one Kind value, with its name,
// the scenario fields that shape it, the nemesis event that ends it (the
// label of its end on the timeline), a line of documentation, and one
// function that carries it out. That function is written against World,
// which both sides of locksim implement: the harness's nemesis over real
// processes and faults.Network's proxies, and the simulator's nemesis over
// its simulated nodes and links. Scenario validation, the harness and the
// simulator all take their list of kinds from here.
//
// A world resolves a fault's target (holder, leader, minority, c2…) to the
// names of the clients and servers it hits before the kind's function
// runs: the two worlds resolve differently (the simulator waits for the
// next grant when nobody holds a lock; real runs poll the clients' events).
//
// Where the two worlds do not yet do the same thing, the difference lives
// in one world operation and is said in its documentation (World):
//   - Slow: a second slow of one endpoint replaces the first in real runs
//     and adds to it in the simulator; its end unslows every link in real
//     runs, only its own in the simulator;
//   - Restart: real runs cannot start a killed client again;
//   - Bounce: a restart without `for` starts its targets again as soon as
//     they are killed in real runs, 100 ms later in the simulator;
//   - SkewClock and SkewServerClock set an offset in real runs and add
//     one in the simulator (overlapping skews of one clock);
//   - Evict: an evict on a client floods every server in real runs and
//     does nothing in the simulator;
//   - DestroySessions: real runs destroy the Consul sessions holding the
//     run's keys whatever the target, the simulator the targets' holds.
//
// A kind that does nothing on a backend (server-clock on Go servers, evict
// off memcached, session-destroy off Consul) is skipped by both worlds
// alike, as the backend's entry in the registry of backends says
// (backend.Backend.NoFaults). The worlds record different fields in their events (real
// runs: for as text and the kind's details; the simulator: phase and for
// in nanoseconds).
//
// The package imports neither scenario, harness nor sim: scenario imports
// it.
package kinds

import (
	"math/rand/v2"
	"slices"
	"time"

	"github.com/locksim/locksim/faults/plan"
)

// Params are the fields of a scenario fault that shape what it does, as
// scenario.Fault has them (the harness and the simulator copy them over).
type Params struct {
	Target string        // as the scenario names it: holder, servers, c2…
	For    time.Duration // 0: until the end of the run or a heal
	Offset time.Duration // clock-offset, clock-step, server-clock
	Drift  float64       // clock-drift: a rate, 0.1 = 10% fast
	// Latency and LatencyJitter shape slow: the extra one-way delay of
	// every message and the most a uniform draw adds to it.
	Latency, LatencyJitter time.Duration
}

// Phase says which end of a fault a nemesis event records.
type Phase int

// The phases of a fault.
const (
	Start Phase = iota // the fault begins
	End                // what ends it: its `for` ran out
)

// Link is one direction of a link between two endpoints (clients and
// servers, by name): From's messages to To.
type Link [2]string

// World is what a kind's function acts on: the processes and links of one
// run, real or simulated, named as the scenario and the nemesis events name
// them (c1…, etcd1…). Every operation takes names the world gave out (in
// Servers and Clients, or as resolved targets) and ignores names it does
// not know (a clock fault on the resource, a pause on a leader that is not
// there any more).
type World interface {
	// Servers are the servers' names, in the order the deployment lists
	// them (etcd1, etcd2…).
	Servers() []string
	// Clients are the clients' names: c1, c2…
	Clients() []string
	// Rand is the run's random source for the nemesis: the shapes drawn
	// from it (plan.Halves) are drawn in the order the kinds draw them.
	Rand() *rand.Rand

	// Record writes the nemesis event name for the fault being applied,
	// at its start or its end. Details are what the kind adds to the
	// target and nodes every event carries (the groups of a partition, a
	// slow link's latency); the simulator's events leave them out.
	Record(name string, phase Phase, details map[string]any)

	// Pause stops a process (SIGSTOP; in the simulator, its timers and
	// message handling) until Resume.
	Pause(name string)
	// Resume lets a paused process go on.
	Resume(name string)
	// Kill crashes a process. A killed client believes nothing any more.
	Kill(name string)
	// Restart starts a killed server again (real runs cannot start a
	// killed client again; the simulator can).
	Restart(name string)
	// Bounce carries out a restart: it crashes the named processes and
	// starts them again, returning what starts them again at the
	// fault's end, or nil if the world has done or scheduled it already.
	// Both take them all down and, with p.For, return what starts them
	// again at its end. Without it real runs start them again at once,
	// the simulator 100 ms later (about what killing and starting a
	// process takes here).
	Bounce(names []string, p Params) (restart func())

	// Cut drops every message sent on the given links until heal is
	// called, which undoes these cuts only: another fault's cuts of the
	// same links stay in force (in real runs, faults.Network counts them).
	Cut(links []Link) (heal func())
	// HealAll ends every cut in force, the kinds' and any other. Slow
	// links stay slow until their own fault's end.
	HealAll()
	// Slow delays every message to and from name by latency, plus a
	// uniform draw of up to jitter, until unslow is called. In both
	// worlds a message is delayed once however many ends of its link are
	// slowed, and the resource's links (not behind a proxy in real runs)
	// are not. Real runs set the delay on each of name's links (a second
	// slow of the same endpoint replaces the first) and unslow every link
	// of the network at once; the simulator adds it to the node's delay
	// (two slows of one node add up) and takes off its own.
	Slow(name string, latency, jitter time.Duration) (unslow func())

	// SkewClock sets a client's clock offset from true time until undo;
	// a name that is no client's changes nothing (server clocks take
	// SkewServerClock). Real runs set it (a second skew replaces the
	// first, undo sets 0); the simulator steps the clock by offset and
	// back, so that skews overlap by adding up.
	SkewClock(name string, offset time.Duration) (undo func())
	// DriftClock makes a client's clock run at 1+rate until undo sets it
	// back to 1 (clients only, as SkewClock).
	DriftClock(name string, rate float64) (undo func())
	// StepClock jumps a client's clock by offset, for good (clients only,
	// as SkewClock).
	StepClock(name string, offset time.Duration)
	// SkewServerClock sets a server's clock offset until undo. Real runs
	// set it through libfaketime, where the backend's servers run under it
	// (the harness's nemesis records the fault as skipped elsewhere); the
	// simulator steps the node's clock by offset and back.
	SkewServerClock(name string, offset time.Duration) (undo func())

	// Evict makes memcached servers drop the lock keys; on other
	// backends it changes nothing. Real runs flood the named servers past
	// their memory limit, or every server when none of the names is a
	// server (a client, the holder); the simulator evicts on the named
	// servers only.
	Evict(names []string)
	// DestroySessions makes the lock service forget the holds of the
	// named clients. It is called on Consul only (the registry of
	// backends skips it elsewhere). The worlds differ: real runs destroy
	// the Consul sessions that hold the run's keys, whatever the names;
	// the simulator the named clients' sessions.
	DestroySessions(names []string)
}

// Kind is one fault kind.
type Kind struct {
	// Name is the kind as a scenario names it, and the nemesis event that
	// records its start.
	Name string
	// Fields are the scenario fields among ShapeFields that the kind
	// takes (at, target, for and jitter are every kind's). A kind with
	// fields needs one of them non-zero.
	Fields []string
	// End is the nemesis event that records the fault's end, "" if
	// nothing ends it (heal, clock-step, evict, session-destroy).
	End string
	// Doc says in one line what the fault does.
	Doc string
	// Untargeted kinds act on the servers (or everything) whatever their
	// target: a world applies them even when the target resolves to
	// nobody.
	Untargeted bool
	// Apply carries the fault out on w, on the targets the world resolved
	// p.Target to, recording its start; it returns what ends it (nil if
	// nothing does), which records the end and which the world calls
	// once p.For has run out, if p.For is set.
	Apply func(w World, p Params, targets []string) (end func())
}

// ShapeFields are the scenario fields that shape a fault, those a kind
// takes or refuses (Kind.Fields).
var ShapeFields = []string{"offset", "drift", "latency", "latency_jitter"}

// All is the registry: every fault kind, in the order scenario lists them.
var All = []Kind{
	{Name: "pause", End: "resume", Doc: "the targets stop (timers, renewals, message handling) for `for`", Apply: pause},
	{Name: "kill", End: "restart", Doc: "the targets crash; with `for`, they start again after it", Apply: kill},
	{Name: "restart", End: "restart", Doc: "the targets crash and start again (see World.Bounce)", Apply: restart},
	{Name: "partition", End: "heal", Doc: "each target is cut off from every client and server, both ways; on servers, majority or minority, the servers split into a random minority and majority, as halves", Apply: partition},
	{Name: "isolate", End: "heal", Doc: "each target is cut off from every client and server, both ways (not from the resource, which real runs reach directly)", Apply: isolate},
	{Name: "halves", End: "heal", Untargeted: true, Doc: "the servers split into a random minority and majority; clients keep every link (faults/plan.Halves)", Apply: halves},
	{Name: "bridge", End: "heal", Untargeted: true, Doc: "the servers split in two halves joined by one server that sees both (faults/plan.BridgeCuts)", Apply: bridge},
	{Name: "ring", End: "heal", Untargeted: true, Doc: "each server sees a majority, no two the same one; on fewer than five servers a bridge (faults/plan.RingCuts)", Apply: ring},
	{Name: "one-way", End: "heal", Doc: "nothing the targets send to a client or server arrives (they still receive)", Apply: oneWay},
	{Name: "cut-holder", End: "heal", Doc: "the lock holder is cut off from every client and server, both ways, as by isolate (not from the resource)", Apply: cutHolder},
	{Name: "heal", Untargeted: true, Doc: "every partition ends (slow links stay slow until their own end)", Apply: heal},
	{Name: "slow", Fields: []string{"latency", "latency_jitter"}, End: "unslow", Doc: "the targets' links get latency and jitter", Apply: slow},
	{Name: "clock-offset", Fields: []string{"offset"}, End: "clock-reset", Doc: "the targets' clocks jump by offset, and back after `for`", Apply: clockOffset},
	{Name: "clock-drift", Fields: []string{"drift"}, End: "clock-reset", Doc: "the targets' clocks run at 1+drift for `for`", Apply: clockDrift},
	{Name: "clock-step", Fields: []string{"offset"}, Doc: "the targets' clocks jump by offset for good", Apply: clockStep},
	{Name: "server-clock", Fields: []string{"offset"}, End: "server-clock-reset", Doc: "the targets' server clocks take offset (libfaketime in real runs)", Apply: serverClock},
	{Name: "evict", Doc: "memcached evicts the lock keys (LRU pushed by filler items)", Apply: evict},
	{Name: "session-destroy", Doc: "the service forgets the target's hold (see World.DestroySessions)", Apply: sessionDestroy},
}

// Names are the names of every kind, in the registry's order.
func Names() []string {
	out := make([]string, len(All))
	for i, k := range All {
		out[i] = k.Name
	}
	return out
}

// Lookup returns the kind named name.
func Lookup(name string) (Kind, bool) {
	i := slices.IndexFunc(All, func(k Kind) bool { return k.Name == name })
	if i < 0 {
		return Kind{}, false
	}
	return All[i], true
}

// Endpoints are the endpoints of the network whose links a fault can cut:
// the clients and the servers (in real runs every such link runs through a
// proxy of package faults; the resource is reached directly).
func Endpoints(w World) []string {
	return append(slices.Clone(w.Clients()), w.Servers()...)
}

// undoAll runs every undo in order.
func undoAll(undos []func()) {
	for _, u := range undos {
		u()
	}
}

// ender returns a fault's end on w: it records the nemesis event end,
// then undoes.
func ender(w World, end string, undo func()) func() {
	return func() {
		w.Record(end, End, nil)
		undo()
	}
}

func pause(w World, _ Params, tg []string) func() {
	w.Record("pause", Start, nil)
	for _, t := range tg {
		w.Pause(t)
	}
	return ender(w, "resume", func() {
		for _, t := range tg {
			w.Resume(t)
		}
	})
}

func kill(w World, _ Params, tg []string) func() {
	w.Record("kill", Start, nil)
	for _, t := range tg {
		w.Kill(t)
	}
	return ender(w, "restart", func() {
		for _, t := range tg {
			w.Restart(t)
		}
	})
}

func restart(w World, p Params, tg []string) func() {
	w.Record("restart", Start, nil)
	if again := w.Bounce(tg, p); again != nil {
		return ender(w, "restart", again)
	}
	return nil
}

// apart returns the links between a and b, both ways.
func apart(a, b []string) []Link {
	var out []Link
	for _, x := range a {
		for _, y := range b {
			if x != y {
				out = append(out, Link{x, y}, Link{y, x})
			}
		}
	}
	return out
}

// bothWays returns each cut pair's links, both ways.
func bothWays(cuts [][2]string) []Link {
	out := make([]Link, 0, 2*len(cuts))
	for _, c := range cuts {
		out = append(out, c, Link{c[1], c[0]})
	}
	return out
}

// without is all but x.
func without(all []string, x string) []string {
	var out []string
	for _, n := range all {
		if n != x {
			out = append(out, n)
		}
	}
	return out
}

// cut cuts links after recording the start of kind name with details, and
// returns the fault's end: it records the heal, then heals.
func cut(w World, name string, details map[string]any, links []Link) func() {
	w.Record(name, Start, details)
	return ender(w, "heal", w.Cut(links))
}

// isolation cuts each target from every other endpoint, both ways.
func isolation(w World, tg []string) []Link {
	eps := Endpoints(w)
	var links []Link
	for _, t := range tg {
		links = append(links, apart([]string{t}, without(eps, t))...)
	}
	return links
}

func partition(w World, p Params, tg []string) func() {
	if p.Target == "servers" || p.Target == "majority" || p.Target == "minority" {
		// The servers split into a random minority and majority; the
		// clients keep their links to every server.
		h := plan.Halves(w.Rand(), w.Servers())
		return cut(w, "partition", map[string]any{"groups": h}, apart(h[0], h[1]))
	}
	return cut(w, "partition", nil, isolation(w, tg))
}

func isolate(w World, _ Params, tg []string) func() {
	return cut(w, "isolate", nil, isolation(w, tg))
}

func cutHolder(w World, _ Params, tg []string) func() {
	return cut(w, "cut-holder", nil, isolation(w, tg))
}

func oneWay(w World, _ Params, tg []string) func() {
	eps := Endpoints(w)
	var links []Link
	for _, t := range tg {
		for _, o := range without(eps, t) {
			links = append(links, Link{t, o})
		}
	}
	return cut(w, "one-way", nil, links)
}

func halves(w World, _ Params, _ []string) func() {
	h := plan.Halves(w.Rand(), w.Servers())
	return cut(w, "halves", map[string]any{"groups": h}, apart(h[0], h[1]))
}

func bridge(w World, _ Params, _ []string) func() {
	cuts := plan.BridgeCuts(w.Servers())
	return cut(w, "bridge", map[string]any{"cuts": cuts}, bothWays(cuts))
}

func ring(w World, _ Params, _ []string) func() {
	cuts := plan.RingCuts(w.Servers())
	return cut(w, "ring", map[string]any{"cuts": cuts}, bothWays(cuts))
}

func heal(w World, _ Params, _ []string) func() {
	w.Record("heal", Start, nil)
	w.HealAll()
	return nil
}

func slow(w World, p Params, tg []string) func() {
	w.Record("slow", Start, map[string]any{"latency": p.Latency.String(), "jitter": p.LatencyJitter.String()})
	var undos []func()
	for _, t := range tg {
		undos = append(undos, w.Slow(t, p.Latency, p.LatencyJitter))
	}
	return ender(w, "unslow", func() { undoAll(undos) })
}

func clockOffset(w World, p Params, tg []string) func() {
	w.Record("clock-offset", Start, map[string]any{"offset": p.Offset.String()})
	var undos []func()
	for _, t := range tg {
		undos = append(undos, w.SkewClock(t, p.Offset))
	}
	return ender(w, "clock-reset", func() { undoAll(undos) })
}

func clockDrift(w World, p Params, tg []string) func() {
	w.Record("clock-drift", Start, map[string]any{"drift": p.Drift})
	var undos []func()
	for _, t := range tg {
		undos = append(undos, w.DriftClock(t, p.Drift))
	}
	return ender(w, "clock-reset", func() { undoAll(undos) })
}

func clockStep(w World, p Params, tg []string) func() {
	w.Record("clock-step", Start, map[string]any{"offset": p.Offset.String()})
	for _, t := range tg {
		w.StepClock(t, p.Offset)
	}
	return nil
}

func serverClock(w World, p Params, tg []string) func() {
	w.Record("server-clock", Start, map[string]any{"offset": p.Offset.String()})
	var undos []func()
	for _, t := range tg {
		undos = append(undos, w.SkewServerClock(t, p.Offset))
	}
	return ender(w, "server-clock-reset", func() { undoAll(undos) })
}

func evict(w World, _ Params, tg []string) func() {
	w.Record("evict", Start, nil)
	w.Evict(tg)
	return nil
}

func sessionDestroy(w World, _ Params, tg []string) func() {
	w.Record("session-destroy", Start, nil)
	w.DestroySessions(tg)
	return nil
}
