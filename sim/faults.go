package sim

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/locksim/locksim/faults/plan"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/scenario"
)

// FaultKinds lists the scenario fault kinds the simulator carries out. A
// fault that does not apply to a backend (evict on etcd) is recorded in
// the history and changes nothing.
//
//	pause         the targets stop (timers, renewals, message handling) for `for`
//	kill          the targets crash; with `for`, they start again after it
//	restart       the targets crash and start again after `for` (or at once)
//	partition     each target is cut off from every client and server, both
//	              ways (not from the resource, which real runs reach
//	              directly); on servers, majority or minority, the servers
//	              split into a random minority and majority, as halves
//	isolate       each target is cut off from every client and server
//	cut-holder    the lock holder is cut off from the servers (not from the resource)
//	one-way       nothing the targets send to a client or server arrives (they still receive)
//	halves        the servers split into a random minority and majority;
//	              clients keep every link (faults/plan.Halves)
//	bridge        servers split in two halves joined by one server that sees
//	              both (faults/plan.BridgeCuts)
//	ring          each server sees a majority, no two the same one; on fewer
//	              than five servers a bridge (faults/plan.RingCuts)
//	heal          every partition ends
//	slow          the targets' links get latency and jitter
//	clock-offset  the targets' clocks jump by offset, and back after `for`
//	clock-drift   the targets' clocks run at 1+drift for `for`
//	clock-step    the targets' clocks jump by offset for good
//	server-clock  the servers' (or targets') clocks take offset and drift
//	evict         memcached evicts everything (LRU pushed by filler items)
//	session-destroy  the service forgets the target's hold (Consul session
//	              destroy, etcd lease revoke, pg_terminate_backend, delete)
//
// Targets: holder (the client holding a lock when the fault is due; if none
// does, the fault waits for the next grant and hits that client), leader,
// clients, servers, minority (the leader and others up to a minority),
// majority (the other servers), resource, s1… or server1… (the i-th
// server), or a node's name as cluster/ and harness/ name them: etcd1…,
// consul1…, memcached1…, pg; and c1… for clients. memcache1… and postgres
// are accepted for memcached1… and pg.
var FaultKinds = []string{"pause", "kill", "restart", "partition", "isolate", "halves", "bridge", "ring", "one-way", "cut-holder", "heal", "slow", "clock-offset", "clock-drift", "clock-step", "server-clock", "evict", "session-destroy"}

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
		if !slices.Contains(FaultKinds, f.Fault) {
			return &FaultError{nm.r.backend, i, "fault", fmt.Sprintf("the simulator has no fault %q", f.Fault)}
		}
		if f.Fault == "heal" || f.Target == "" {
			continue
		}
		if _, err := nm.resolve(f.Target); err != nil {
			return &FaultError{nm.r.backend, i, "target", err.Error()}
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

// endName is the nemesis event that ends a fault, as harness/ names it.
func endName(fault string) string {
	switch fault {
	case "pause":
		return "resume"
	case "kill", "restart":
		return "restart"
	case "slow":
		return "unslow"
	case "clock-offset", "clock-drift":
		return "clock-reset"
	case "server-clock":
		return "server-clock-reset"
	}
	return "heal"
}

func (nm *nemesis) record(f scenario.Fault, nodes []*node, phase string) {
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
	b = append(b, '}')
	name := f.Fault
	if phase == "end" {
		name = endName(f.Fault)
	}
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

// apart returns the links between a and b, both ways.
func apart(a, b []*node) [][2]*node {
	var out [][2]*node
	for _, x := range a {
		for _, y := range b {
			if x != y {
				out = append(out, [2]*node{x, y}, [2]*node{y, x})
			}
		}
	}
	return out
}

// bothWays returns each cut pair's links, both ways.
func bothWays(cuts [][2]*node) [][2]*node {
	out := make([][2]*node, 0, 2*len(cuts))
	for _, c := range cuts {
		out = append(out, c, [2]*node{c[1], c[0]})
	}
	return out
}

// endpoints are the nodes the network's links join in real runs, where
// every link that a fault can cut runs through a proxy of package faults:
// the clients and the servers. The resource is reached directly.
func (nm *nemesis) endpoints() []*node {
	eps := make([]*node, 0, len(nm.r.procs)+len(nm.r.servers))
	for _, p := range nm.r.procs {
		eps = append(eps, p.n)
	}
	return append(eps, nm.r.servers...)
}

func others(all, except []*node) []*node {
	var out []*node
	for _, n := range all {
		if !slices.Contains(except, n) {
			out = append(out, n)
		}
	}
	return out
}

// start carries out f. A fault on the holder when no client holds a lock
// waits for the next grant, and hits that client as it enters its critical
// section.
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
	nm.record(f, nodes, "start")
	var end func()
	switch f.Fault {
	case "pause":
		for _, n := range nodes {
			n.pause()
		}
		end = func() {
			for _, n := range nodes {
				n.resume()
			}
		}
	case "kill":
		for _, n := range nodes {
			n.crash()
		}
		if f.For > 0 {
			end = func() {
				for _, n := range nodes {
					n.restart()
				}
			}
		}
	case "restart":
		for _, n := range nodes {
			n.crash()
		}
		restart := func() {
			for _, n := range nodes {
				n.restart()
			}
		}
		if f.For > 0 {
			end = restart
		} else {
			w.at(w.now+int64(100*time.Millisecond), func() { restart(); r.be.faultChanged() })
		}
	case "partition", "isolate":
		var pairs [][2]*node
		if f.Fault == "partition" && (f.Target == "servers" || f.Target == "majority" || f.Target == "minority") {
			// As real runs: the servers split into a random minority and
			// majority; the clients keep their links to every server.
			h := plan.Halves(w.rng, r.servers)
			pairs = apart(h[0], h[1])
		} else {
			// As faults.Network.Isolate: each target is cut from every
			// other endpoint of the network (the clients and the
			// servers), one by one. The resource is not behind the
			// network's proxies in real runs: an isolated client still
			// reaches it.
			eps := nm.endpoints()
			for _, n := range nodes {
				pairs = append(pairs, apart([]*node{n}, others(eps, []*node{n}))...)
			}
		}
		p := nm.cut(pairs)
		end = func() { nm.uncut(p) }
	case "cut-holder":
		p := nm.cut(apart(nodes, r.servers))
		end = func() { nm.uncut(p) }
	case "one-way":
		var pairs [][2]*node
		eps := nm.endpoints()
		for _, x := range nodes {
			for _, y := range others(eps, []*node{x}) {
				pairs = append(pairs, [2]*node{x, y})
			}
		}
		p := nm.cut(pairs)
		end = func() { nm.uncut(p) }
	case "halves", "bridge", "ring":
		// The shapes real runs cut (package faults/plan), on the
		// servers only: a random minority and majority for halves.
		var pairs [][2]*node
		switch f.Fault {
		case "halves":
			h := plan.Halves(w.rng, r.servers)
			pairs = apart(h[0], h[1])
		case "bridge":
			pairs = bothWays(plan.BridgeCuts(r.servers))
		case "ring":
			pairs = bothWays(plan.RingCuts(r.servers))
		}
		p := nm.cut(pairs)
		end = func() { nm.uncut(p) }
	case "heal":
		for _, p := range nm.active {
			p.ended = true
		}
		nm.active = nil
		w.healAll()
	case "slow":
		lat, jit := int64(f.Latency), int64(f.LatencyJitter)
		for _, n := range nodes {
			n.slow += lat
			n.slowJitter += jit
		}
		end = func() {
			for _, n := range nodes {
				n.slow -= lat
				n.slowJitter -= jit
			}
		}
	case "clock-offset":
		for _, n := range nodes {
			n.clk.step(w.now, int64(f.Offset))
		}
		end = func() {
			for _, n := range nodes {
				n.clk.step(w.now, -int64(f.Offset))
			}
		}
	case "clock-step":
		for _, n := range nodes {
			n.clk.step(w.now, int64(f.Offset))
		}
	case "clock-drift", "server-clock":
		for _, n := range nodes {
			n.clk.step(w.now, int64(f.Offset))
			if f.Drift != 0 {
				n.clk.setDrift(w.now, f.Drift)
			}
		}
		end = func() {
			for _, n := range nodes {
				n.clk.step(w.now, -int64(f.Offset))
				if f.Drift != 0 {
					n.clk.setDrift(w.now, 0)
				}
			}
		}
	case "evict":
		for _, n := range nodes {
			r.be.evict(n)
		}
	case "session-destroy":
		for _, p := range r.procs {
			if slices.Contains(nodes, p.n) {
				r.be.destroySession(p)
			}
		}
	}
	r.be.faultChanged()
	if end != nil && f.For > 0 {
		w.at(w.now+int64(f.For), func() {
			nm.record(f, nodes, "end")
			end()
			r.be.faultChanged()
		})
	}
}
