// Package machine holds what the lock clients' state machines share.
//
// Each backend's client algorithm is written once, without I/O, as a
// machine in the style of etcd-io/raft's RawNode (locks/memcache/machine
// is the first): a driver feeds it inputs — the caller's requests
// (acquire, try-acquire, renew, release), the replies to the operations it
// asked for, the firing of the timers it asked for, and the caller giving
// up — each with the client clock's reading and, where the machine may
// need it, fresh randomness. The machine answers each input with outputs:
// operations to send to a server, a timer to set (on the client's clock or
// on true time, stated per timer), a grant with its token, a loss with its
// reason, and the request's completion.
//
// Two drivers run the same machine: the backend's package in locks/ on
// goroutines over the real client library, and the simulator (package
// sim) from its event loop over the simulated network. Neither makes a
// decision of the algorithm; both only carry operations and time.
package machine

// Clock says what a timer is measured on.
type Clock uint8

const (
	// ClientClock is the client's locks.Clock: skewed, drifting or
	// stepped when a clock fault hits the client (poll intervals, wait
	// timeouts, the dead-server window, Run's renewal and release bounds).
	ClientClock Clock = iota
	// TrueTime is the time of the runtime and the kernel, which a fault
	// on the locks.Clock does not reach (socket deadlines of a client
	// library).
	TrueTime
)

// String names the clock as the machines' test scripts print it.
func (c Clock) String() string {
	if c == TrueTime {
		return "true"
	}
	return "client"
}

// Result is how a request ended.
type Result uint8

const (
	// OK: done (an acquire granted, a renewal or release applied).
	OK Result = iota
	// NotAcquired: the lock is held elsewhere (a try), or the wait
	// timeout passed (an acquire): locks.ErrNotAcquired.
	NotAcquired
	// Lost: the lock is not this holder's any more: locks.ErrLockLost.
	Lost
	// Failed: the service could not be reached or answered an error: a
	// *locks.BackendError; the outcome may be unknown.
	Failed
	// Cancelled: the caller gave up (its context ended) before the
	// request was done.
	Cancelled
)

var resultNames = [...]string{"ok", "not-acquired", "lost", "failed", "cancelled"}

// String names the result as the machines' test scripts print it.
func (r Result) String() string {
	if int(r) < len(resultNames) {
		return resultNames[r]
	}
	return "result?"
}
