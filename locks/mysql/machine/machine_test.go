package machine

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/locksim/locksim/internal/scripttest"
)

// TestMachine runs the scripts in testdata: each command is an input (or
// a setup step), and what follows "----" the outputs it must produce.
// Rewrite the expectations after a deliberate change with
// `go test ./locks/mysql/machine -rewrite` and read the diff.
//
//	new [timeout=D] [wait=D] [pooled]
//	request id=I kind=acquire|try-acquire key=K
//	request id=I kind=renew|release lease=J   (J: the call that was granted)
//	reply id=I ok|null|dead|error
//	reply id=I int=N [conn=N]
//	cancel id=I
func TestMachine(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var (
			m      *Machine
			calls  = map[string]*Call{}
			leases = map[string]*Lease{}
		)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			a := scripttest.Parse(t, d)
			args, dur := a.Vals, a.Dur
			num := func(k string) int64 { return a.MustInt(k, args[k]) }
			call := func() *Call {
				c := calls[args["id"]]
				if c == nil {
					d.Fatalf(t, "no call %q", args["id"])
				}
				return c
			}
			var out []Output
			switch d.Cmd {
			case "new":
				m = New(Config{Timeout: dur("timeout", 5*time.Second), WaitTimeout: dur("wait", 0), Pooled: a.Flag("pooled")})
				clear(calls)
				clear(leases)
				return ""
			case "request":
				c := &Call{}
				calls[args["id"]] = c
				var r Request
				switch k := args["kind"]; k {
				case "acquire":
					r = Request{Kind: Acquire, Key: args["key"]}
				case "try-acquire":
					r = Request{Kind: TryAcquire, Key: args["key"]}
				case "renew", "release":
					r = Request{Kind: Renew, Lease: leases[args["lease"]]}
					if k == "release" {
						r.Kind = Release
					}
					if r.Lease == nil {
						d.Fatalf(t, "no lease of %q", args["lease"])
					}
				default:
					d.Fatalf(t, "kind %q", k)
				}
				out = m.Request(c, r, 0, nil)
			case "reply":
				var r Reply
				switch {
				case a.Flag("ok"):
					r.Outcome = OK
				case a.Flag("null"):
					r.Outcome = Null
				case a.Flag("dead"):
					r.Outcome = Dead
				case a.Flag("error"):
					r.Outcome = Error
				case args["int"] != "":
					r = Reply{Outcome: Int, N: num("int")}
					if args["conn"] != "" {
						r.ConnID = num("conn")
					}
				default:
					d.Fatalf(t, "reply: no outcome")
				}
				out = m.Reply(call(), r, 0, nil)
			case "cancel":
				out = m.Cancel(call(), 0, nil)
			default:
				d.Fatalf(t, "unknown command %q", d.Cmd)
			}
			for _, o := range out {
				if o.Kind == OutGrant {
					leases[args["id"]] = o.Lease
				}
			}
			return format(out)
		})
	})
}

// format prints outputs one a line.
func format(out []Output) string {
	var b strings.Builder
	for _, o := range out {
		switch o.Kind {
		case OutSend:
			fmt.Fprintf(&b, "send %s", o.Op.Kind)
			if o.Op.Name != "" {
				fmt.Fprintf(&b, " name=%s", o.Op.Name)
			}
			if o.Op.Kind == OpGetLock {
				fmt.Fprintf(&b, " wait=%g", o.Op.Wait)
			}
			if o.Op.Pooled {
				b.WriteString(" pooled")
			}
			fmt.Fprintf(&b, " timeout=%v(%v)", o.D, o.Clock)
		case OutClose:
			if o.Drop {
				b.WriteString("hang up")
			} else {
				b.WriteString("give back")
			}
		case OutGrant:
			fmt.Fprintf(&b, "grant key=%s token=%d conn=%d", o.Lease.Key, o.Lease.Token, o.Lease.ConnID)
		case OutLost:
			fmt.Fprintf(&b, "lost: %s", o.LossText())
		case OutFail:
			fmt.Fprintf(&b, "fail %s: %s", o.Text, o.Cause)
		case OutDone:
			fmt.Fprintf(&b, "done %s", o.Result)
		}
		b.WriteByte('\n')
	}
	return b.String()
}
