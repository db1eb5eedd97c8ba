package report

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/locksim/locksim/checker"
	"github.com/locksim/locksim/history"
)

const ms = int64(1_000_000)

func ev(t int64, proc string, typ history.Type, f string, tok int64, value string) history.Event {
	e := history.Event{T: t * ms, Proc: proc, Type: typ, F: f, Key: "k"}
	if tok > 0 {
		e.Token, e.HasToken = tok, true
	}
	if value != "" {
		e.Value = []byte(value)
	}
	if proc == history.ProcNemesis {
		e.Key = ""
	}
	return e
}

// pausedHolder: c1 holds k with token 1 and is paused from 100 ms to
// 600 ms; its lease (TTL 200 ms) runs out at 300 ms; c2 takes k with token
// 2 at 400 ms; c1 learns of the loss at 700 ms; the resource rejects
// c1's stale write at 650 ms.
func pausedHolder() []history.Event {
	return []history.Event{
		ev(0, "c1", history.Invoke, history.FAcquire, 0, ""),
		ev(100, "c1", history.OK, history.FAcquire, 1, ""),
		ev(100, history.ProcNemesis, history.Info, "pause", 0, `{"target":"holder","nodes":["c1"]}`),
		ev(150, "c2", history.Invoke, history.FAcquire, 0, ""),
		ev(400, "c2", history.OK, history.FAcquire, 2, ""),
		ev(500, "c2", history.Invoke, history.FRelease, 2, ""),
		ev(550, "c2", history.OK, history.FRelease, 2, ""),
		ev(600, history.ProcNemesis, history.Info, "resume", 0, `{"target":"holder","nodes":["c1"]}`),
		ev(650, history.ProcResource, history.Info, history.FReject, 1, ""),
		ev(700, "c1", history.Info, history.FLost, 1, ""),
		ev(800, history.ProcNemesis, history.Info, "evict", 0, `{"target":"servers"}`),
		ev(1000, "c10", history.Invoke, history.FAcquire, 0, ""),
		ev(1000, "c10", history.Fail, history.FAcquire, 0, ""),
	}
}

func TestFrameX(t *testing.T) {
	f := Frame{Width: 1000, Left: 100, Right: 100, Start: 0, End: 1000 * ms}
	for _, c := range []struct {
		t    int64
		want float64
	}{{0, 100}, {500 * ms, 500}, {1000 * ms, 900}, {-5 * ms, 100}, {2000 * ms, 900}} {
		if got := f.X(c.t); got != c.want {
			t.Errorf("X(%d) = %v, want %v", c.t, got, c.want)
		}
	}
	if got := (Frame{Left: 7}).X(5); got != 7 {
		t.Errorf("an empty window maps to %v, want Left", got)
	}
	if f.RowY(0) != f.Top || f.RowY(2) != f.Top+2*f.RowHeight {
		t.Error("RowY")
	}
}

func TestBuildTimeline(t *testing.T) {
	tl := BuildTimeline(pausedHolder(), "k", 200*ms)
	if tl.End != 1000*ms {
		t.Errorf("End = %d", tl.End)
	}
	var procs []string
	for _, r := range tl.Rows {
		procs = append(procs, r.Proc)
	}
	if strings.Join(procs, ",") != "c1,c2,c10" {
		t.Errorf("rows %v, want c1,c2,c10 (natural order)", procs)
	}
	c1 := tl.Rows[0].Holds
	if len(c1) != 1 || c1[0] != (Hold{From: 100 * ms, To: 700 * ms, Token: 1, HasToken: true, Expiry: 300 * ms, End: "lost"}) {
		t.Errorf("c1 holds %+v", c1)
	}
	c2 := tl.Rows[1].Holds
	if len(c2) != 1 || c2[0].From != 400*ms || c2[0].To != 500*ms || c2[0].End != "release" || c2[0].Token != 2 {
		t.Errorf("c2 holds %+v", c2)
	}
	if len(tl.Rows[2].Holds) != 0 {
		t.Errorf("a failed acquire made a hold: %+v", tl.Rows[2].Holds)
	}
	if len(tl.Writes) != 1 || tl.Writes[0].Accepted || tl.Writes[0].Token != 1 {
		t.Errorf("writes %+v", tl.Writes)
	}
	want := []Fault{
		{Name: "pause", Target: "holder", Nodes: []string{"c1"}, From: 100 * ms, To: 600 * ms},
		{Name: "evict", Target: "servers", From: 800 * ms, To: 800 * ms},
	}
	if len(tl.Faults) != 2 || tl.Faults[0].Name != want[0].Name || tl.Faults[0].From != want[0].From || tl.Faults[0].To != want[0].To ||
		tl.Faults[1].From != tl.Faults[1].To || tl.Faults[0].Label() != "holder=c1" {
		t.Errorf("faults %+v, want %+v", tl.Faults, want)
	}
}

func TestFaultPeriods(t *testing.T) {
	nem := func(t int64, f, v string) history.Event { return ev(t, history.ProcNemesis, history.Info, f, 0, v) }
	fs := Faults([]history.Event{
		nem(1, "kill", `{"target":"leader","nodes":["etcd2"]}`),
		nem(2, "isolate", `{"target":"etcd1"}`),
		nem(3, "partition", `{"target":"majority"}`),
		nem(4, "restart", `{"target":"leader","nodes":["etcd2"]}`), // ends the kill
		nem(5, "heal", `{"target":"etcd1","phase":"end"}`),         // ends the isolate
		nem(6, "restart", `{"target":"etcd3"}`),                    // a fault of its own
		nem(7, "heal", `{}`),                                       // ends every partition
		nem(8, "pause", `{"target":"c1","skipped":"no such target now"}`),
		nem(9, "slow", `{"target":"clients"}`),
		ev(10, "c1", history.Invoke, history.FRead, 0, ""),
	})
	got := make([]string, len(fs))
	for i, f := range fs {
		got[i] = f.Name + " " + f.Target + " " + itoa(f.From/ms) + ".." + itoa(f.To/ms)
	}
	want := "kill leader 1..4|isolate etcd1 2..5|partition majority 3..7|restart etcd3 6..6|slow clients 9..10"
	if strings.Join(got, "|") != want {
		t.Errorf("faults\n%s\nwant\n%s", strings.Join(got, "|"), want)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func shapes(ss []Shape, class string) []Shape {
	var out []Shape
	for _, s := range ss {
		if s.Class == class {
			out = append(out, s)
		}
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestTimelineLayout(t *testing.T) {
	tl := BuildTimeline(pausedHolder(), "k", 200*ms)
	tl.Highlight = &checker.Violation{Kind: checker.MutualExclusion, Key: "k", Procs: []string{"c2", "c1"}, From: 400 * ms, To: 500 * ms}
	f := Frame{Width: 1100, Left: 50, Right: 50, Top: 20, RowHeight: 30, Start: 0, End: 1000 * ms} // 1 px per ms
	ss := tl.Layout(f)

	// c1's hold: solid from 100 to its lease's end at 300, pale to 700.
	hold := shapes(ss, "hold")
	if len(hold) != 2 {
		t.Fatalf("%d hold bars, want 2", len(hold))
	}
	if h := hold[0]; !near(h.X, 150) || !near(h.W, 200) || !near(h.Y, 24) || !near(h.H, 22) {
		t.Errorf("c1's solid bar %+v", h)
	}
	exp := shapes(ss, "hold-expired")
	if len(exp) != 1 || !near(exp[0].X, 350) || !near(exp[0].W, 400) {
		t.Errorf("c1's pale bar %+v, want x 350 width 400", exp)
	}
	if e := shapes(ss, "expiry"); len(e) != 1 || !near(e[0].X, 350) || !e[0].Line {
		t.Errorf("expiry mark %+v", e)
	}
	// c2's hold, on the second row.
	if h := hold[1]; !near(h.X, 450) || !near(h.W, 100) || !near(h.Y, 54) {
		t.Errorf("c2's bar %+v", h)
	}
	if tok := shapes(ss, "token"); len(tok) != 2 || tok[0].Text != "1" || tok[1].Text != "2" {
		t.Errorf("tokens %+v", tok)
	}
	// The overlap covers rows c1 and c2 (not c10, not the resource), over
	// 400..500 ms.
	ov := shapes(ss, "overlap")
	if len(ov) != 1 || !near(ov[0].X, 450) || !near(ov[0].W, 100) || !near(ov[0].Y, 21) || !near(ov[0].H, 58) {
		t.Errorf("overlap %+v, want x 450 w 100 y 21 h 58", ov)
	}
	// The pause is shaded over every row and the resource's; the evict is
	// a line.
	fa := shapes(ss, "fault")
	if len(fa) != 1 || !near(fa[0].X, 150) || !near(fa[0].W, 500) || !near(fa[0].Y, 20) || !near(fa[0].H, 120) {
		t.Errorf("fault %+v", fa)
	}
	if fi := shapes(ss, "fault-instant"); len(fi) != 1 || !near(fi[0].X, 850) {
		t.Errorf("instant fault %+v", fi)
	}
	// The rejected write sits on the resource row (the fourth).
	if rj := shapes(ss, "reject"); len(rj) != 1 || !near(rj[0].X, 700) || !near(rj[0].Y, 20+3*30+6) {
		t.Errorf("reject %+v", rj)
	}
	if h := tl.Height(f); !near(h, 20+4*30+24) {
		t.Errorf("height %v", h)
	}
	svg := tl.SVG(f)
	if !strings.HasPrefix(svg, `<svg class="timeline"`) || strings.Count(svg, "<rect") != len(shapes(ss, "hold"))+len(exp)+len(ov)+len(fa) {
		t.Errorf("svg: %s", svg)
	}
}

func TestTicks(t *testing.T) {
	if got := ticks(0, 12_000*ms); len(got) != 7 || got[1] != 2000*ms {
		t.Errorf("ticks over 12 s: %v", got)
	}
	if got := ticks(150*ms, 1000*ms); got[0] != 200*ms {
		t.Errorf("ticks start at a round time: %v", got)
	}
}

func TestLatencies(t *testing.T) {
	ls := Latencies(pausedHolder())
	if len(ls) != 3 || ls[1].Proc != "c2" || ls[1].D != 250*ms || ls[2].Outcome != history.Fail {
		t.Fatalf("latencies %+v", ls)
	}
	p := &LatencyPlot{Points: ls, Faults: Faults(pausedHolder()), End: 1000 * ms}
	if p.MaxY() != 300*ms {
		t.Errorf("MaxY = %d, want 300 ms", p.MaxY())
	}
	f := DefaultFrame(0, p.End)
	if y0, yTop := p.Y(f, 0), p.Y(f, p.MaxY()); !near(y0, f.Top+plotHeight) || !near(yTop, f.Top) {
		t.Errorf("y axis %v..%v", y0, yTop)
	}
	ss := p.Layout(f)
	if len(shapes(ss, "pt-ok")) != 2 || len(shapes(ss, "pt-fail")) != 1 || len(shapes(ss, "fault")) != 1 {
		t.Errorf("plot shapes %+v", ss)
	}
}
