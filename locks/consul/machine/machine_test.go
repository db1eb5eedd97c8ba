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
// `go test ./locks/consul/machine -rewrite` and read the diff.
//
//	new mode=seed|ttl [ttl=D] [lock-delay=D] [poll=D] [wait=D]
//	request id=I kind=acquire|try-acquire key=K [now=D]
//	request id=I kind=renew|release|watch lease=J [now=D]   (J: the call that was granted)
//	reply id=I error [now=D]
//	reply id=I ok|false [now=D]                  (acquire, release, renew, destroy, delete)
//	reply id=I session=S [now=D]                 (create)
//	reply id=I missing index=N [now=D]           (get: no such key)
//	reply id=I holder=S|free modify=N [lock=N] [index=N] [now=D]   (get)
//	fire id=I [now=D]
//	cancel id=I [now=D]
//	lose lease=J
//
// now is the client clock's reading (a duration from 0); it stays at the
// last value given. A get's index is its modify index unless given.
func TestMachine(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var (
			m      *Machine
			now    int64
			calls  = map[string]*Call{}
			leases = map[string]*Lease{}
		)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			a := scripttest.Parse(t, d)
			args, dur := a.Vals, a.Dur
			num := a.Uint
			now = int64(dur("now", time.Duration(now)))
			call := func() *Call {
				c := calls[args["id"]]
				if c == nil {
					d.Fatalf(t, "no call %q", args["id"])
				}
				return c
			}
			lease := func() *Lease {
				l := leases[args["lease"]]
				if l == nil {
					d.Fatalf(t, "no lease of %q", args["lease"])
				}
				return l
			}
			var out []Output
			switch d.Cmd {
			case "new":
				cfg := Config{
					TTL:          dur("ttl", 10*time.Second),
					LockDelay:    dur("lock-delay", 0),
					PollInterval: dur("poll", time.Second),
					WaitTimeout:  dur("wait", 0),
					Name:         "locksim c1",
				}
				switch args["mode"] {
				case "seed":
					cfg.Mode = ModeSeed
				case "ttl":
					cfg.Mode = ModeTTL
				default:
					d.Fatalf(t, "mode %q", args["mode"])
				}
				m, now = New(cfg), 0
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
				case "renew":
					r = Request{Kind: Renew, Lease: lease()}
				case "release":
					r = Request{Kind: Release, Lease: lease()}
				case "watch":
					r = Request{Kind: Watch, Lease: lease()}
				default:
					d.Fatalf(t, "kind %q", k)
				}
				out = m.Request(c, r, now, nil)
			case "reply":
				var r Reply
				switch {
				case a.Flag("error"):
					r.Err = true
				case a.Flag("ok"):
					r.OK = true
				case a.Flag("false"):
				case args["session"] != "":
					r.Session = args["session"]
				case a.Flag("missing"):
					r.Index = num("index", 1)
				case args["holder"] != "" || a.Flag("free"):
					r = Reply{Exists: true, Holder: args["holder"], ModifyIndex: num("modify", 1), LockIndex: num("lock", 0)}
					r.Index = num("index", r.ModifyIndex)
				default:
					d.Fatalf(t, "reply: no answer")
				}
				out = m.Reply(call(), r, now, nil)
			case "fire":
				out = m.Fire(call(), now, nil)
			case "cancel":
				out = m.Cancel(call(), now, nil)
			case "lose":
				out = m.Lose(lease(), LossWatch, "", nil)
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
			b.WriteString("send ")
			if o.Background {
				b.WriteString("background ")
			}
			op := o.Op
			b.WriteString(op.Kind.String())
			switch op.Kind {
			case OpCreate:
				if op.Empty {
					b.WriteString(" (empty body)")
				} else {
					fmt.Fprintf(&b, " name=%q ttl=%v lock-delay=%v behavior=release", op.Name, op.TTL, op.LockDelay)
				}
			case OpAcquire, OpRelease:
				fmt.Fprintf(&b, " %s session=%s", op.Key, op.Session)
				if op.Empty {
					b.WriteString(" value=\"\"")
				}
			case OpGet:
				fmt.Fprintf(&b, " %s", op.Key)
				if op.Consistent {
					b.WriteString(" consistent")
				}
				if op.Index > 0 {
					fmt.Fprintf(&b, " index=%d", op.Index)
					if op.Wait > 0 {
						fmt.Fprintf(&b, " wait=%v", op.Wait)
					} else {
						b.WriteString(" wait=default")
					}
				}
			case OpRenew, OpDestroy:
				fmt.Fprintf(&b, " session=%s", op.Session)
			case OpDelete:
				fmt.Fprintf(&b, " %s cas=%d", op.Key, op.Index)
			}
			if o.D > 0 {
				fmt.Fprintf(&b, " timeout=%v(%v)", o.D, o.Clock)
			}
		case OutTimer:
			fmt.Fprintf(&b, "timer %v(%v)", o.D, o.Clock)
		case OutGrant:
			fmt.Fprintf(&b, "grant key=%s session=%s token=%d lock-index=%d index=%d", o.Lease.Key, o.Lease.Session, o.Lease.Token, o.Lease.LockIndex, o.Lease.Index)
		case OutLost:
			fmt.Fprintf(&b, "lost: %s", o.LossText(""))
		case OutFail:
			fmt.Fprintf(&b, "fail %s: %s", o.Text, o.Cause)
		case OutDone:
			fmt.Fprintf(&b, "done %s", o.Result)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// TestLoss: what a read of the key says of a session's hold.
func TestLoss(t *testing.T) {
	for _, c := range []struct {
		exists         bool
		holder, reason string
	}{
		{false, "", "key deleted"},
		{true, "", "no active session"},
		{true, "s2", "taken by session s2"},
		{true, "s1", ""},
	} {
		reason, text, ok := Loss(c.exists, c.holder, "s1")
		got := ""
		if !ok {
			o := Output{Kind: OutLost, Reason: reason, Text: text}
			got = o.LossText("")
		}
		if got != c.reason {
			t.Errorf("Loss(%v, %q): %q, want %q", c.exists, c.holder, got, c.reason)
		}
	}
}
