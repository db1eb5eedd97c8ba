package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/locksim/locksim/checker"
	"github.com/locksim/locksim/history"
)

// Timeline is what a counterexample's picture shows for one key: each
// proc's holds, the faults, the resource's decisions and the violation.
type Timeline struct {
	Key        string
	Start, End int64 // ns: the window drawn
	Rows       []Row
	Faults     []Fault
	Writes     []Write
	// Highlight is the violation: its window on the rows of its procs.
	Highlight *checker.Violation
}

// Row is one proc's holds of the key.
type Row struct {
	Proc  string
	Holds []Hold
}

// Hold is one belief of holding the lock, from the acquire's ok until the
// release was invoked, the proc learnt the lock was lost, or the history
// ended.
type Hold struct {
	From, To int64
	Token    int64
	HasToken bool
	// Expiry is when the lease ran out unless it was renewed in a way the
	// history does not show: the ok of the last acquire or renew, plus the
	// TTL. 0 when the TTL is not known. Clients that renew without
	// recording it (locks.Run's renewer) keep their lease past it; a
	// holder that was paused or cut off did not.
	Expiry int64
	// End says how the belief ended: "release", "lost" or "end".
	End string
}

// Fault is a nemesis fault: a period from its start to the event that
// ends it (or the end of the history), or an instant (From == To).
type Fault struct {
	Name     string   // pause, partition, ...
	Target   string   // as the scenario names it: holder, leader, c1, ...
	Nodes    []string // the nodes it hit, if recorded
	From, To int64
}

// Write is one decision of the fenced resource on the key.
type Write struct {
	T        int64
	Token    int64
	Accepted bool
}

// ReadHistory reads a whole history file.
func ReadHistory(path string) ([]history.Event, error) {
	r, err := history.Open(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return history.ReadAll(r)
}

// readHistory is ReadHistory, but a missing file is no history.
func readHistory(path string) ([]history.Event, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return ReadHistory(path)
}

// faultEnds maps the nemesis event that ends a fault to the faults it ends,
// as harness/ and sim/ name them.
var faultEnds = map[string][]string{
	"resume":             {"pause"},
	"restart":            {"kill"},
	"unslow":             {"slow"},
	"clock-reset":        {"clock-offset", "clock-drift"},
	"server-clock-reset": {"server-clock"},
	"heal":               {"partition", "isolate", "halves", "bridge", "ring", "one-way", "cut-holder"},
}

// instantFaults have no duration.
var instantFaults = map[string]bool{"restart": true, "evict": true, "session-destroy": true, "clock-step": true}

// Faults returns the nemesis faults of a history as periods and instants,
// in order of start.
func Faults(events []history.Event) []Fault {
	var out []Fault
	var open []int // indexes into out
	var end int64
	for i := range events {
		e := &events[i]
		end = max(end, e.T)
		if e.Proc != history.ProcNemesis {
			continue
		}
		var v struct {
			Target  string   `json:"target"`
			Nodes   []string `json:"nodes"`
			Phase   string   `json:"phase"`
			Skipped string   `json:"skipped"`
		}
		_ = json.Unmarshal(e.Value, &v)
		if v.Skipped != "" {
			continue
		}
		if ends, ok := faultEnds[e.F]; ok && (v.Phase != "start" || e.F == "heal") {
			closed := false
			for j, k := range open {
				if contains(ends, out[k].Name) && out[k].Target == v.Target {
					out[k].To = e.T
					open = append(open[:j], open[j+1:]...)
					closed = true
					break
				}
			}
			if !closed && e.F == "heal" { // a heal fault: every partition ends
				var keep []int
				for _, k := range open {
					if contains(ends, out[k].Name) {
						out[k].To = e.T
					} else {
						keep = append(keep, k)
					}
				}
				open = keep
				continue
			}
			if closed || e.F != "restart" { // a restart that ends no kill is a fault of its own
				continue
			}
		}
		out = append(out, Fault{Name: e.F, Target: v.Target, Nodes: v.Nodes, From: e.T, To: e.T})
		if !instantFaults[e.F] {
			open = append(open, len(out)-1)
		}
	}
	for _, k := range open {
		out[k].To = max(end, out[k].From)
	}
	return out
}

// Label is the fault's target and the nodes it hit: "holder=c1".
func (ft Fault) Label() string {
	nodes := strings.Join(ft.Nodes, ",")
	switch {
	case nodes == "" || nodes == ft.Target:
		return ft.Target
	case ft.Target == "":
		return nodes
	}
	return ft.Target + "=" + nodes
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// BuildTimeline draws key's history: holds per client proc (in natural
// order: c2 before c10), faults, the resource's decisions. ttl (ns, 0 if
// unknown) places each hold's earliest lease expiry. The window is the
// whole history.
func BuildTimeline(events []history.Event, key string, ttl int64) *Timeline {
	tl := &Timeline{Key: key}
	type procState struct {
		row  *Row
		open *Hold
	}
	procs := map[string]*procState{}
	proc := func(p string) *procState {
		ps := procs[p]
		if ps == nil {
			ps = &procState{row: &Row{Proc: p}}
			procs[p] = ps
		}
		return ps
	}
	closeHold := func(ps *procState, t int64, how string) {
		if ps.open == nil {
			return
		}
		ps.open.To, ps.open.End = t, how
		ps.row.Holds = append(ps.row.Holds, *ps.open)
		ps.open = nil
	}
	for i := range events {
		e := &events[i]
		tl.End = max(tl.End, e.T)
		switch e.Proc {
		case history.ProcNemesis:
			continue
		case history.ProcResource:
			if e.Key == key && (e.F == history.FAccept || e.F == history.FReject) {
				tl.Writes = append(tl.Writes, Write{T: e.T, Token: e.Token, Accepted: e.F == history.FAccept})
			}
			continue
		}
		if e.Key != "" && e.Key != key {
			continue
		}
		ps := proc(e.Proc)
		switch {
		case e.Type == history.Invoke && e.F == history.FRelease:
			closeHold(ps, e.T, "release")
		case e.F == history.FLost:
			closeHold(ps, e.T, "lost")
		case e.F == history.FAcquire && e.Type == history.OK:
			closeHold(ps, e.T, "release")
			ps.open = &Hold{From: e.T, Token: e.Token, HasToken: e.HasToken}
			if ttl > 0 {
				ps.open.Expiry = e.T + ttl
			}
		case e.F == history.FRenew && e.Type == history.OK:
			if ps.open != nil && ttl > 0 {
				ps.open.Expiry = e.T + ttl
			}
		}
	}
	names := make([]string, 0, len(procs))
	for p, ps := range procs {
		closeHold(ps, tl.End, "end")
		names = append(names, p)
	}
	sort.Slice(names, func(i, j int) bool { return naturalLess(names[i], names[j]) })
	for _, p := range names {
		tl.Rows = append(tl.Rows, *procs[p].row)
	}
	tl.Faults = Faults(events)
	return tl
}

// naturalLess orders c2 before c10.
func naturalLess(a, b string) bool {
	pa, na := splitNum(a)
	pb, nb := splitNum(b)
	if pa != pb {
		return pa < pb
	}
	if na != nb {
		return na < nb
	}
	return a < b
}

func splitNum(s string) (string, int) {
	i := len(s)
	for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
		i--
	}
	n, _ := strconv.Atoi(s[i:])
	return s[:i], n
}

// Frame maps a timeline onto a drawing: time runs left to right between
// Left and Width-Right, rows stack down from Top.
type Frame struct {
	Width, Left, Right float64
	Top, RowHeight     float64
	Start, End         int64
}

// DefaultFrame is the frame of the report's timelines over [start, end].
func DefaultFrame(start, end int64) Frame {
	return Frame{Width: 960, Left: 70, Right: 20, Top: 24, RowHeight: 28, Start: start, End: end}
}

// X is the horizontal position of time t (ns), clamped to the frame.
func (f Frame) X(t int64) float64 {
	span := f.End - f.Start
	if span <= 0 {
		return f.Left
	}
	t = min(max(t, f.Start), f.End)
	return f.Left + float64(t-f.Start)/float64(span)*(f.Width-f.Left-f.Right)
}

// RowY is the top of row i.
func (f Frame) RowY(i int) float64 { return f.Top + float64(i)*f.RowHeight }

// Shape is one element of a drawing: a rectangle (W, H > 0), a line from
// (X, Y) to (X+W, Y+H) when Line is set, or a text at (X, Y).
type Shape struct {
	Class      string // the CSS class: hold, hold-expired, fault, overlap, accept, reject, label, axis, ...
	X, Y, W, H float64
	Line       bool
	Text       string // the text drawn, for texts
	Title      string // the tooltip
}

// Layout places the timeline's shapes in frame f, back to front: faults,
// holds (solid until the lease ran out, pale after), tokens,
// the resource's decisions on the bottom row, the violating overlap, the
// proc labels and the time axis. Its height is Height(f).
func (tl *Timeline) Layout(f Frame) []Shape {
	var out []Shape
	rows := len(tl.Rows) + 1 // the resource row
	h := float64(rows) * f.RowHeight
	for _, ft := range tl.Faults {
		x0, x1 := f.X(ft.From), f.X(ft.To)
		title := fmt.Sprintf("%s %s %s..%s", ft.Name, ft.Label(), fmtNs(ft.From), fmtNs(ft.To))
		if ft.From == ft.To {
			out = append(out, Shape{Class: "fault-instant", X: x0, Y: f.Top, H: h, Line: true, Title: title})
		} else {
			out = append(out, Shape{Class: "fault", X: x0, Y: f.Top, W: x1 - x0, H: h, Title: title})
		}
		out = append(out, Shape{Class: "fault-label", X: x0 + 2, Y: f.Top - 4, Text: strings.TrimSpace(ft.Name + " " + ft.Label())})
	}
	for i, r := range tl.Rows {
		y := f.RowY(i) + 4
		bh := f.RowHeight - 8
		for _, hd := range r.Holds {
			x0, x1 := f.X(hd.From), f.X(hd.To)
			tok := "-"
			if hd.HasToken {
				tok = strconv.FormatInt(hd.Token, 10)
			}
			title := fmt.Sprintf("%s holds %s, token %s, %s..%s (%s)", r.Proc, tl.Key, tok, fmtNs(hd.From), fmtNs(hd.To), hd.End)
			if hd.Expiry > 0 && hd.Expiry < hd.To {
				xe := f.X(max(hd.Expiry, hd.From))
				out = append(out,
					Shape{Class: "hold", X: x0, Y: y, W: xe - x0, H: bh, Title: title},
					Shape{Class: "hold-expired", X: xe, Y: y, W: x1 - xe, H: bh, Title: title + "; its lease ran out at " + fmtNs(hd.Expiry)},
					Shape{Class: "expiry", X: xe, Y: y - 2, H: bh + 4, Line: true, Title: "lease ran out (unless renewed unrecorded) at " + fmtNs(hd.Expiry)})
			} else {
				out = append(out, Shape{Class: "hold", X: x0, Y: y, W: max(x1-x0, 1), H: bh, Title: title})
			}
			if hd.HasToken && x1-x0 >= 14 {
				out = append(out, Shape{Class: "token", X: x0 + 3, Y: y + bh - 6, Text: tok})
			}
		}
		out = append(out, Shape{Class: "label", X: 6, Y: f.RowY(i) + f.RowHeight/2 + 4, Text: r.Proc})
	}
	ry := f.RowY(len(tl.Rows))
	for _, w := range tl.Writes {
		cls, verb := "accept", "accepted"
		if !w.Accepted {
			cls, verb = "reject", "rejected"
		}
		out = append(out, Shape{Class: cls, X: f.X(w.T), Y: ry + 6, H: f.RowHeight - 12, Line: true,
			Title: fmt.Sprintf("resource %s token %d at %s", verb, w.Token, fmtNs(w.T))})
	}
	out = append(out, Shape{Class: "label", X: 6, Y: ry + f.RowHeight/2 + 4, Text: "resource"})
	if v := tl.Highlight; v != nil {
		lo, hi := -1, -1
		for i, r := range tl.Rows {
			if contains(v.Procs, r.Proc) {
				if lo < 0 {
					lo = i
				}
				hi = i
			}
		}
		if lo < 0 {
			lo, hi = 0, rows-1
		}
		x0, x1 := f.X(v.From), f.X(v.To)
		out = append(out, Shape{Class: "overlap", X: x0, Y: f.RowY(lo) + 1, W: max(x1-x0, 2), H: float64(hi-lo+1)*f.RowHeight - 2,
			Title: fmt.Sprintf("%s: %s", v.Kind, v.Detail)})
	}
	axisY := f.Top + h
	out = append(out, Shape{Class: "axis", X: f.Left, Y: axisY, W: f.Width - f.Left - f.Right, Line: true})
	for _, t := range ticks(f.Start, f.End) {
		x := f.X(t)
		out = append(out,
			Shape{Class: "tick", X: x, Y: axisY, H: 4, Line: true},
			Shape{Class: "tick-label", X: x - 8, Y: axisY + 16, Text: fmtSeconds(t)})
	}
	return out
}

// Height is the drawing's height in frame f.
func (tl *Timeline) Height(f Frame) float64 {
	return f.Top + float64(len(tl.Rows)+1)*f.RowHeight + 24
}

// SVG draws the timeline as an inline SVG element.
func (tl *Timeline) SVG(f Frame) string {
	return svg(f.Width, tl.Height(f), "timeline", tl.Layout(f))
}

// svg renders shapes.
func svg(w, h float64, class string, shapes []Shape) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="%s" xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" viewBox="0 0 %s %s">`, class, num(w), num(h), num(w), num(h))
	for _, s := range shapes {
		title := ""
		if s.Title != "" {
			title = "<title>" + esc(s.Title) + "</title>"
		}
		switch {
		case s.Text != "":
			fmt.Fprintf(&b, `<text class="%s" x="%s" y="%s">%s%s</text>`, s.Class, num(s.X), num(s.Y), title, esc(s.Text))
		case s.Line:
			fmt.Fprintf(&b, `<line class="%s" x1="%s" y1="%s" x2="%s" y2="%s">%s</line>`, s.Class, num(s.X), num(s.Y), num(s.X+s.W), num(s.Y+s.H), title)
		default:
			fmt.Fprintf(&b, `<rect class="%s" x="%s" y="%s" width="%s" height="%s">%s</rect>`, s.Class, num(s.X), num(s.Y), num(s.W), num(s.H), title)
		}
	}
	b.WriteString("</svg>")
	return b.String()
}

func num(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) }

var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")

func esc(s string) string { return escaper.Replace(s) }

// ticks returns round times between start and end, about ten of them.
func ticks(start, end int64) []int64 {
	span := end - start
	if span <= 0 {
		return nil
	}
	step := niceStep(span, 10)
	var out []int64
	for t := (start + step - 1) / step * step; t <= end; t += step {
		out = append(out, t)
	}
	return out
}

// niceStep is the smallest of 1, 2, 5 × 10^k that cuts span into at most
// n steps.
func niceStep(span, n int64) int64 {
	for s := int64(1); ; s *= 10 {
		for _, m := range []int64{1, 2, 5} {
			if span/(s*m) <= n {
				return s * m
			}
		}
	}
}

func fmtSeconds(ns int64) string {
	return strconv.FormatFloat(float64(ns)/1e9, 'f', -1, 64) + "s"
}

func fmtNs(ns int64) string {
	return strconv.FormatFloat(float64(ns)/1e9, 'f', 3, 64) + "s"
}
