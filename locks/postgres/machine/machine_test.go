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
// `go test ./locks/postgres/machine -rewrite` and read the diff.
//
//	table ttl=D poll=D [wait=D] [owner=S] [client-clock] [stop]
//	advisory [wait=D] [lockspace=N]
//	request id=I kind=acquire|try-acquire key=K [guid=G] [now=D]
//	request id=I kind=renew|release lease=J [now=D]   (J: the call that was granted)
//	request id=I kind=prune before=D [now=D]
//	reply id=I row [n=N] [now=D]
//	reply id=I no-row|lock-timeout [now=D]
//	reply id=I failed [closed] [cancelled] [now=D]
//	fire id=I [now=D]
//	cancel id=I [now=D]
//
// now is the client clock's reading (a duration from 0); it stays at the
// last value given. A statement prints as its kind, its SQL's first words
// and its parameters.
func TestMachine(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var (
			tm     *Table
			am     *Advisory
			now    int64
			calls  = map[string]*Call{}
			leases = map[string]*Lease{}
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
			reset := func() {
				tm, am, now = nil, nil, 0
				clear(calls)
				clear(leases)
			}
			var out []Output
			switch d.Cmd {
			case "table":
				reset()
				cfg := TableConfig{
					Table:        `"locks"`,
					ClientClock:  a.Flag("client-clock"),
					RenewerDies:  a.Flag("stop"),
					TTL:          dur("ttl", 30*time.Second),
					PollInterval: dur("poll", 500*time.Millisecond),
					WaitTimeout:  dur("wait", 0),
					Owner:        "c1",
				}
				if o, ok := args["owner"]; ok {
					cfg.Owner = o
				}
				tm = NewTable(cfg)
				return ""
			case "advisory":
				reset()
				am = NewAdvisory(AdvisoryConfig{Lockspace: int32(num("lockspace", 1)), Sequence: `"locksim_advisory_token"`, WaitTimeout: dur("wait", 0)})
				return ""
			case "request":
				c := &Call{}
				calls[args["id"]] = c
				var r Request
				switch k := args["kind"]; k {
				case "acquire", "try-acquire":
					r = Request{Kind: Acquire, Key: args["key"], Guid: args["guid"]}
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
				case "prune":
					r = Request{Kind: Prune, Before: int64(dur("before", 0))}
				default:
					d.Fatalf(t, "kind %q", k)
				}
				if tm != nil {
					out = tm.Request(c, r, now, nil)
				} else {
					out = am.Request(c, r, now, nil)
				}
			case "reply":
				var r Reply
				switch {
				case a.Flag("row"):
					r = Reply{Outcome: Row, N: num("n", 1)}
				case a.Flag("no-row"):
					r.Outcome = NoRow
				case a.Flag("lock-timeout"):
					r.Outcome = LockTimeout
				case a.Flag("failed"):
					r = Reply{Outcome: Failed, Closed: a.Flag("closed"), Cancelled: a.Flag("cancelled")}
				default:
					d.Fatalf(t, "reply: no outcome")
				}
				if tm != nil {
					out = tm.Reply(call(), r, now, nil)
				} else {
					out = am.Reply(call(), r, now, nil)
				}
			case "fire":
				if tm != nil {
					out = tm.Fire(call(), now, nil)
				} else {
					out = am.Fire(call(), now, nil)
				}
			case "cancel":
				if tm != nil {
					out = tm.Cancel(call(), now, nil)
				} else {
					out = am.Cancel(call(), now, nil)
				}
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
			if o.Op.SQL != "" {
				sql := o.Op.SQL
				if w := strings.Fields(sql); len(sql) > 50 {
					sql = strings.Join(w[:3], " ")
				}
				fmt.Fprintf(&b, " %q", sql)
			}
			for _, a := range o.Op.Args() {
				switch v := a.(type) {
				case time.Time:
					fmt.Fprintf(&b, " %v", time.Duration(v.UnixNano())) // client-clock instants as durations from 0
				case string:
					fmt.Fprintf(&b, " %q", v)
				default:
					fmt.Fprintf(&b, " %v", v)
				}
			}
		case OutTimer:
			fmt.Fprintf(&b, "timer %v(%v)", o.D, o.Clock)
		case OutClose:
			b.WriteString("close")
		case OutGrant:
			fmt.Fprintf(&b, "grant key=%s token=%d", o.Lease.Key, o.Lease.Token)
			if o.Lease.LockedBy != "" {
				fmt.Fprintf(&b, " locked_by=%q", o.Lease.LockedBy)
			} else {
				fmt.Fprintf(&b, " pair=(%d,%d)", o.Lease.Space, o.Lease.Hash)
			}
		case OutLost:
			fmt.Fprintf(&b, "lost: %s", o.Text)
			if o.Gone {
				b.WriteString(" (+ the error)")
			}
		case OutDied:
			b.WriteString("renewer died")
		case OutFail:
			fmt.Fprintf(&b, "fail %s: %s", o.Text, o.Cause)
		case OutDone:
			fmt.Fprintf(&b, "done %s", o.Result)
			if o.N != 0 {
				fmt.Fprintf(&b, " n=%d", o.N)
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// TestStatements: the statements are the ones locks/postgres has always
// sent (the benchmark's raw pgx copy of get, the try statement).
func TestStatements(t *testing.T) {
	m := NewTable(TableConfig{Table: `"bench_locks"`, TTL: time.Second})
	want := `UPDATE "bench_locks" SET locked_by = $2, locked_at = clock_timestamp(), locked_until = clock_timestamp() + $3::bigint * interval '1 microsecond', sequence = sequence + 1 WHERE key = $1 AND (locked_by IS NULL OR locked_by = $2 OR locked_until < clock_timestamp()) RETURNING sequence, locked_until`
	if m.getSQL != want {
		t.Errorf("get:\n%s\nwant\n%s", m.getSQL, want)
	}
	a := NewAdvisory(AdvisoryConfig{Sequence: `"it's"`, WaitTimeout: 1500 * time.Microsecond})
	if want := `SELECT CASE WHEN pg_try_advisory_lock($1::int4, $2::int4) THEN nextval('"it''s"') END`; a.trySQL != want {
		t.Errorf("try: %s, want %s", a.trySQL, want)
	}
	if a.setSQL != "SET lock_timeout = 1" {
		t.Errorf("set: %s", a.setSQL)
	}
}

// TestNoAllocPerPoll: a poll (the timer's firing and the get's answer)
// allocates nothing in the machine when the driver reuses its buffer.
func TestNoAllocPerPoll(t *testing.T) {
	m := NewTable(TableConfig{Table: `"locks"`, TTL: time.Second, PollInterval: time.Millisecond})
	var c Call
	buf := make([]Output, 0, 4)
	m.Request(&c, Request{Kind: Acquire, Key: "k", Guid: "1"}, 0, buf)
	m.Reply(&c, Reply{Outcome: Row}, 0, buf[:0])
	allocs := testing.AllocsPerRun(100, func() {
		m.Reply(&c, Reply{Outcome: NoRow}, 0, buf[:0])
		m.Fire(&c, 0, buf[:0])
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per poll", allocs)
	}
}
