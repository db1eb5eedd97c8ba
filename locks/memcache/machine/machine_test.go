package machine

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/locksim/locksim/internal/scripttest"
)

// TestMachine runs the scripts in testdata: each command is an input (or
// a setup step), and what follows "----" the outputs it must produce.
// Rewrite the expectations after a deliberate change with
// `go test ./locks/memcache/machine -rewrite` and read the diff.
//
//	new servers=N ttl=D poll=D [wait=D] [retry-dead=D] [timeout=D] [owner=S] [no-failover]
//	candidates key=K [now=D]
//	request id=I kind=acquire|try-acquire key=K [now=D] [nonce=N]
//	request id=I kind=renew|release lease=J [now=D]   (J: the call that was granted)
//	reply id=I stored|not-stored|miss|exists|unreachable|error [now=D]
//	reply id=I hit value=V [cas=N] [now=D]
//	reply id=I number=N [now=D]
//	fire id=I [now=D] [nonce=N]
//	cancel id=I [now=D]
//
// now is the client clock's reading (a duration from 0); it stays at the
// last value given.
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
			var out []Output
			switch d.Cmd {
			case "new":
				cfg := Config{
					Servers:      int(num("servers", 1)),
					NoFailover:   a.Flag("no-failover"),
					RetryDead:    dur("retry-dead", time.Second),
					Timeout:      dur("timeout", 500*time.Millisecond),
					TTL:          dur("ttl", 3*time.Second),
					PollInterval: dur("poll", time.Second),
					WaitTimeout:  dur("wait", 0),
					Owner:        "c1",
				}
				if o, ok := args["owner"]; ok {
					cfg.Owner = o
				}
				m, now = New(cfg), 0
				clear(calls)
				clear(leases)
				return ""
			case "candidates":
				return fmt.Sprint(m.Candidates(StorageKey(args["key"]), now, nil))
			case "request":
				c := &Call{}
				calls[args["id"]] = c
				var r Request
				switch k := args["kind"]; k {
				case "acquire", "try-acquire":
					r = Request{Kind: Acquire, Key: args["key"]}
					if k == "try-acquire" {
						r.Kind = TryAcquire
					}
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
				out = m.Request(c, r, now, num("nonce", 1), nil)
			case "reply":
				var r Reply
				switch {
				case a.Flag("stored"):
					r.Outcome = Stored
				case a.Flag("not-stored"):
					r.Outcome = NotStored
				case a.Flag("miss"):
					r.Outcome = Miss
				case a.Flag("exists"):
					r.Outcome = Exists
				case a.Flag("unreachable"):
					r.Outcome = Unreachable
				case a.Flag("error"):
					r.Outcome = ServerError
				case a.Flag("hit"):
					r = Reply{Outcome: Hit, Value: args["value"], CAS: num("cas", 1)}
				case args["number"] != "":
					r = Reply{Outcome: Number, N: num("number", 0)}
				default:
					d.Fatalf(t, "reply: no outcome")
				}
				out = m.Reply(call(), r, now, nil)
			case "fire":
				out = m.Fire(call(), now, num("nonce", 1), nil)
			case "cancel":
				out = m.Cancel(call(), now, nil)
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
			fmt.Fprintf(&b, "send server=%d %s %s", o.Server, o.Op.Kind, o.Op.Key)
			switch o.Op.Kind {
			case OpAdd:
				fmt.Fprintf(&b, " value=%q exp=%d", o.Op.Data(), o.Op.Exp)
			case OpCas:
				fmt.Fprintf(&b, " value=%q exp=%d cas=%d", o.Op.Value, o.Op.Exp, o.Op.CAS)
			}
			fmt.Fprintf(&b, " timeout=%v(%v)", o.D, o.Clock)
			if o.Detached {
				b.WriteString(" detached")
			}
		case OutTimer:
			fmt.Fprintf(&b, "timer %v(%v)", o.D, o.Clock)
		case OutGrant:
			fmt.Fprintf(&b, "grant key=%s token=%d server=%d", o.Lease.Key, o.Lease.Token, o.Lease.Server)
		case OutLost:
			fmt.Fprintf(&b, "lost: %s", o.LossText("server"+strconv.Itoa(int(o.Server))))
		case OutDead:
			fmt.Fprintf(&b, "dead server=%d until=%v", o.Server, time.Duration(o.Until))
		case OutFail:
			fmt.Fprintf(&b, "fail %s: %s", o.Text, o.Cause)
		case OutDone:
			fmt.Fprintf(&b, "done %s", o.Result)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// TestStorageKey: keys memcached refuses are encoded, long ones hashed.
func TestStorageKey(t *testing.T) {
	for in, want := range map[string]string{
		"locksim-0":              "locksim-0",
		"WidgetMaker Mutex ID":   "WidgetMaker%20Mutex%20ID",
		"a%b\x01":                "a%25b%01",
		strings.Repeat("x", 250): strings.Repeat("x", 250),
	} {
		if got := StorageKey(in); got != want {
			t.Errorf("StorageKey(%q) = %q, want %q", in, got, want)
		}
	}
	long := StorageKey(strings.Repeat("x", 251))
	if !strings.HasPrefix(long, "locksim-sha256-") || len(long) != len("locksim-sha256-")+64 {
		t.Errorf("long key: %q", long)
	}
}

// TestLockValue: the nonce is 16 hex digits after the owner, and Owner
// takes it off again (owners may hold spaces).
func TestLockValue(t *testing.T) {
	v := LockValue("host a:1", 0xabc)
	if v != "host a:1 0000000000000abc" || Owner(v) != "host a:1" {
		t.Fatalf("LockValue = %q, Owner = %q", v, Owner(v))
	}
}

// TestDriverStorage: a driver may give the grant's memory (Request.Lease)
// and the stored value (Reply.Value); the grant is then the same as
// without.
func TestDriverStorage(t *testing.T) {
	grant := func(into *Lease, stored string) *Lease {
		m := New(Config{Servers: 1, TTL: time.Second, Owner: "c1"})
		var c Call
		m.Request(&c, Request{Kind: TryAcquire, Key: "k", Lease: into}, 0, 5, nil)
		m.Reply(&c, Reply{Outcome: Stored, Value: stored}, 0, nil)
		out := m.Reply(&c, Reply{Outcome: Number, N: 3}, 0, nil)
		if len(out) != 2 || out[0].Kind != OutGrant {
			t.Fatalf("outputs %v", out)
		}
		return out[0].Lease
	}
	plain := grant(nil, "")
	var mine Lease
	if got := grant(&mine, LockValue("c1", 5)); got != &mine || *got != *plain {
		t.Fatalf("with the driver's storage: %+v at %p, want %+v at %p", *got, got, *plain, &mine)
	}
	if plain.Value != "c1 0000000000000005" || plain.Token != 3 || plain.StorageKey() != "k" {
		t.Fatalf("grant %+v", *plain)
	}
}
