package sim

import (
	"strconv"
	"testing"
	"time"
)

// Links keep their state when addNode outgrows the links' array, and a
// new node's links start open.
func TestAddNodeKeepsLinks(t *testing.T) {
	w := newWorld(1, time.Second)
	var ns []*node
	for i := 0; i < 3; i++ {
		ns = append(ns, w.addNode("n"+strconv.Itoa(i)))
	}
	w.block(ns[0], ns[2])
	w.links[1][2].last = 42
	for i := 3; i < 20; i++ {
		ns = append(ns, w.addNode("n"+strconv.Itoa(i)))
	}
	if len(w.links) != 20 {
		t.Fatalf("%d rows of links, want 20", len(w.links))
	}
	for i, row := range w.links {
		if len(row) != 20 {
			t.Fatalf("row %d has %d links, want 20", i, len(row))
		}
	}
	if w.reachable(ns[0], ns[2]) || !w.reachable(ns[0], ns[1]) {
		t.Fatal("the cut 0 -> 2 did not survive the growth, or 0 -> 1 was cut")
	}
	if w.links[1][2].last != 42 {
		t.Fatalf("link 1 -> 2 lost its state: last %d", w.links[1][2].last)
	}
	for i := range ns {
		for j := range ns {
			if l := w.links[i][j]; (i >= 3 || j >= 3) && (l.blocked != 0 || l.last != 0) {
				t.Fatalf("new link %d -> %d not zero: %+v", i, j, l)
			}
		}
	}
	w.block(ns[19], ns[18])
	if w.reachable(ns[18], ns[19]) || !w.reachable(ns[17], ns[19]) {
		t.Fatal("a cut between new nodes reached the wrong link")
	}
	for i, n := range ns {
		if n.id != i || w.nodes[i] != n {
			t.Fatalf("node %d has id %d", i, n.id)
		}
	}
}

// A slow fault adds its latency once per message on every proxied link
// touching a slowed node, with toxiproxy's ±jitter, and never to the
// resource's messages (real clients reach it without a proxy).
func TestSlowDelayAsToxiproxy(t *testing.T) {
	w := newWorld(1, time.Second)
	a, b, c, res := w.addNode("a"), w.addNode("b"), w.addNode("c"), w.addNode("resource")
	res.direct = true
	lat, jit := int64(100*time.Millisecond), int64(20*time.Millisecond)
	for _, n := range []*node{b, c} {
		n.slow, n.slowJitter = lat, jit
	}
	lo, hi := lat, lat
	for range 2000 {
		d := w.slowDelay(a, b)
		lo, hi = min(lo, d), max(hi, d)
		if d < lat-jit || d >= lat+jit {
			t.Fatalf("a -> slowed b: %v, want in [80ms, 120ms)", time.Duration(d))
		}
		if d := w.slowDelay(b, c); d < lat-jit || d >= lat+jit {
			t.Fatalf("slowed b -> slowed c: %v, want the toxic once, in [80ms, 120ms)", time.Duration(d))
		}
		if d := w.slowDelay(b, res); d != 0 {
			t.Fatalf("slowed b -> resource: %v, want 0", time.Duration(d))
		}
		if d := w.slowDelay(a, res); d != 0 {
			t.Fatalf("a -> resource: %v, want 0", time.Duration(d))
		}
	}
	if lo > lat-jit/2 || hi < lat+jit/2 {
		t.Fatalf("2000 draws span [%v, %v], want both sides of the latency", time.Duration(lo), time.Duration(hi))
	}
	b.slow, b.slowJitter = 0, 0
	if d := w.slowDelay(a, b); d != 0 {
		t.Fatalf("after the fault: %v", time.Duration(d))
	}
}
