package report

import (
	"encoding/xml"
	"fmt"
	"os"
	"strings"
)

// JUnit XML (the format CI systems display without plugins): one
// <testsuites> holding one <testsuite> per command, one <testcase> per
// cell or history.

// JUnitSuites is the root element of a JUnit file.
type JUnitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr,omitempty"`
	Suites   []JUnitSuite `xml:"testsuite"`
}

// JUnitSuite is one command's test cases.
type JUnitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     string      `xml:"time,attr,omitempty"`
	Cases    []JUnitCase `xml:"testcase"`
}

// JUnitCase is one cell or history. At most one of Failure (a violation,
// or a verdict that changed from the baseline), Error (it could not run)
// and Skipped is set; none means it passed.
type JUnitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr,omitempty"`
	Failure   *JUnitProblem `xml:"failure,omitempty"`
	Error     *JUnitProblem `xml:"error,omitempty"`
	Skipped   *JUnitProblem `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

// JUnitProblem is a failure, an error or a skip: a one-line message (the
// violation kinds) and the details (figures, violations, the replay
// command).
type JUnitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// JUnitTime formats seconds for a time attribute.
func JUnitTime(seconds float64) string { return fmt.Sprintf("%.3f", seconds) }

// WriteJUnit writes one suite named name with cases to path, the totals
// counted from the cases.
func WriteJUnit(path, name string, cases []JUnitCase) error {
	suite := JUnitSuite{Name: name, Tests: len(cases), Cases: cases}
	var total float64
	timed := false
	for _, c := range cases {
		switch {
		case c.Failure != nil:
			suite.Failures++
		case c.Error != nil:
			suite.Errors++
		case c.Skipped != nil:
			suite.Skipped++
		}
		var t float64
		if _, err := fmt.Sscan(c.Time, &t); err == nil {
			total += t
			timed = true
		}
	}
	if timed {
		suite.Time = JUnitTime(total)
	}
	if suite.Cases == nil {
		suite.Cases = []JUnitCase{}
	}
	root := JUnitSuites{Name: name, Tests: suite.Tests, Failures: suite.Failures, Errors: suite.Errors,
		Skipped: suite.Skipped, Time: suite.Time, Suites: []JUnitSuite{suite}}
	b, err := xml.MarshalIndent(root, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append([]byte(xml.Header+string(b)), '\n'), 0o644)
}

// JUnitCases is the comparison s as test cases, one per cell in matrix
// order and one skipped case per cell the mode cannot run. A cell that
// could not run is an error. Without a baseline (changes nil) a cell
// with violations fails; with one, a cell fails only if its verdict is
// among changes, and a violation the baseline expects passes. times, if
// not nil, gives each cell's seconds by SCENARIO/BACKEND.
func JUnitCases(s *Summary, changes []Change, times map[string]float64) []JUnitCase {
	class := "locksim.compare." + s.Mode
	changed := map[string]Change{}
	for _, c := range changes {
		changed[c.Cell] = c
	}
	var out []JUnitCase
	for i := range s.Cells {
		c := &s.Cells[i]
		tc := JUnitCase{Name: c.Name(), Classname: class}
		if t, ok := times[c.Name()]; ok {
			tc.Time = JUnitTime(t)
		}
		details := cellDetails(s.Mode, c)
		ch, isChange := changed[c.Name()]
		switch {
		case c.Error != "":
			tc.Error = &JUnitProblem{Message: c.Error, Type: "error", Text: details}
		case changes != nil && isChange:
			tc.Failure = &JUnitProblem{Message: ch.String(), Type: "baseline", Text: details}
		case changes == nil && len(c.Kinds) > 0:
			tc.Failure = &JUnitProblem{Message: kindsText(c.Kinds), Type: "violation", Text: details}
		default:
			tc.SystemOut = details
		}
		out = append(out, tc)
	}
	for _, k := range s.Skipped {
		out = append(out, JUnitCase{Name: k.Scenario + "/" + k.Backend, Classname: class,
			Skipped: &JUnitProblem{Message: k.Reason}})
	}
	return out
}

// maxJUnitViolations bounds the violations a test case lists.
const maxJUnitViolations = 10

// cellDetails is a cell's verdict for a test case: figures, the replay
// command and the shown run's first violations.
func cellDetails(mode string, c *Cell) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s on %s: %s", c.Scenario, c.Backend, kindsText(c.Kinds))
	if mode == ModeSim {
		fmt.Fprintf(&b, " (%d of %d seeds violating)", c.Violating, c.Seeds)
	}
	b.WriteString("\n")
	for _, k := range c.Kinds {
		if mode == ModeSim {
			fmt.Fprintf(&b, "  %s: %d/%d seeds, %d violations\n", k, c.SeedsWithKind[k], c.Seeds, c.Counts[k])
		} else {
			fmt.Fprintf(&b, "  %s: %d violations\n", k, c.Counts[k])
		}
	}
	for _, n := range c.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	if c.Shown != nil {
		fmt.Fprintf(&b, "replay: %s\n", c.Shown.Replay)
		fmt.Fprintf(&b, "history: %s/%s\n", c.Shown.Dir, HistoryFile)
		for i, v := range c.Shown.Violations {
			if i == maxJUnitViolations {
				fmt.Fprintf(&b, "... and %d more violations in the run\n", len(c.Shown.Violations)-i)
				break
			}
			fmt.Fprintf(&b, "%s key=%q procs=%s lines=%s: %s\n", v.Kind, v.Key, strings.Join(v.Procs, ","), joinLines(v.Lines), v.Detail)
		}
	}
	return b.String()
}

func joinLines(xs []int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprint(x)
	}
	return strings.Join(parts, ",")
}
