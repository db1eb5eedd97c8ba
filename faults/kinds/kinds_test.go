package kinds

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeWorld records every operation a kind calls, as "op arg…".
type fakeWorld struct {
	servers, clients []string
	rng              *rand.Rand
	ops              []string
	cuts             map[Link]int
	bounceRestarts   bool // Bounce returns what restarts (as the simulator with for)
}

func newFake() *fakeWorld {
	return &fakeWorld{servers: []string{"s1", "s2", "s3"}, clients: []string{"c1", "c2"},
		rng: rand.New(rand.NewPCG(1, 2)), cuts: map[Link]int{}}
}

func (f *fakeWorld) op(format string, args ...any) {
	f.ops = append(f.ops, fmt.Sprintf(format, args...))
}

func (f *fakeWorld) Servers() []string { return f.servers }
func (f *fakeWorld) Clients() []string { return f.clients }
func (f *fakeWorld) Rand() *rand.Rand  { return f.rng }
func (f *fakeWorld) Record(name string, phase Phase, details map[string]any) {
	f.op("record %s %d %d", name, phase, len(details))
}
func (f *fakeWorld) Pause(n string)   { f.op("pause %s", n) }
func (f *fakeWorld) Resume(n string)  { f.op("resume %s", n) }
func (f *fakeWorld) Kill(n string)    { f.op("kill %s", n) }
func (f *fakeWorld) Restart(n string) { f.op("restart %s", n) }
func (f *fakeWorld) Bounce(ns []string, p Params) func() {
	f.op("bounce %v", ns)
	if f.bounceRestarts {
		return func() { f.op("bounced %v", ns) }
	}
	return nil
}
func (f *fakeWorld) Cut(links []Link) func() {
	f.op("cut %d", len(links))
	for _, l := range links {
		f.cuts[l]++
	}
	return func() {
		f.op("uncut %d", len(links))
		for _, l := range links {
			f.cuts[l]--
		}
	}
}
func (f *fakeWorld) HealAll() { f.op("heal-all"); clear(f.cuts) }
func (f *fakeWorld) Slow(n string, lat, jit time.Duration) func() {
	f.op("slow %s %v %v", n, lat, jit)
	return func() { f.op("unslow %s", n) }
}
func (f *fakeWorld) SkewClock(n string, off time.Duration) func() {
	f.op("skew %s %v", n, off)
	return func() { f.op("unskew %s", n) }
}
func (f *fakeWorld) DriftClock(n string, r float64) func() {
	f.op("drift %s %g", n, r)
	return func() { f.op("undrift %s", n) }
}
func (f *fakeWorld) StepClock(n string, off time.Duration) { f.op("step %s %v", n, off) }
func (f *fakeWorld) SkewServerClock(n string, off time.Duration) func() {
	f.op("server-skew %s %v", n, off)
	return func() { f.op("server-unskew %s", n) }
}
func (f *fakeWorld) Evict(ns []string)           { f.op("evict %v", ns) }
func (f *fakeWorld) DestroySessions(ns []string) { f.op("destroy %v", ns) }

// cut is the links cut now, as "a>b", sorted.
func (f *fakeWorld) cut() []string {
	var out []string
	for l, n := range f.cuts {
		if n > 0 {
			out = append(out, l[0]+">"+l[1])
		}
	}
	slices.Sort(out)
	return out
}

// The registry keeps scenario's list and order of kinds (its error
// messages list them in this order).
func TestNames(t *testing.T) {
	want := []string{"pause", "kill", "restart", "partition", "isolate", "halves", "bridge", "ring", "one-way", "cut-holder", "heal", "slow", "clock-offset", "clock-drift", "clock-step", "server-clock", "evict", "session-destroy"}
	if got := Names(); !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	if _, ok := Lookup("explode"); ok {
		t.Error("Lookup found a kind explode")
	}
}

// Every kind is whole: documented, applied, its fields known to scenario.
func TestKindsWellFormed(t *testing.T) {
	for _, k := range All {
		if got, ok := Lookup(k.Name); !ok || got.Name != k.Name {
			t.Errorf("Lookup(%q) = %v, %v", k.Name, got.Name, ok)
		}
		if k.Doc == "" || k.Apply == nil {
			t.Errorf("%s: no doc or no Apply", k.Name)
		}
		for _, f := range k.Fields {
			if !slices.Contains(ShapeFields, f) {
				t.Errorf("%s takes %q, not among ShapeFields %v", k.Name, f, ShapeFields)
			}
		}
	}
}

// Each kind records its start under its name, acts through the world, and
// its end (if it has one) records Kind.End and then undoes what it did.
func TestApplyRecordsAndEnds(t *testing.T) {
	p := Params{Target: "c1", For: time.Second, Offset: 3 * time.Second, Drift: 0.5, Latency: 20 * time.Millisecond, LatencyJitter: 5 * time.Millisecond}
	for _, k := range All {
		w := newFake()
		w.bounceRestarts = true
		end := k.Apply(w, p, []string{"c1"})
		if len(w.ops) < 2 || !strings.HasPrefix(w.ops[0], "record "+k.Name+" 0 ") {
			t.Errorf("%s: start ops %v, want its start recorded first, then an operation", k.Name, w.ops)
			continue
		}
		if (end == nil) != (k.End == "") {
			t.Errorf("%s: end %v but Kind.End %q", k.Name, end != nil, k.End)
		}
		if end == nil {
			continue
		}
		n := len(w.ops)
		end()
		ops := w.ops[n:]
		if len(ops) < 2 || ops[0] != fmt.Sprintf("record %s 1 0", k.End) {
			t.Errorf("%s: end ops %v, want %q recorded, then an undo", k.Name, ops, k.End)
		}
		if c := w.cut(); len(c) > 0 {
			t.Errorf("%s: still cut after its end: %v", k.Name, c)
		}
	}
}

// A restart whose world restarts by itself (real runs) has no end.
func TestRestartWithoutEnd(t *testing.T) {
	k, _ := Lookup("restart")
	w := newFake()
	if end := k.Apply(w, Params{Target: "s1"}, []string{"s1"}); end != nil {
		t.Errorf("restart returned an end though Bounce restarted: %v", w.ops)
	}
	if want := []string{"record restart 0 0", "bounce [s1]"}; !slices.Equal(w.ops, want) {
		t.Errorf("ops %v, want %v", w.ops, want)
	}
}

// The shapes of the network faults, as real runs cut them.
func TestCutShapes(t *testing.T) {
	cases := []struct {
		kind, target string
		tg           []string
		want         []string
	}{
		{"isolate", "c1", []string{"c1"}, []string{"c1>c2", "c1>s1", "c1>s2", "c1>s3", "c2>c1", "s1>c1", "s2>c1", "s3>c1"}},
		{"partition", "s2", []string{"s2"}, []string{"c1>s2", "c2>s2", "s1>s2", "s2>c1", "s2>c2", "s2>s1", "s2>s3", "s3>s2"}},
		{"cut-holder", "holder", []string{"c2"}, []string{"c1>c2", "c2>c1", "c2>s1", "c2>s2", "c2>s3", "s1>c2", "s2>c2", "s3>c2"}},
		{"one-way", "c1", []string{"c1"}, []string{"c1>c2", "c1>s1", "c1>s2", "c1>s3"}},
		{"bridge", "servers", []string{"s1", "s2", "s3"}, []string{"s1>s3", "s3>s1"}},
		{"ring", "servers", []string{"s1", "s2", "s3"}, []string{"s1>s3", "s3>s1"}},
	}
	for _, c := range cases {
		k, _ := Lookup(c.kind)
		w := newFake()
		k.Apply(w, Params{Target: c.target}, c.tg)
		if got := w.cut(); !slices.Equal(got, c.want) {
			t.Errorf("%s %s: cut %v, want %v", c.kind, c.target, got, c.want)
		}
	}
}

// halves and partition on servers split the servers only, into a minority
// and a majority drawn from the world's random source; clients keep
// every link.
func TestHalvesDrawn(t *testing.T) {
	for _, kind := range []string{"halves", "partition"} {
		k, _ := Lookup(kind)
		minorities := map[string]bool{}
		for seed := uint64(0); seed < 30; seed++ {
			w := newFake()
			w.rng = rand.New(rand.NewPCG(seed, 0))
			k.Apply(w, Params{Target: "servers"}, w.servers)
			cut := w.cut()
			if len(cut) != 4 {
				t.Fatalf("%s seed %d: cut %v, want one server from two, both ways", kind, seed, cut)
			}
			for _, l := range cut {
				if strings.Contains(l, "c") {
					t.Fatalf("%s seed %d: a client's link cut: %v", kind, seed, cut)
				}
			}
			for _, s := range w.servers {
				if strings.Count(strings.Join(cut, " "), s) == 4 {
					minorities[s] = true
				}
			}
		}
		if len(minorities) != 3 {
			t.Errorf("%s: minorities %v over 30 seeds, want every server", kind, minorities)
		}
	}
}

// heal ends every cut, the kinds' and others.
func TestHealAll(t *testing.T) {
	w := newFake()
	k, _ := Lookup("isolate")
	k.Apply(w, Params{Target: "c1"}, []string{"c1"})
	h, _ := Lookup("heal")
	if end := h.Apply(w, Params{}, nil); end != nil {
		t.Error("heal has an end")
	}
	if c := w.cut(); len(c) > 0 {
		t.Errorf("cut after heal: %v", c)
	}
}
