package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/locksim/locksim/faults/kinds"
	"github.com/locksim/locksim/faults/plan"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/scenario"
)

// FaultKinds lists the scenario fault kinds the simulator carries out:
// every kind of the registry (package faults/kinds, where each kind says
// what it does). A fault that does not apply to a backend (evict on etcd)
// is recorded in the history and changes nothing.
//
// Targets: holder (the client holding a lock when the fault is due; if none
// does, the fault waits for the next grant and hits that client), leader,
// clients, servers, minority (a random minority of the servers, as real
// runs draw it: faults/plan.Halves), majority (the rest), resource, s1… or server1… (the i-th
// server), or a node's name as cluster/ and harness/ name them: etcd1…,
// consul1…, memcached1…, pg; and c1… for clients. memcache1… and postgres
// are accepted for memcached1… and pg.
var FaultKinds = kinds.Names()

// nemesis carries out the scenario's fault schedule.
type nemesis struct {
	r      *run
	active []*partition
}

// partition is one set of directed links cut by a fault.
type partition struct {
	cut   [][2]*node
	ended bool
}

func newNemesis(r *run) *nemesis { return &nemesis{r: r} }

// FaultError is a fault the simulator cannot carry out on a backend: an
// unknown kind, or a target naming no node of that backend.
type FaultError struct {
	Backend string
	Index   int    // in the scenario's faults
	Field   string // "fault" or "target"
	Msg     string
}

// Error formats as "faults[i].field: msg".
func (e *FaultError) Error() string {
	return fmt.Sprintf("faults[%d].%s: %s", e.Index, e.Field, e.Msg)
}

// validate checks that every fault names a kind and target this run has.
func (nm *nemesis) validate() error {
	for i, f := range nm.r.sc.Faults {
		if _, ok := kinds.Lookup(f.Fault); !ok {
			return &FaultError{nm.r.desc.Name, i, "fault", fmt.Sprintf("the simulator has no fault %q", f.Fault)}
		}
		if f.Fault == "heal" || f.Target == "" {
			continue
		}
		if _, err := nm.resolve(f.Target); err != nil {
			return &FaultError{nm.r.desc.Name, i, "target", err.Error()}
		}
	}
	return nil
}

func (nm *nemesis) schedule() {
	for i := range nm.r.sc.Faults {
		f := nm.r.sc.Faults[i]
		nm.r.w.at(int64(nm.r.timing.FaultAt[i]), func() { nm.start(f) })
	}
}

// holding is the first client that holds a lock, or nil.
func (nm *nemesis) holding() *proc {
	for _, p := range nm.r.procs {
		if p.holds() && !p.n.down {
			return p
		}
	}
	return nil
}

func (nm *nemesis) holder() *proc {
	if p := nm.holding(); p != nil {
		return p
	}
	if nm.r.lastGrant != nil {
		return nm.r.lastGrant
	}
	return nm.r.procs[0]
}

func (nm *nemesis) resolve(target string) ([]*node, error) {
	r := nm.r
	switch target {
	case "holder":
		return []*node{nm.holder().n}, nil
	case "leader":
		if l := r.be.leader(); l != nil {
			return []*node{l}, nil
		}
		return nil, nil
	case "clients":
		var out []*node
		for _, p := range r.procs {
			out = append(out, p.n)
		}
		return out, nil
	case "servers":
		return slices.Clone(r.servers), nil
	case "minority", "majority":
		// As real runs pick them (harness/nemesis.go): a random half of
		// the servers, the smaller one or the rest.
		h := plan.Halves(r.w.rng, r.servers)
		if target == "minority" {
			return h[0], nil
		}
		return h[1], nil
	case "resource":
		return []*node{r.res.n}, nil
	}
	name := target
	if rest, ok := strings.CutPrefix(target, "memcache"); ok && !strings.HasPrefix(rest, "d") {
		name = "memcached" + rest
	} else if target == "postgres" {
		name = "pg"
	}
	for _, n := range r.w.nodes {
		if n.name == name {
			return []*node{n}, nil
		}
	}
	for _, prefix := range []string{"server", "s"} {
		if rest, ok := strings.CutPrefix(target, prefix); ok {
			if i, err := strconv.Atoi(rest); err == nil && i >= 1 && i <= len(r.servers) {
				return []*node{r.servers[i-1]}, nil
			}
		}
	}
	var names []string
	for _, n := range r.w.nodes {
		names = append(names, n.name)
	}
	return nil, fmt.Errorf("no node %q (nodes: %s)", target, strings.Join(names, ", "))
}

// record writes the nemesis event name for fault f, at its start or end.
func (nm *nemesis) record(f scenario.Fault, nodes []*node, name, phase string) {
	nm.emitRecord(f, nodes, name, phase, "")
}

// recordSkipped records f's start as a fault that did nothing, and why
// (as real runs record a skipped fault: its "skipped" field).
func (nm *nemesis) recordSkipped(f scenario.Fault, nodes []*node, why string) {
	nm.emitRecord(f, nodes, f.Fault, "start", why)
}

func (nm *nemesis) emitRecord(f scenario.Fault, nodes []*node, name, phase, skipped string) {
	var b []byte
	b = append(b, `{"target":`...)
	b = strconv.AppendQuote(b, f.Target)
	b = append(b, `,"nodes":[`...)
	for i, n := range nodes {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, n.name)
	}
	b = append(b, `],"phase":"`...)
	b = append(b, phase...)
	b = append(b, '"')
	if f.For > 0 && phase == "start" {
		b = append(b, `,"for":`...)
		b = strconv.AppendInt(b, int64(f.For), 10)
	}
	if skipped != "" {
		b = append(b, `,"skipped":`...)
		b = strconv.AppendQuote(b, skipped)
	}
	b = append(b, '}')
	nm.r.emit(history.ProcNemesis, history.Info, name, "", 0, false, b)
}

func (nm *nemesis) cut(pairs [][2]*node) *partition {
	p := &partition{cut: pairs}
	for _, c := range pairs {
		nm.r.w.block(c[0], c[1])
	}
	nm.active = append(nm.active, p)
	return p
}

func (nm *nemesis) uncut(p *partition) {
	if p.ended {
		return
	}
	p.ended = true
	for _, c := range p.cut {
		nm.r.w.unblock(c[0], c[1])
	}
}

// start carries out f: it resolves f's target to nodes and applies f's
// kind (package faults/kinds) on them through simWorld. A fault on the
// holder when no client holds a lock waits for the next grant, and hits
// that client as it enters its critical section.
func (nm *nemesis) start(f scenario.Fault) {
	r := nm.r
	w := r.w
	if (f.Target == "holder" || f.Fault == "cut-holder" && f.Target == "") && nm.holding() == nil {
		r.grantHooks = append(r.grantHooks, func() { nm.start(f) })
		return
	}
	var nodes []*node
	if f.Target != "" && f.Fault != "heal" {
		nodes, _ = nm.resolve(f.Target)
	}
	if f.Fault == "server-clock" && f.Target == "" {
		nodes = slices.Clone(r.servers)
	}
	if f.Fault == "cut-holder" && f.Target == "" {
		nodes = []*node{nm.holder().n}
	}
	if why, ok := r.desc.NoFaults[f.Fault]; ok {
		// The registry says the kind does nothing on this backend: real
		// runs skip it, and so does the simulator (the verdict's notes
		// say why).
		nm.recordSkipped(f, nodes, why)
		return
	}
	k, _ := kinds.Lookup(f.Fault)
	sw := &simWorld{nm: nm, f: f, nodes: nodes}
	end := k.Apply(sw, kinds.Params{Target: f.Target, For: f.For, Offset: f.Offset, Drift: f.Drift,
		Latency: f.Latency, LatencyJitter: f.LatencyJitter}, names(nodes))
	r.be.faultChanged()
	if end != nil && f.For > 0 {
		w.at(w.now+int64(f.For), func() {
			end()
			r.be.faultChanged()
		})
	}
}

func names(nodes []*node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.name
	}
	return out
}

// simWorld is the world of package faults/kinds for one fault of a
// simulated run: its nodes and links.
type simWorld struct {
	nm    *nemesis
	f     scenario.Fault
	nodes []*node // the fault's resolved targets, as its events name them
}

func (sw *simWorld) Servers() []string { return names(sw.nm.r.servers) }

func (sw *simWorld) Clients() []string {
	out := make([]string, len(sw.nm.r.procs))
	for i, p := range sw.nm.r.procs {
		out[i] = p.n.name
	}
	return out
}

func (sw *simWorld) Rand() *rand.Rand { return sw.nm.r.w.rng }

// node is the node named name, or nil.
func (sw *simWorld) node(name string) *node {
	for _, n := range sw.nm.r.w.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// each calls f on each named node that exists.
func (sw *simWorld) each(names []string, f func(*node)) {
	for _, name := range names {
		if n := sw.node(name); n != nil {
			f(n)
		}
	}
}

// Record writes the event with the simulator's fields (target, nodes,
// phase, for): details are left out.
func (sw *simWorld) Record(name string, phase kinds.Phase, _ map[string]any) {
	ph := "start"
	if phase == kinds.End {
		ph = "end"
	}
	sw.nm.record(sw.f, sw.nodes, name, ph)
}

func (sw *simWorld) Pause(name string)   { sw.each([]string{name}, (*node).pause) }
func (sw *simWorld) Resume(name string)  { sw.each([]string{name}, (*node).resume) }
func (sw *simWorld) Kill(name string)    { sw.each([]string{name}, (*node).crash) }
func (sw *simWorld) Restart(name string) { sw.each([]string{name}, (*node).restart) }

// Bounce crashes the nodes and starts them again at the end of p.For or,
// without one, 100 ms later.
func (sw *simWorld) Bounce(tg []string, p kinds.Params) func() {
	sw.each(tg, (*node).crash)
	restart := func() { sw.each(tg, (*node).restart) }
	if p.For > 0 {
		return restart
	}
	r, w := sw.nm.r, sw.nm.r.w
	w.at(w.now+int64(100*time.Millisecond), func() { restart(); r.be.faultChanged() })
	return nil
}

// Cut blocks the links; what it returns unblocks these links only.
func (sw *simWorld) Cut(links []kinds.Link) func() {
	pairs := make([][2]*node, 0, len(links))
	for _, l := range links {
		a, b := sw.node(l[0]), sw.node(l[1])
		if a != nil && b != nil {
			pairs = append(pairs, [2]*node{a, b})
		}
	}
	p := sw.nm.cut(pairs)
	return func() { sw.nm.uncut(p) }
}

func (sw *simWorld) HealAll() {
	for _, p := range sw.nm.active {
		p.ended = true
	}
	sw.nm.active = nil
	sw.nm.r.w.healAll()
}

// Slow adds to the node's delay; what it returns takes it off.
func (sw *simWorld) Slow(name string, latency, jitter time.Duration) func() {
	n := sw.node(name)
	if n == nil {
		return func() {}
	}
	lat, jit := int64(latency), int64(jitter)
	n.slow += lat
	n.slowJitter += jit
	return func() {
		n.slow -= lat
		n.slowJitter -= jit
	}
}

// SkewClock steps the node's clock by offset; what it returns steps it
// back.
// SkewClock steps a client's clock by offset, and back at the end. As in
// real runs, where a clock fault is a command to a client process, a
// server or the resource named by a clock fault keeps its clock (server
// clocks take server-clock).
func (sw *simWorld) SkewClock(name string, offset time.Duration) func() {
	n := sw.client(name)
	if n == nil {
		return func() {}
	}
	return sw.skew(n, offset)
}

// skew steps n's clock by offset, and back at the end.
func (sw *simWorld) skew(n *node, offset time.Duration) func() {
	w := sw.nm.r.w
	n.clk.step(w.now, int64(offset))
	return func() { n.clk.step(w.now, -int64(offset)) }
}

// DriftClock sets a client's clock rate (clients only, as SkewClock).
func (sw *simWorld) DriftClock(name string, rate float64) func() {
	n := sw.client(name)
	if n == nil {
		return func() {}
	}
	w := sw.nm.r.w
	n.clk.setDrift(w.now, rate)
	return func() { n.clk.setDrift(w.now, 0) }
}

// StepClock steps a client's clock for good (clients only, as SkewClock).
func (sw *simWorld) StepClock(name string, offset time.Duration) {
	if n := sw.client(name); n != nil {
		n.clk.step(sw.nm.r.w.now, int64(offset))
	}
}

// SkewServerClock steps a node's clock by offset, and back at the end.
func (sw *simWorld) SkewServerClock(name string, offset time.Duration) func() {
	n := sw.node(name)
	if n == nil {
		return func() {}
	}
	return sw.skew(n, offset)
}

// client is the node of the client named name, or nil if name is no
// client.
func (sw *simWorld) client(name string) *node {
	for _, p := range sw.nm.r.procs {
		if p.n.name == name {
			return p.n
		}
	}
	return nil
}

func (sw *simWorld) Evict(tg []string) { sw.each(tg, sw.nm.r.be.evict) }

func (sw *simWorld) DestroySessions(tg []string) {
	for _, p := range sw.nm.r.procs {
		if slices.Contains(tg, p.n.name) {
			sw.nm.r.be.destroySession(p)
		}
	}
}
