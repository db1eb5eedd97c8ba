package workload

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	lm "github.com/locksim/locksim/locks/machine"
)

// script is a Rand that hands out the draws a script gives (rand=a,b,…),
// in order; a draw the script did not give, or one out of range, fails
// the test.
type script struct {
	t     *testing.T
	d     *datadriven.TestData
	draws []int64
}

func (s *script) Int64N(n int64) int64 {
	if len(s.draws) == 0 {
		s.d.Fatalf(s.t, "a draw in [0, %d) that the script does not give", n)
	}
	v := s.draws[0]
	s.draws = s.draws[1:]
	if v < 0 || v >= n {
		s.d.Fatalf(s.t, "draw %d out of [0, %d)", v, n)
	}
	return v
}

// TestMachine runs the scripts in testdata: each command is an input, and
// what follows "----" the outputs it must produce. Rewrite the
// expectations after a deliberate change with `go test ./workload
// -rewrite` and read the diff.
//
//	new kind=counter|rotation keys=K,… hold=D[-D] poll=D [read-token]
//	new-list keys=K,… items=N
//	begin | fire [rand=N,…]
//	granted token=N
//	read-done ok value=N | refused | unknown [why=S] [rand=N,…]
//	write-done ok|refused|unknown
//	lost why=S | stop | crash why=S | finish
//	run-done ok|not-acquired|lost|failed|cancelled [why=S] [rand=N,…]
//	inserted ok|refused|unknown [rand=N,…]
//
// A draw not used by the command fails the test too.
func TestMachine(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var (
			m *Machine
			l *List
		)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			args := map[string]string{}
			var flags []string
			for _, a := range d.CmdArgs {
				if len(a.Vals) == 0 {
					flags = append(flags, a.Key)
				} else {
					args[a.Key] = strings.Join(a.Vals, ",")
				}
			}
			flag := func(f string) bool {
				for _, x := range flags {
					if x == f {
						return true
					}
				}
				return false
			}
			dur := func(s string) time.Duration {
				v, err := time.ParseDuration(s)
				if err != nil {
					d.Fatalf(t, "%q: %v", s, err)
				}
				return v
			}
			num := func(k string) int64 {
				v, err := strconv.ParseInt(args[k], 10, 64)
				if err != nil {
					d.Fatalf(t, "%s: %v", k, err)
				}
				return v
			}
			r := &script{t: t, d: d}
			if s, ok := args["rand"]; ok {
				for _, f := range strings.Split(s, ",") {
					v, err := strconv.ParseInt(f, 10, 64)
					if err != nil {
						d.Fatalf(t, "rand: %v", err)
					}
					r.draws = append(r.draws, v)
				}
			}
			var why []byte
			if s, ok := args["why"]; ok {
				why = strconv.AppendQuote(nil, s)
			}
			outcome := func() Outcome {
				switch {
				case flag("ok"):
					return Done
				case flag("refused"):
					return Refused
				case flag("unknown"):
					return Unknown
				}
				d.Fatalf(t, "%s: ok, refused or unknown", d.Cmd)
				return 0
			}
			var out []Output
			switch d.Cmd {
			case "new":
				lo, hi, _ := strings.Cut(args["hold"], "-")
				cfg := Config{Kind: args["kind"], Keys: strings.Split(args["keys"], ","), HoldMin: dur(lo), HoldMax: dur(lo),
					ReadToken: flag("read-token"), Poll: dur(args["poll"])}
				if hi != "" {
					cfg.HoldMax = dur(hi)
				}
				m, l = New(cfg), nil
				return ""
			case "new-list":
				l, m = NewList(ListConfig{Keys: strings.Split(args["keys"], ","), Items: int(num("items"))}), nil
				return ""
			}
			switch {
			case l != nil:
				switch d.Cmd {
				case "begin":
					out = l.Begin(r, nil)
				case "fire":
					out = l.Fire(r, nil)
				case "inserted":
					out = l.Inserted(outcome(), r, nil)
				default:
					d.Fatalf(t, "unknown list command %q", d.Cmd)
				}
			case m != nil:
				switch d.Cmd {
				case "begin":
					out = m.Begin(r, nil)
				case "fire":
					out = m.Fire(r, nil)
				case "granted":
					out = m.Granted(num("token"), nil)
				case "read-done":
					var v int64
					if flag("ok") {
						v = num("value")
					}
					out = m.ReadDone(outcome(), v, why, r, nil)
				case "write-done":
					out = m.WriteDone(outcome(), nil)
				case "lost":
					out = m.Lost(why, nil)
				case "stop":
					out = m.Stop(nil)
				case "crash":
					out = m.Crash(why, nil)
				case "finish":
					out = m.Finish(nil)
				case "run-done":
					res := lm.Result(255)
					for x := lm.OK; x <= lm.Cancelled; x++ {
						if flag(x.String()) {
							res = x
						}
					}
					if res == 255 {
						d.Fatalf(t, "run-done: no result")
					}
					out = m.RunDone(res, why, r, nil)
				default:
					d.Fatalf(t, "unknown command %q", d.Cmd)
				}
			default:
				d.Fatalf(t, "new or new-list first")
			}
			if len(r.draws) > 0 {
				d.Fatalf(t, "draws %v not used", r.draws)
			}
			s := format(out)
			if m != nil {
				s += fmt.Sprintf("holds=%v\n", m.Holds())
			}
			return s
		})
	})
}

func format(out []Output) string {
	var b strings.Builder
	for _, o := range out {
		switch o.Kind {
		case OutEmit:
			e := o.Event
			fmt.Fprintf(&b, "emit %s %s %s", e.Type, e.F, e.Key)
			if e.HasToken {
				fmt.Fprintf(&b, " token=%d", e.Token)
			}
			if e.Value != nil {
				fmt.Fprintf(&b, " value=%s", e.Value)
			}
		case OutAcquire:
			fmt.Fprintf(&b, "acquire %s", o.Key)
		case OutRead:
			fmt.Fprintf(&b, "read %s", o.Key)
			if o.HasToken {
				fmt.Fprintf(&b, " token=%d", o.Token)
			}
		case OutWrite:
			fmt.Fprintf(&b, "write %s token=%d value=%d", o.Key, o.Token, o.Value)
		case OutTimer:
			fmt.Fprintf(&b, "timer %v(true)", o.D)
		case OutSectionDone:
			b.WriteString("section-done")
		case OutInsert:
			fmt.Fprintf(&b, "insert %s item=%s", o.Key, o.Item)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// TestNum: Num is strconv's decimal, and appending to a small one does
// not write into the shared buffer.
func TestNum(t *testing.T) {
	for _, v := range []int64{0, 1, 9, 10, 99, 100, 4095, 4096, 123456, -1, -4096} {
		if got, want := string(Num(v)), strconv.FormatInt(v, 10); got != want {
			t.Fatalf("Num(%d) = %q, want %q", v, got, want)
		}
	}
	_ = append(Num(7), '9')
	if got := string(Num(8)); got != "8" {
		t.Fatalf("after an append to Num(7), Num(8) = %q", got)
	}
}
