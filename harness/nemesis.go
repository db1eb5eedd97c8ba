package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/locksim/locksim/faults"
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

// apply starts fault f and returns what ends it (nil if nothing does).
func (n *nemesis) apply(ctx context.Context, f scenario.Fault) func() {
	r := n.r
	tg := n.targets(ctx, f.Target)
	info := map[string]any{"target": f.Target, "nodes": tg}
	if f.For > 0 {
		info["for"] = f.For.String()
	}
	if len(tg) == 0 && f.Fault != "heal" && f.Fault != "halves" && f.Fault != "bridge" && f.Fault != "ring" {
		info["skipped"] = "no such target now"
		n.record(f.Fault, info)
		return nil
	}
	switch f.Fault {
	case "pause":
		at := n.r.clock.Now()
		if f.Target == "holder" {
			tg, at = n.pauseHolder(ctx, tg)
			info["nodes"] = tg
		} else {
			for _, t := range tg {
				n.pause(t)
			}
		}
		n.recordAt(at, "pause", info)
		return func() {
			for _, t := range tg {
				n.resume(t)
			}
			n.record("resume", info)
		}
	case "kill":
		n.record("kill", info)
		for _, t := range tg {
			n.kill(t)
		}
		return func() {
			for _, t := range tg {
				n.restart(t)
			}
			n.record("restart", info)
		}
	case "restart":
		n.record("restart", info)
		for _, t := range tg {
			n.kill(t)
			n.restart(t)
		}
		return nil
	case "isolate", "partition", "cut-holder":
		n.record(f.Fault, info)
		if f.Fault == "partition" && (f.Target == "servers" || f.Target == "majority" || f.Target == "minority") {
			h := plan.Halves(n.rng, r.dep.nodeNames())
			info["groups"] = h
			r.net.Partition(h...)
		} else {
			for _, t := range tg {
				r.net.Isolate(t)
			}
		}
		return n.healer(info)
	case "halves":
		h := plan.Halves(n.rng, r.dep.nodeNames())
		info["groups"] = h
		n.record("halves", info)
		r.net.Partition(h...)
		return n.healer(info)
	case "bridge", "ring":
		cuts := plan.BridgeCuts(r.dep.nodeNames())
		if f.Fault == "ring" {
			cuts = plan.RingCuts(r.dep.nodeNames())
		}
		info["cuts"] = cuts
		n.record(f.Fault, info)
		for _, c := range cuts {
			r.net.Cut(c[0], c[1], faults.Both)
		}
		return n.healer(info)
	case "one-way":
		n.record("one-way", info)
		for _, t := range tg {
			for _, o := range r.endpoints() {
				if o != t {
					r.net.Cut(t, o, faults.Forward)
				}
			}
		}
		return n.healer(info)
	case "heal":
		r.net.Heal()
		r.net.Unslow()
		n.record("heal", info)
		return nil
	case "slow":
		info["latency"], info["jitter"] = f.Latency.String(), f.LatencyJitter.String()
		n.record("slow", info)
		for _, t := range tg {
			for _, o := range r.endpoints() {
				if o != t {
					_ = r.net.Slow(t, o, f.Latency, f.LatencyJitter)
				}
			}
		}
		return func() {
			r.net.Unslow()
			n.record("unslow", info)
		}
	case "clock-offset", "clock-drift", "clock-step":
		var cmd, undo string
		switch f.Fault {
		case "clock-offset":
			cmd, undo = "clock offset "+f.Offset.String(), "clock offset 0s"
			info["offset"] = f.Offset.String()
		case "clock-drift":
			cmd, undo = fmt.Sprintf("clock drift %g", f.Drift), "clock drift 0"
			info["drift"] = f.Drift
		case "clock-step":
			cmd = "clock step " + f.Offset.String()
			info["offset"] = f.Offset.String()
		}
		n.record(f.Fault, info)
		for _, t := range tg {
			r.clientCommand(t, cmd)
		}
		if undo == "" {
			return nil
		}
		return func() {
			for _, t := range tg {
				r.clientCommand(t, undo)
			}
			n.record("clock-reset", info)
		}
	case "server-clock":
		info["offset"] = f.Offset.String()
		if r.dep.setServerClock == nil {
			info["skipped"] = fmt.Sprintf("server clock skew not applied to %s", r.dep.kind)
			n.record("server-clock", info)
			return nil
		}
		n.record("server-clock", info)
		for _, t := range tg {
			_ = r.dep.setServerClock(t, f.Offset)
		}
		return func() {
			for _, t := range tg {
				_ = r.dep.setServerClock(t, 0)
			}
			n.record("server-clock-reset", info)
		}
	case "evict":
		n.record("evict", info)
		n.evict(tg)
		return nil
	case "session-destroy":
		n.record("session-destroy", info)
		n.destroySessions(ctx)
		return nil
	}
	info["skipped"] = "unknown fault"
	n.record(f.Fault, info)
	return nil
}

func (n *nemesis) healer(info map[string]any) func() {
	return func() {
		n.r.net.Heal()
		n.record("heal", info)
	}
}

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
