package machine

import (
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/locksim/locksim/internal/scripttest"
)

// TestMachine runs the scripts in testdata: each command is an input (or
// a setup step), and what follows "----" the outputs it must produce.
// Rewrite the expectations after a deliberate change with
// `go test ./locks/megamutex/machine -rewrite` and read the diff.
//
//	new servers=A,B,... [ttl=D] [wait=D] [no-failover] [pid=N]
//	order key=K
//	request id=I kind=acquire|try-acquire key=K [now=D] [unix=N]
//	request id=I kind=release lease=J [now=D]   (J: the call that was granted)
//	reply id=I ok|miss|not-stored|timeout|broken|error [now=D]
//	reply id=I hit value=V [now=D]
//	fire id=I [now=D]
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
			// Ruby's object ids: a new one at every acquire (a new
			// DistributedMutex per request), 16, 24, ...
			objectID uint64
		)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			a := scripttest.Parse(t, d)
			args, dur := a.Vals, a.Dur
			num := a.Int
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
				objectID = 8
				m = New(Config{
					Servers:     strings.Split(args["servers"], ","),
					NoFailover:  a.Flag("no-failover"),
					TTL:         dur("ttl", 0),
					WaitTimeout: dur("wait", 0),
					PID:         int(num("pid", 4242)),
				})
				now = 0
				clear(calls)
				clear(leases)
				return ""
			case "order":
				return fmt.Sprint(m.Order(m.CacheKey(args["key"])))
			case "request":
				c := &Call{}
				calls[args["id"]] = c
				var r Request
				if args["kind"] != "release" {
					objectID += 8
				}
				switch k := args["kind"]; k {
				case "acquire":
					r = Request{Kind: Acquire, Key: args["key"], Unix: num("unix", 1265500000), ObjectID: objectID}
				case "try-acquire":
					r = Request{Kind: TryAcquire, Key: args["key"], Unix: num("unix", 1265500000), ObjectID: objectID}
				case "release":
					r = Request{Kind: Release, Lease: leases[args["lease"]]}
					if r.Lease == nil {
						d.Fatalf(t, "no lease of %q", args["lease"])
					}
				default:
					d.Fatalf(t, "kind %q", k)
				}
				out = m.Request(c, r, now, nil)
			case "reply":
				var r Reply
				switch {
				case a.Flag("ok"):
					r.Outcome = OK
				case a.Flag("miss"):
					r.Outcome = Miss
				case a.Flag("not-stored"):
					r.Outcome = NotStored
				case a.Flag("timeout"):
					r.Outcome = TimedOut
				case a.Flag("broken"):
					r.Outcome = Broken
				case a.Flag("error"):
					r.Outcome = ServerError
				case a.Flag("hit"):
					r = Reply{Outcome: Hit, Value: args["value"]}
				default:
					d.Fatalf(t, "reply: no outcome")
				}
				out = m.Reply(call(), r, now, nil)
			case "fire":
				out = m.Fire(call(), now, nil)
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
			fmt.Fprintf(&b, "send server=%d %s", o.Server, o.Op.Kind)
			if o.Op.Kind != OpConnect {
				fmt.Fprintf(&b, " %s", o.Op.Key)
			}
			if o.Op.Kind == OpAdd {
				fmt.Fprintf(&b, " value=%q exp=%d", o.Op.Value, o.Op.Exp)
			}
			fmt.Fprintf(&b, " timeout=%v(%v)", o.D, o.Clock)
			if o.Detached {
				b.WriteString(" detached")
			}
		case OutTimer:
			fmt.Fprintf(&b, "timer %v(%v)", o.D, o.Clock)
		case OutGrant:
			fmt.Fprintf(&b, "grant key=%s id=%s", o.Lease.Key, o.Lease.ID)
		case OutDead:
			fmt.Fprintf(&b, "dead server=%d until=%v", o.Server, time.Duration(o.Until))
		case OutFail:
			fmt.Fprintf(&b, "fail %s: %s", o.Text, o.Cause)
		case OutNotOurs:
			fmt.Fprintf(&b, "not ours: %q", o.Text)
		case OutDone:
			fmt.Fprintf(&b, "done %s", o.Result)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// TestContinuum: memcache-client's continuum has floor(n*160*w/total)
// points per server, sorted, and the lookup takes the last point at or
// below the hash, wrapping to the last point below the first.
func TestContinuum(t *testing.T) {
	servers := []string{"10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"}
	c := Continuum(servers, []int{1, 2, 1})
	count := map[int32]int{}
	for i, p := range c {
		count[p.server]++
		if i > 0 && c[i-1].value > p.value {
			t.Fatalf("not sorted at %d", i)
		}
	}
	// 3*160*1/4 = 120, 3*160*2/4 = 240.
	if count[0] != 120 || count[1] != 240 || count[2] != 120 {
		t.Fatalf("points per server %v", count)
	}
	m := New(Config{Servers: servers, Weights: []int{1, 2, 1}})
	if got, want := m.lookup(c[0].value-1), int(c[len(c)-1].server); c[0].value > 0 && got != want {
		t.Fatalf("below the first point: server %d, want the last point's %d", got, want)
	}
	if got := m.lookup(c[5].value); got != int(c[5].server) {
		t.Fatalf("at a point: server %d, want %d", got, c[5].server)
	}
	if got := m.lookup(c[5].value + (c[6].value-c[5].value)/2); c[6].value > c[5].value+1 && got != int(c[5].server) {
		t.Fatalf("between points: server %d, want %d", got, c[5].server)
	}
	// SHA1("10.0.0.1:11211:0") is ef5152ad…: its first 8 hex digits are
	// a point of server 0.
	sum := sha1.Sum([]byte("10.0.0.1:11211:0"))
	want := binary.BigEndian.Uint32(sum[:4])
	if want != 0xef5152ad {
		t.Fatalf("sha1 prefix %08x", want)
	}
	if !slices.Contains(c, point{value: want, server: 0}) {
		t.Fatalf("no point %08x of server 0", want)
	}
}

// TestLockID: pid.object_id.time, a new object id per request.
func TestLockID(t *testing.T) {
	m := New(Config{Servers: []string{"a:1"}, PID: 77})
	var c Call
	out := m.Request(&c, Request{Kind: TryAcquire, Key: "k", Unix: 1265500000, ObjectID: 16}, 0, nil)
	out2 := m.Request(&Call{}, Request{Kind: TryAcquire, Key: "k", Unix: 1265500001, ObjectID: 24}, 0, nil)
	if c.lease.ID != "77.16.1265500000" || len(out) != 1 || len(out2) != 1 {
		t.Fatalf("id %q, outputs %v %v", c.lease.ID, out, out2)
	}
	if c.lease.CacheKey != "mega_mutex:k" {
		t.Fatalf("cache key %q", c.lease.CacheKey)
	}
}

// TestSharedContinuum: machines of the same servers and weights share
// one continuum equal to Continuum's; other servers or weights get their
// own.
func TestSharedContinuum(t *testing.T) {
	a := []string{"10.0.0.1:11211", "10.0.0.2:11211"}
	b := []string{"10.0.0.1:11211", "10.0.0.3:11211"}
	m1 := New(Config{Servers: a})
	m2 := New(Config{Servers: a})
	if &m1.continuum[0] != &m2.continuum[0] || !slices.Equal(m1.continuum, Continuum(a, nil)) {
		t.Fatal("same servers: not one shared continuum equal to Continuum's")
	}
	if m3 := New(Config{Servers: b}); !slices.Equal(m3.continuum, Continuum(b, nil)) {
		t.Fatal("other servers: continuum differs from Continuum's")
	}
	if m4 := New(Config{Servers: a, Weights: []int{1, 3}}); !slices.Equal(m4.continuum, Continuum(a, []int{1, 3})) {
		t.Fatal("other weights: continuum differs from Continuum's")
	}
	if !slices.Equal(m1.continuum, Continuum(a, nil)) {
		t.Fatal("a later New changed an earlier machine's continuum")
	}
}

// TestCRCString: crcString is crc32.ChecksumIEEE of the concatenation.
func TestCRCString(t *testing.T) {
	for _, c := range [][2]string{{"", ""}, {"", "mega_mutex:k"}, {"0", "mega_mutex:k"}, {"19", "mega_mutex:a-long-key-name"}, {"7", ""}} {
		if got, want := crcString(c[0], c[1]), crc32.ChecksumIEEE([]byte(c[0]+c[1])); got != want {
			t.Fatalf("crcString(%q, %q) = %08x, want %08x", c[0], c[1], got, want)
		}
	}
}
