package hold_test

import (
	"fmt"
	"time"

	lm "github.com/locksim/locksim/locks/machine"
	"github.com/locksim/locksim/locks/machine/hold"
)

// A driver's view of one hold: the renew timer fires once, the renewal
// succeeds, the critical section ends, and the release succeeds.
func Example() {
	m := hold.New(hold.Config{RenewEvery: time.Second, TTL: 3 * time.Second})
	show := func(out []hold.Output) {
		for _, o := range out {
			switch o.Kind {
			case hold.OutTimer, hold.OutRenew, hold.OutRelease:
				fmt.Printf("%s %v on the %s clock\n", o.Kind, o.D, o.Clock)
			case hold.OutDone:
				fmt.Println("done:", o.Result)
			default:
				fmt.Println(o.Kind)
			}
		}
	}
	show(m.Start(nil))           // the section starts
	show(m.Fire(nil))            // the renew timer fired
	show(m.Renewed(lm.OK, nil))  // lease.Renew returned nil
	show(m.SectionDone(nil))     // fn returned
	show(m.Released(lm.OK, nil)) // lease.Release returned nil
	// Output:
	// timer 1s on the client clock
	// renew 1s on the client clock
	// timer 1s on the client clock
	// cancel
	// release 3s on the client clock
	// done: ok
}
