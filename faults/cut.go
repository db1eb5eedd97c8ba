package faults

import (
	"sync"

	"github.com/Shopify/toxiproxy/v2/toxics"
)

// cutToxicType is the toxiproxy type name of cutToxic.
const cutToxicType = "locksim-cut"

func init() { toxics.Register(cutToxicType, new(cutToxic)) }

// cutGate is one link's cut: which of its two streams drop what they carry,
// and the signal that resets the link's connections when its last cut is
// lifted.
type cutGate struct {
	mu     sync.Mutex
	up     bool          // data from From to To is dropped
	down   bool          // data from To to From is dropped
	healed chan struct{} // closed when the link's last cut is lifted
}

func newCutGate() *cutGate { return &cutGate{healed: make(chan struct{})} }

// set puts the gate's cuts in force; lifting the link's last cut resets
// every connection open at that moment.
func (g *cutGate) set(up, down bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	was := g.up || g.down
	g.up, g.down = up, down
	if was && !up && !down {
		close(g.healed)
		g.healed = make(chan struct{})
	}
}

func (g *cutGate) dropping(upstream bool) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if upstream {
		return g.up
	}
	return g.down
}

func (g *cutGate) nextHeal() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.healed
}

// cutToxic carries locksim's cut on one stream of a link. It is in the
// link's chain for the link's whole life: while its stream is cut it drops
// what it reads (as toxiproxy's timeout toxic with timeout 0 does), and at
// the heal it closes every connection that was open at that moment, while
// the proxy goes on listening.
//
// The heal is thereby one step. Before, a cut was a timeout toxic added and
// removed, and the heal removed it (which closes the connection, one stream
// at a time) and restarted the proxy to reset the rest: a client's
// reconnect at the heal (Go's HTTP transport sends an idempotent request
// again at once) then met a closed listener or landed on a connection the
// restart closed, in 4 of 20 runs of a behaviour case on a quiet machine.
type cutToxic struct {
	gate     *cutGate // set by AddLink before the proxy listens
	upstream bool     // the stream from From to To
}

// cutState is what one connection's stub keeps: the heal that resets it.
type cutState struct{ healed <-chan struct{} }

// NewState is called for each connection when toxiproxy starts its link
// (under the collection's lock), so a connection accepted after a heal
// waits for the next one.
func (t *cutToxic) NewState() any { return &cutState{healed: t.gate.nextHeal()} }

// Pipe forwards or drops each chunk, and closes the stream at the heal.
func (t *cutToxic) Pipe(stub *toxics.ToxicStub) {
	healed := stub.State.(*cutState).healed
	for {
		select {
		case <-stub.Interrupt:
			return
		case <-healed:
			stub.Close()
			// Drain what the reader still hands on until the connection's
			// close ends it, so that no stub before this one blocks.
			for range stub.Input {
			}
			return
		case c := <-stub.Input:
			if c == nil {
				stub.Close()
				return
			}
			if !t.gate.dropping(t.upstream) {
				stub.Output <- c
			}
		}
	}
}
