package report

import (
	"fmt"
	"strings"

	"github.com/locksim/locksim/history"
)

// Latency is one acquire: when it was invoked, how long until it completed,
// and how (ok, fail or info).
type Latency struct {
	Proc    string
	T, D    int64 // invoke time and duration, ns
	Outcome history.Type
}

// Latencies returns every completed acquire of a history, in order of
// completion.
func Latencies(events []history.Event) []Latency {
	open := map[string]int64{}
	var out []Latency
	for i := range events {
		e := &events[i]
		if e.F != history.FAcquire {
			continue
		}
		if e.Type == history.Invoke {
			open[e.Proc] = e.T
			continue
		}
		if t, ok := open[e.Proc]; ok {
			delete(open, e.Proc)
			out = append(out, Latency{Proc: e.Proc, T: t, D: e.T - t, Outcome: e.Type})
		}
	}
	return out
}

// LatencyPlot is acquire latency over time with the faults shaded.
type LatencyPlot struct {
	Points     []Latency
	Faults     []Fault
	Start, End int64
}

// plotHeight is the height of the plotting area of a LatencyPlot.
const plotHeight = 140

// MaxY is the top of the latency axis: a round value at or above the
// largest latency (1 ms at least).
func (p *LatencyPlot) MaxY() int64 {
	var m int64 = 1_000_000
	for _, l := range p.Points {
		m = max(m, l.D)
	}
	step := niceStep(m, 4)
	return (m + step - 1) / step * step
}

// Y is the vertical position of latency d in frame f.
func (p *LatencyPlot) Y(f Frame, d int64) float64 {
	top := p.MaxY()
	return f.Top + plotHeight - float64(min(d, top))/float64(top)*plotHeight
}

// Layout places the plot's shapes in frame f: fault periods, one small
// mark per acquire (class ok, fail or info), the axes and their labels.
func (p *LatencyPlot) Layout(f Frame) []Shape {
	var out []Shape
	for _, ft := range p.Faults {
		x0, x1 := f.X(ft.From), f.X(ft.To)
		title := fmt.Sprintf("%s %s %s..%s", ft.Name, ft.Label(), fmtNs(ft.From), fmtNs(ft.To))
		if ft.From == ft.To {
			out = append(out, Shape{Class: "fault-instant", X: x0, Y: f.Top, H: plotHeight, Line: true, Title: title})
		} else {
			out = append(out, Shape{Class: "fault", X: x0, Y: f.Top, W: x1 - x0, H: plotHeight, Title: title})
		}
		out = append(out, Shape{Class: "fault-label", X: x0 + 2, Y: f.Top - 4, Text: strings.TrimSpace(ft.Name + " " + ft.Label())})
	}
	for _, l := range p.Points {
		x, y := f.X(l.T), p.Y(f, l.D)
		out = append(out, Shape{Class: "pt-" + string(l.Outcome), X: x - 2, Y: y - 2, W: 4, H: 4,
			Title: fmt.Sprintf("%s acquire at %s: %s after %.1f ms", l.Proc, fmtNs(l.T), l.Outcome, float64(l.D)/1e6)})
	}
	bottom := f.Top + plotHeight
	out = append(out,
		Shape{Class: "axis", X: f.Left, Y: bottom, W: f.Width - f.Left - f.Right, Line: true},
		Shape{Class: "axis", X: f.Left, Y: f.Top, H: plotHeight, Line: true})
	top := p.MaxY()
	step := niceStep(top, 4)
	for d := int64(0); d <= top; d += step {
		y := p.Y(f, d)
		out = append(out,
			Shape{Class: "grid", X: f.Left, Y: y, W: f.Width - f.Left - f.Right, Line: true},
			Shape{Class: "tick-label", X: 4, Y: y + 4, Text: fmtMs(d)})
	}
	for _, t := range ticks(f.Start, f.End) {
		x := f.X(t)
		out = append(out,
			Shape{Class: "tick", X: x, Y: bottom, H: 4, Line: true},
			Shape{Class: "tick-label", X: x - 8, Y: bottom + 16, Text: fmtSeconds(t)})
	}
	return out
}

// SVG draws the plot as an inline SVG element.
func (p *LatencyPlot) SVG() string {
	f := DefaultFrame(p.Start, p.End)
	return svg(f.Width, f.Top+plotHeight+24, "latency", p.Layout(f))
}

func fmtMs(ns int64) string {
	if ns >= 1e9 {
		return fmt.Sprintf("%gs", float64(ns)/1e9)
	}
	return fmt.Sprintf("%gms", float64(ns)/1e6)
}
