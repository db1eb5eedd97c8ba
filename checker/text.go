package checker

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Summary is the verdict on several histories checked together.
type Summary struct {
	OK              bool        `json:"ok"`
	Events          int         `json:"events"`
	Violations      []Violation `json:"violations"`
	Linearizability []LinResult `json:"linearizability,omitempty"`
	// Liveness is per history and key acquired: figures beside the
	// verdict, never violations (OK and the exit status ignore them).
	Liveness []Liveness `json:"liveness,omitempty"`
	// Empty lists the histories that hold no event at all: nothing was
	// checked there, so no violation says nothing about them. A history
	// read from no file is named "-".
	Empty []string `json:"empty,omitempty"`
}

// Summarize merges per-file results; with more than one file, every
// violation and linearizability result names its file.
func Summarize(files []string, results []Result) Summary {
	s := Summary{OK: true, Violations: []Violation{}}
	for i, r := range results {
		s.Events += r.Events
		if r.Events == 0 {
			name := "-"
			if i < len(files) {
				name = files[i]
			}
			s.Empty = append(s.Empty, name)
		}
		s.OK = s.OK && r.OK()
		for _, v := range r.Violations {
			if len(files) > 1 {
				v.File = files[i]
			}
			s.Violations = append(s.Violations, v)
		}
		for _, l := range r.Linearizability {
			if len(files) > 1 {
				l.File = files[i]
			}
			s.Linearizability = append(s.Linearizability, l)
		}
		for _, l := range r.Liveness {
			if len(files) > 1 {
				l.File = files[i]
			}
			s.Liveness = append(s.Liveness, l)
		}
	}
	return s
}

// WriteText writes the human summary: one line per violation, one per
// linearizability check that is not ok, one per key's liveness figures
// (labelled as such: they are no violation), then a verdict line.
func (s *Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	counts := make(map[Kind]int)
	for _, v := range s.Violations {
		counts[v.Kind]++
		where := ""
		if v.File != "" {
			where = v.File + ": "
		}
		fmt.Fprintf(&b, "%s%s key=%q procs=%s tokens=%s t=%s..%s lines=%s: %s\n",
			where, v.Kind, v.Key, strings.Join(v.Procs, ","), joinInts(v.Tokens), fmtT(v.From), fmtT(v.To), joinInts(v.Lines), v.Detail)
	}
	var illegal, unknown int
	for _, l := range s.Linearizability {
		switch l.Result {
		case LinIllegal:
			illegal++
		case LinUnknown:
			unknown++
		default:
			continue
		}
		where := ""
		if l.File != "" {
			where = l.File + ": "
		}
		fmt.Fprintf(&b, "%slinearizability key=%q model=%s: %s (%d ops)", where, l.Key, l.Model, l.Result, l.Ops)
		if l.HTML != "" {
			fmt.Fprintf(&b, ", see %s", l.HTML)
		}
		b.WriteString("\n")
	}
	for _, l := range s.Liveness {
		where := ""
		if l.File != "" {
			where = l.File + ": "
		}
		fmt.Fprintf(&b, "%sliveness (not a violation) key=%q: %s\n", where, l.Key, LivenessText(l))
	}
	switch {
	case len(s.Violations) > 0 || illegal > 0:
		var parts []string
		for _, k := range Kinds {
			if counts[k] > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", k, counts[k]))
			}
		}
		if illegal > 0 {
			parts = append(parts, fmt.Sprintf("not linearizable %d", illegal))
		}
		if unknown > 0 {
			parts = append(parts, fmt.Sprintf("linearizability unknown %d", unknown))
		}
		fmt.Fprintf(&b, "FAIL: %s in %d events (%s)\n", plural(len(s.Violations), "violation"), s.Events, strings.Join(parts, ", "))
	case unknown > 0:
		fmt.Fprintf(&b, "UNKNOWN: no violation in %d events, but linearizability timed out on %d checks: not shown safe\n", s.Events, unknown)
	case len(s.Empty) > 0 && s.Events == 0:
		fmt.Fprintf(&b, "EMPTY: %s no event: nothing was recorded, so nothing is shown safe\n", emptyList(s.Empty))
	case len(s.Empty) > 0:
		fmt.Fprintf(&b, "EMPTY: no violation in %d events, but %s no event: nothing was recorded there, so not all is shown safe\n", s.Events, emptyList(s.Empty))
	default:
		lin := ""
		if len(s.Linearizability) > 0 {
			lin = fmt.Sprintf(", %d linearizability checks ok", len(s.Linearizability))
		}
		fmt.Fprintf(&b, "OK: no violation in %d events%s\n", s.Events, lin)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// emptyList names the empty histories for the verdict line.
func emptyList(files []string) string {
	if len(files) == 1 {
		return files[0] + " holds"
	}
	return fmt.Sprintf("%d histories (%s) hold", len(files), strings.Join(files, ", "))
}

func joinInts[T int | int64](xs []T) string {
	if len(xs) == 0 {
		return "-"
	}
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprint(x)
	}
	return strings.Join(parts, ",")
}

func fmtT(ns int64) string { return time.Duration(ns).String() }

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
