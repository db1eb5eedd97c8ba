package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/faults/kinds"
	"github.com/locksim/locksim/faults/plan"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/scenario"
)

// nemesis applies a scenario's fault schedule to one run and records every
// fault it applies, and its end, as nemesis events.
type nemesis struct {
	r   *runState
	rng *rand.Rand

	mu     sync.Mutex
	paused map[string]bool // clients and nodes it paused
	killed map[string]bool // nodes it killed
}

func newNemesis(r *runState, seed uint64) *nemesis {
	return &nemesis{r: r, rng: rand.New(rand.NewPCG(seed, 3)), paused: map[string]bool{}, killed: map[string]bool{}}
}

// record writes a nemesis event.
func (n *nemesis) record(f string, value map[string]any) {
	n.recordAt(n.r.clock.Now(), f, value)
}

// recordAt writes a nemesis event stamped at, which must not be before the
// last nemesis event.
func (n *nemesis) recordAt(at int64, f string, value map[string]any) {
	b, _ := json.Marshal(value)
	e := history.Event{T: at, Proc: history.ProcNemesis, Type: history.Info, F: f, Value: b}
	_ = n.r.nemesisLog.Write(&e)
}

// pauseHolder pauses the client that holds the lock. The holder is known
// from the events read so far, which lag a little behind the clients: once
// paused, a client writes nothing more, so after a moment for its last
// events to arrive the nemesis checks that it still holds the lock, and if
// it released in between, resumes it and tries the next holder. It returns
// the client paused and when.
func (n *nemesis) pauseHolder(ctx context.Context, tg []string) ([]string, int64) {
	for try := 0; ; try++ {
		at := n.r.clock.Now()
		n.pause(tg[0])
		if !sleepCtx(ctx, 100*time.Millisecond) || try >= 20 || slices.Contains(n.r.holders(), tg[0]) {
			return tg, at
		}
		n.resume(tg[0])
		if next := n.targets(ctx, "holder"); len(next) > 0 {
			tg = next
		}
	}
}

// run applies every fault at its time (at[i] for faultsList[i], drawn by
// scenario.Timing) until ctx ends.
func (n *nemesis) run(ctx context.Context, faultsList []scenario.Fault, at []time.Duration) {
	var wg sync.WaitGroup
	start := time.Now()
	for i, f := range faultsList {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !sleepCtx(ctx, at[i]-time.Since(start)) {
				return
			}
			end := n.apply(ctx, f)
			if end == nil {
				return
			}
			if f.For > 0 && sleepCtx(ctx, f.For) {
				end()
			}
		}()
	}
	wg.Wait()
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// targets resolves a fault's target to endpoint names: clients (c1…) and
// server nodes.
func (n *nemesis) targets(ctx context.Context, target string) []string {
	r := n.r
	switch target {
	case "holder":
		// Wait a little for a holder if nobody holds the lock right now.
		for i := 0; i < 100; i++ {
			if h := r.holders(); len(h) > 0 {
				return h[:1]
			}
			if !sleepCtx(ctx, 20*time.Millisecond) {
				return nil
			}
		}
		return nil
	case "leader":
		if r.dep.leader == nil {
			return r.dep.nodeNames()[:1]
		}
		lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if l, err := r.dep.leader(lctx); err == nil {
			return []string{l}
		}
		return nil
	case "clients":
		return r.clientNames()
	case "servers":
		return r.dep.nodeNames()
	case "minority", "majority":
		h := plan.Halves(n.rng, r.dep.nodeNames())
		if target == "minority" {
			return h[0]
		}
		return h[1]
	}
	return []string{target}
}

// apply starts fault f and returns what ends it (nil if nothing does):
// it resolves f's target and carries out its kind (package faults/kinds)
// on the real world of this run.
func (n *nemesis) apply(ctx context.Context, f scenario.Fault) func() {
	tg := n.targets(ctx, f.Target)
	info := map[string]any{"target": f.Target, "nodes": tg}
	if f.For > 0 {
		info["for"] = f.For.String()
	}
	k, ok := kinds.Lookup(f.Fault)
	if !ok {
		info["skipped"] = "unknown fault"
		n.record(f.Fault, info)
		return nil
	}
	if len(tg) == 0 && !k.Untargeted {
		info["skipped"] = "no such target now"
		n.record(f.Fault, info)
		return nil
	}
	if why, ok := registered(n.r.dep.kind).NoFaults[f.Fault]; ok {
		// The registry says the kind does nothing on this backend; the
		// simulator skips it alike, and the verdict's notes say why.
		info["skipped"] = why
		n.record(f.Fault, info)
		return nil
	}
	if f.Fault == "server-clock" && n.r.dep.setServerClock == nil {
		info["offset"] = f.Offset.String()
		info["skipped"] = fmt.Sprintf("server clock skew not applied to %s", n.r.dep.kind)
		n.record(f.Fault, info)
		return nil
	}
	w := &realWorld{n: n, ctx: ctx, info: info}
	if f.Fault == "pause" && f.Target == "holder" {
		// Paused already, and checked to hold the lock still.
		tg, w.at = n.pauseHolder(ctx, tg)
		info["nodes"] = tg
	}
	return k.Apply(w, kinds.Params{Target: f.Target, For: f.For, Offset: f.Offset, Drift: f.Drift,
		Latency: f.Latency, LatencyJitter: f.LatencyJitter}, tg)
}

// realWorld is the world of package faults/kinds for one fault of a real
// run: the run's processes (cluster.Node, client processes) and the
// proxies of its faults.Network.
type realWorld struct {
	n    *nemesis
	ctx  context.Context
	info map[string]any // the fault's nemesis event: target, nodes, for and the kind's details
	at   int64          // when the fault started, if before its start is recorded (a holder's pause)
}

func (w *realWorld) Servers() []string { return w.n.r.dep.nodeNames() }
func (w *realWorld) Clients() []string { return w.n.r.clientNames() }
func (w *realWorld) Rand() *rand.Rand  { return w.n.rng }

func (w *realWorld) Record(name string, phase kinds.Phase, details map[string]any) {
	maps.Copy(w.info, details)
	if phase == kinds.Start && w.at != 0 {
		w.n.recordAt(w.at, name, w.info)
		return
	}
	w.n.record(name, w.info)
}

func (w *realWorld) Pause(t string)   { w.n.pause(t) }
func (w *realWorld) Resume(t string)  { w.n.resume(t) }
func (w *realWorld) Kill(t string)    { w.n.kill(t) }
func (w *realWorld) Restart(t string) { w.n.restart(t) }

// Bounce kills every target and, with p.For, returns what starts them
// again at its end, as the simulator does; without it, it starts each
// again at once (the simulator: 100 ms later, about what killing and
// starting a process takes here).
func (w *realWorld) Bounce(tg []string, p kinds.Params) func() {
	for _, t := range tg {
		w.n.kill(t)
	}
	restart := func() {
		for _, t := range tg {
			w.n.restart(t)
		}
	}
	if p.For > 0 {
		return restart
	}
	restart()
	return nil
}

// Cut cuts the links; what it returns undoes these cuts, and leaves any
// other fault's in force (faults.Network.Uncut), as the simulator does.
func (w *realWorld) Cut(links []kinds.Link) func() {
	for _, l := range links {
		w.n.r.net.Cut(l[0], l[1], faults.Forward)
	}
	return func() {
		for _, l := range links {
			w.n.r.net.Uncut(l[0], l[1], faults.Forward)
		}
	}
}

// HealAll ends every cut; slow links stay slow until their own fault's
// end, as in the simulator.
func (w *realWorld) HealAll() {
	w.n.r.net.Heal()
}

// Slow slows every link between t and the other endpoints; what it
// returns unslows every link of the network.
func (w *realWorld) Slow(t string, latency, jitter time.Duration) func() {
	for _, o := range w.n.r.endpoints() {
		if o != t {
			_ = w.n.r.net.Slow(t, o, latency, jitter)
		}
	}
	return w.n.r.net.Unslow
}

func (w *realWorld) SkewClock(t string, offset time.Duration) func() {
	w.n.r.clientCommand(t, "clock offset "+offset.String())
	return func() { w.n.r.clientCommand(t, "clock offset 0s") }
}

func (w *realWorld) DriftClock(t string, rate float64) func() {
	w.n.r.clientCommand(t, fmt.Sprintf("clock drift %g", rate))
	return func() { w.n.r.clientCommand(t, "clock drift 0") }
}

func (w *realWorld) StepClock(t string, offset time.Duration) {
	w.n.r.clientCommand(t, "clock step "+offset.String())
}

func (w *realWorld) SkewServerClock(t string, offset time.Duration) func() {
	set := w.n.r.dep.setServerClock
	if set == nil {
		return func() {}
	}
	_ = set(t, offset)
	return func() { _ = set(t, 0) }
}

func (w *realWorld) Evict(tg []string)          { w.n.evict(tg) }
func (w *realWorld) DestroySessions(_ []string) { w.n.destroySessions(w.ctx) }

func (n *nemesis) pause(t string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if c := n.r.client(t); c != nil {
		if c.pause() == nil {
			n.paused[t] = true
		}
	} else if node := n.r.dep.node(t); node != nil {
		if node.Pause() == nil {
			n.paused[t] = true
		}
	}
}

func (n *nemesis) resume(t string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.paused[t] {
		return
	}
	delete(n.paused, t)
	if c := n.r.client(t); c != nil {
		_ = c.resume()
	} else if node := n.r.dep.node(t); node != nil {
		_ = node.Resume()
	}
}

func (n *nemesis) kill(t string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if c := n.r.client(t); c != nil {
		// A killed client believes nothing any more: say so in its history,
		// stamped at the kill, once everything it wrote before is read.
		at := n.r.clock.Now()
		c.kill()
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
		}
		e := history.Event{T: at, Proc: t, Type: history.Info, F: history.FLost, Value: []byte(`"killed"`)}
		_ = c.log.Write(&e)
		return
	}
	if node := n.r.dep.node(t); node != nil {
		_ = node.Kill()
		n.killed[t] = true
	}
}

func (n *nemesis) restart(t string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if node := n.r.dep.node(t); node != nil {
		delete(n.killed, t)
		delete(n.paused, t)
		if err := node.Restart(); err != nil {
			n.r.logf("nemesis: restart %s: %v", t, err)
		}
	}
}

// healAll undoes every fault still in force: the end of a run must find
// every process running and every link whole, so that clients can stop.
func (n *nemesis) healAll() {
	n.mu.Lock()
	paused := make([]string, 0, len(n.paused))
	for t := range n.paused {
		paused = append(paused, t)
	}
	n.mu.Unlock()
	slices.Sort(paused)
	for _, t := range paused {
		n.resume(t)
	}
	n.r.net.Heal()
	n.r.net.Unslow()
}

// evict floods memcached servers with junk until their LRU drops the lock
// keys (the servers run with a small memory limit for this).
func (n *nemesis) evict(targets []string) {
	var addrs []string
	for i, name := range n.r.dep.nodeNames() {
		if slices.Contains(targets, name) || slices.Contains(targets, "servers") {
			addrs = append(addrs, n.r.dep.upstreams[i])
		}
	}
	if len(addrs) == 0 {
		addrs = n.r.dep.upstreams
	}
	faults.FloodMemcached(addrs, n.rng.Uint32())
}

// destroySessions destroys the Consul sessions holding the run's keys.
func (n *nemesis) destroySessions(ctx context.Context) {
	c, err := api.NewClient(&api.Config{Address: "http://" + n.r.dep.upstreams[0]})
	if err != nil {
		return
	}
	for _, key := range n.r.keys {
		kv, _, err := c.KV().Get(key, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil || kv == nil || kv.Session == "" {
			continue
		}
		_, _ = c.Session().Destroy(kv.Session, (&api.WriteOptions{}).WithContext(ctx))
	}
}

func (r *runState) endpoints() []string {
	return append(r.clientNames(), r.dep.nodeNames()...)
}

func (r *runState) logf(format string, args ...any) {
	fmt.Fprintln(r.log, Redact(strings.TrimSuffix(fmt.Sprintf(format, args...), "\n")))
}
