package machine_test

import (
	"fmt"
	"time"

	"github.com/locksim/locksim/locks/postgres/machine"
)

// A driver's loop, by hand: a blocking acquire on the lease table that
// finds the row held once, waits for its poll timer, and is granted.
func Example() {
	m := machine.NewTable(machine.TableConfig{Table: `"locks"`, TTL: 30 * time.Second, PollInterval: 500 * time.Millisecond, Owner: "host:1"})
	var c machine.Call
	show := func(out []machine.Output) {
		for _, o := range out {
			switch o.Kind {
			case machine.OutSend:
				fmt.Println("send", o.Op.Kind, o.Op.Args())
			case machine.OutTimer:
				fmt.Println("timer", o.D, o.Clock)
			case machine.OutGrant:
				fmt.Println("grant token", o.Lease.Token)
			case machine.OutDone:
				fmt.Println("done", o.Result)
			}
		}
	}
	now := int64(0)
	show(m.Request(&c, machine.Request{Kind: machine.Acquire, Key: "k", Guid: "7f"}, now, nil))
	show(m.Reply(&c, machine.Reply{Outcome: machine.Row}, now, nil))   // the row exists
	show(m.Reply(&c, machine.Reply{Outcome: machine.NoRow}, now, nil)) // held elsewhere
	now += int64(500 * time.Millisecond)
	show(m.Fire(&c, now, nil))
	show(m.Reply(&c, machine.Reply{Outcome: machine.Row, N: 4}, now, nil))
	// Output:
	// send ensure [k]
	// send get [k host:1 guid:7f 30000000]
	// timer 500ms client
	// send get [k host:1 guid:7f 30000000]
	// grant token 4
	// done ok
}
