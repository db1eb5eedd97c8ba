package hold

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	lm "github.com/locksim/locksim/locks/machine"
)

// TestMachine runs the scripts in testdata: each command is an input, and
// what follows "----" the outputs it must produce. Rewrite the
// expectations after a deliberate change with
// `go test ./locks/machine/hold -rewrite` and read the diff.
//
//	new renew=D ttl=D
//	start | fire | lost | section-done
//	renewed ok|lost|failed|cancelled
//	released ok|lost|failed|cancelled
func TestMachine(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var m *Machine
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			arg := func(k string) string {
				for _, a := range d.CmdArgs {
					if a.Key == k {
						return strings.Join(a.Vals, ",")
					}
				}
				return ""
			}
			result := func() lm.Result {
				for _, a := range d.CmdArgs {
					for r := lm.OK; r <= lm.Cancelled; r++ {
						if a.Key == r.String() {
							return r
						}
					}
				}
				d.Fatalf(t, "%s: no result", d.Cmd)
				return 0
			}
			if d.Cmd != "new" && m == nil {
				d.Fatalf(t, "no machine: new first")
			}
			var out []Output
			switch d.Cmd {
			case "new":
				renew, err1 := time.ParseDuration(arg("renew"))
				ttl, err2 := time.ParseDuration(arg("ttl"))
				if err1 != nil || err2 != nil {
					d.Fatalf(t, "new: renew and ttl: %v %v", err1, err2)
				}
				m = New(Config{RenewEvery: renew, TTL: ttl})
				return ""
			case "start":
				out = m.Start(nil)
			case "fire":
				out = m.Fire(nil)
			case "lost":
				out = m.Lost(nil)
			case "section-done":
				out = m.SectionDone(nil)
			case "renewed":
				out = m.Renewed(result(), nil)
			case "released":
				out = m.Released(result(), nil)
			default:
				d.Fatalf(t, "unknown command %q", d.Cmd)
			}
			return format(out)
		})
	})
}

func format(out []Output) string {
	var b strings.Builder
	for _, o := range out {
		b.WriteString(o.Kind.String())
		switch o.Kind {
		case OutTimer, OutRenew, OutRelease:
			fmt.Fprintf(&b, " %v(%v)", o.D, o.Clock)
		case OutCancel:
			if o.Lost {
				b.WriteString(" lost")
			}
		case OutDone:
			fmt.Fprintf(&b, " %v", o.Result)
		}
		b.WriteByte('\n')
	}
	return b.String()
}
