// Package histgen generates histories of a correct lock, optionally with
// one injected fault, for the checker's property tests and benchmarks. It is
// a test-data generator, not a model of any backend (that is sim/).
package histgen

import (
	"container/heap"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/locksim/locksim/history"
)

// Injection is one fault planted in an otherwise correct history.
type Injection int

// The injections. Each breaks exactly one rule of the checker.
const (
	None Injection = iota
	// Overlap: a holder releases only after the next holder was granted
	// the lock (its write done before): mutual exclusion.
	Overlap
	// DupToken: a grant reuses the previous grant's token: fencing-lock.
	DupToken
	// RegressToken: a grant gets a token below every earlier grant's, to
	// a client that held the lock before (so its acquire was invoked after
	// an earlier grant completed); its write is then rejected by the
	// resource: fencing-lock.
	RegressToken
	// StaleAccept: after the next holder's write, the previous holder
	// writes again with its old token and the resource wrongly accepts
	// it: fencing-resource.
	StaleAccept
)

// Config shapes a generated history.
type Config struct {
	Keys          int     // keys, each with its own clients
	ClientsPerKey int     // clients contending on each key
	Grants        int     // grants per key
	TryFailRate   float64 // chance that a client tries once and fails while the lock is held
	RenewRate     float64 // chance that a holder renews once
	Inject        Injection
	InjectAt      int // the grant (per key 0) at which to inject; must be ≥ 1
}

// Generate returns the events of a history, in time order, and whether the
// injection (if any) happened: a history too short for it has none.
func Generate(rng *rand.Rand, cfg Config) (events []history.Event, injected bool) {
	var all []history.Event
	for k := 0; k < cfg.Keys; k++ {
		g := &keyGen{rng: rng, cfg: cfg, key: "k" + strconv.Itoa(k), token: 100}
		for c := 0; c < cfg.ClientsPerKey; c++ {
			g.clients = append(g.clients, &client{name: "c" + strconv.Itoa(k*cfg.ClientsPerKey+c+1), wake: rng.Int64N(ms)})
		}
		inject := cfg.Inject
		if k != 0 {
			inject = None
		}
		if g.run(inject) {
			injected = true
		}
		all = append(all, g.events...)
	}
	slices.SortStableFunc(all, func(a, b history.Event) int {
		switch {
		case a.T < b.T:
			return -1
		case a.T > b.T:
			return 1
		}
		return 0
	})
	return all, injected
}

const ms = int64(1_000_000)

type client struct {
	name  string
	wake  int64 // when it next invokes acquire (idle), or its invoke time (waiting)
	index int
	held  bool // has held the lock before
}

type keyGen struct {
	rng      *rand.Rand
	cfg      Config
	key      string
	clients  []*client
	events   []history.Event
	token    int64
	counter  int64
	accepted int64 // highest token the resource accepted
}

func (g *keyGen) emit(t int64, proc string, typ history.Type, f string, tok int64, hasTok bool, value []byte) {
	g.events = append(g.events, history.Event{T: t, Proc: proc, Type: typ, F: f, Key: g.key, Token: tok, HasToken: hasTok, Value: value})
}

func num(v int64) []byte { return strconv.AppendInt(nil, v, 10) }

func (g *keyGen) lat() int64 { return 1 + g.rng.Int64N(ms) }

// wakeQueue orders idle clients by wake time.
type wakeQueue []*client

func (q wakeQueue) Len() int           { return len(q) }
func (q wakeQueue) Less(i, j int) bool { return q[i].wake < q[j].wake }
func (q wakeQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i]; q[i].index = i; q[j].index = j }
func (q *wakeQueue) Push(x any)        { c := x.(*client); c.index = len(*q); *q = append(*q, c) }
func (q *wakeQueue) Pop() any {
	old := *q
	c := old[len(old)-1]
	*q = old[:len(old)-1]
	return c
}

func (g *keyGen) run(inject Injection) (injected bool) {
	idle := &wakeQueue{}
	for _, c := range g.clients {
		heap.Push(idle, c)
	}
	var waiting []*client // FIFO of clients blocked in acquire
	free := int64(0)      // when the lock is next free
	var prev *client      // the previous holder
	var prevTok int64
	// lateRelease, when set, is a holder whose release must come after the
	// next grant (Overlap).
	var late *client
	var lateTok int64
	injectedAt := -1 // the grant at which the injection happened
	for n := 0; n < g.cfg.Grants; n++ {
		// Idle clients that wake before the lock is free invoke acquire:
		// some try once and fail, the others wait.
		for idle.Len() > 0 && ((*idle)[0].wake <= free || len(waiting) == 0) {
			c := heap.Pop(idle).(*client)
			g.emit(c.wake, c.name, history.Invoke, history.FAcquire, 0, false, nil)
			if c.wake < free && g.rng.Float64() < g.cfg.TryFailRate {
				done := c.wake + g.lat()
				g.emit(done, c.name, history.Fail, history.FAcquire, 0, false, nil)
				c.wake = done + g.lat()
				heap.Push(idle, c)
				continue
			}
			waiting = append(waiting, c)
		}
		h := waiting[0]
		waiting = waiting[1:]
		grant := max(free, h.wake) + g.lat()

		if injectedAt < 0 && inject != None && n >= max(g.cfg.InjectAt, 1) && (inject != RegressToken || h.held) {
			injectedAt = n
		}
		now := injectedAt == n
		tok := g.token + 1
		switch {
		case now && inject == DupToken:
			tok = prevTok
		case now && inject == RegressToken:
			tok = 100 // below every token granted
		default:
			g.token = tok
		}
		h.held = true
		g.emit(grant, h.name, history.OK, history.FAcquire, tok, true, nil)
		if late != nil {
			// The previous holder releases only now, well inside this hold.
			r := grant + g.lat()
			g.emit(r, late.name, history.Invoke, history.FRelease, lateTok, true, nil)
			g.emit(r+g.lat(), late.name, history.OK, history.FRelease, lateTok, true, nil)
			late.wake = r + 100*ms
			heap.Push(idle, late)
			late = nil
		}

		t := grant + g.lat()
		// Read the counter, write it plus one through the fenced resource.
		g.emit(t, h.name, history.Invoke, history.FRead, 0, false, nil)
		t += g.lat()
		g.emit(t, h.name, history.OK, history.FRead, 0, false, num(g.counter))
		v := g.counter + 1
		t += g.lat()
		g.emit(t, h.name, history.Invoke, history.FWrite, tok, true, num(v))
		t += g.lat()
		writeOK := tok >= g.accepted
		if writeOK {
			g.emit(t, history.ProcResource, history.Info, history.FAccept, tok, true, num(v))
			g.counter, g.accepted = v, tok
		} else {
			g.emit(t, history.ProcResource, history.Info, history.FReject, tok, true, num(v))
		}
		t += g.lat()
		if writeOK {
			g.emit(t, h.name, history.OK, history.FWrite, tok, true, num(v))
		} else {
			g.emit(t, h.name, history.Fail, history.FWrite, tok, true, num(v))
		}
		if injectedAt >= 0 && n == injectedAt+1 && inject == StaleAccept {
			// The previous holder, idle since, writes with its old token
			// and the resource accepts it.
			s := t + g.lat()
			sv := g.counter + 1
			g.emit(s, prev.name, history.Invoke, history.FWrite, prevTok, true, num(sv))
			g.emit(s+1, history.ProcResource, history.Info, history.FAccept, prevTok, true, num(sv))
			g.emit(s+2, prev.name, history.OK, history.FWrite, prevTok, true, num(sv))
			g.counter = sv
			t = s + 2
		}
		if g.rng.Float64() < g.cfg.RenewRate {
			t += g.lat()
			g.emit(t, h.name, history.Invoke, history.FRenew, tok, true, nil)
			t += g.lat()
			g.emit(t, h.name, history.OK, history.FRenew, tok, true, nil)
		}
		t += g.lat()
		if now && inject == Overlap {
			// The lock is free again (say the lease expired) but the holder
			// still believes it holds, until after the next grant.
			late, lateTok = h, tok
			free = t
		} else {
			g.emit(t, h.name, history.Invoke, history.FRelease, tok, true, nil)
			t += g.lat()
			g.emit(t, h.name, history.OK, history.FRelease, tok, true, nil)
			free = t
			h.wake = t + g.lat() + g.rng.Int64N(3*ms)
			if now && inject == StaleAccept {
				h.wake += 1000 * ms // stays idle until its stale write is done
			}
			heap.Push(idle, h)
		}
		prev, prevTok = h, tok
	}
	if late != nil {
		g.emit(free+g.lat(), late.name, history.Invoke, history.FRelease, lateTok, true, nil)
	}
	// Clients still blocked in acquire when the run ends: no completion.
	if inject == StaleAccept {
		return injectedAt >= 0 && injectedAt+1 < g.cfg.Grants
	}
	return injectedAt >= 0
}
