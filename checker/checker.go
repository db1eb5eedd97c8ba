package checker

import (
	"io"
	"sort"
	"time"

	"github.com/locksim/locksim/history"
)

// Kind names a violation. The four kinds are those of DESIGN.md.
type Kind string

// The violation kinds.
const (
	// MutualExclusion: two procs believed they held the same key at once.
	MutualExclusion Kind = "mutual-exclusion"
	// FencingLock: the lock service granted a token twice, or a token not
	// greater than that of a grant that completed before it was invoked.
	FencingLock Kind = "fencing-lock"
	// FencingResource: the resource accepted a write with a token lower
	// than one it had already accepted for that key.
	FencingResource Kind = "fencing-resource"
	// Damage: the resource's final state disagrees with the writes that
	// succeeded (for a counter: lost increments).
	Damage Kind = "damage"
)

// Kinds lists the violation kinds in report order.
var Kinds = []Kind{MutualExclusion, FencingLock, FencingResource, Damage}

// Violation is one broken rule: which key, procs and tokens, the time
// window, and the line numbers of the events involved.
type Violation struct {
	Kind   Kind     `json:"kind"`
	File   string   `json:"file,omitempty"` // the history file, when several were checked
	Key    string   `json:"key"`
	Procs  []string `json:"procs"`
	Tokens []int64  `json:"tokens"`
	From   int64    `json:"from"` // ns; the start of the overlap or window
	To     int64    `json:"to"`   // ns; its end
	Lines  []int    `json:"lines"`
	Detail string   `json:"detail"` // one sentence for people
}

// Options control a check.
type Options struct {
	// Linearizability checks every key for linearizability (lock and
	// register models), as the events come: in memory for the operations
	// open at once, not for the history.
	Linearizability bool
	// LinTimeout bounds the time the linearizability search may spend, per
	// key and model, on returns that need more than a quick look; a check
	// that runs out of it is reported as Unknown, never as safe. Zero means
	// 10 s.
	LinTimeout time.Duration
	// HTMLDir, if set, receives porcupine's visualization of every key and
	// model that is not linearizable. Drawing needs every operation: with
	// HTMLDir set, each key's operations are kept in memory.
	HTMLDir string
}

// Result is the verdict on one history.
type Result struct {
	// Events is the number of events checked.
	Events int
	// Violations found by the four rule checks, in the order they were
	// detected (by the time of the event that completed them).
	Violations []Violation
	// Linearizability has one entry per key and model checked (none when
	// Options.Linearizability is off).
	Linearizability []LinResult
	// Liveness has one entry per key acquired, by key: figures beside the
	// verdict, never violations.
	Liveness []Liveness
}

// OK reports whether the history broke no rule, and every linearizability
// check (if any ran) came back Ok: an Unknown result is not OK.
func (r *Result) OK() bool {
	if len(r.Violations) > 0 {
		return false
	}
	for _, l := range r.Linearizability {
		if l.Result != LinOK {
			return false
		}
	}
	return true
}

// Counts returns the number of violations of each kind.
func (r *Result) Counts() map[Kind]int {
	m := make(map[Kind]int)
	for _, v := range r.Violations {
		m[v.Kind]++
	}
	return m
}

// Checker judges one history, one event at a time. Feed it the events of a
// history.Reader in order (the reader guarantees well-formedness), then call
// Finish. A Checker is not safe for concurrent use.
type Checker struct {
	opts   Options
	events int
	firstT int64
	lastT  int64
	keys   index[keyState]
	procs  index[procState]
	out    []Violation
	lin    *linRecorder
	live   *liveness

	// The chunks new holds and overlaps are taken from (newHold), and
	// what Reset keeps for the next history: the first chunks and the
	// keys' grant lists.
	holds       chunks[hold]
	overlaps    chunks[overlap]
	spareGrants [][]grantRef
}

// procState is what the checker remembers of one proc: its open invoke.
type procState struct {
	open    bool
	inv     history.Event // the open invoke
	snap    grantRef      // fencing-lock: the greatest grant completed before an open acquire
	hasSnap bool
	// holds are that proc's current holds, one per key (mutual
	// exclusion), in the order they began.
	holds []*hold
	// wait is its open acquire, for liveness.
	wait liveWait
}

// hold returns ps's current hold on key, or nil.
func (ps *procState) hold(key string) *hold {
	for _, h := range ps.holds {
		if h.key == key {
			return h
		}
	}
	return nil
}

// keyState is everything the rule checks keep per key.
type keyState struct {
	holders []*hold // the current holds, in the order they began

	// fencing-lock
	maxGrant grantRef
	hasMax   bool
	grants   grantIndex // every token granted so far

	// fencing-resource
	maxAccept grantRef
	hasAccept bool

	damage damageState
	list   listState
}

// grantRef points at one event granting or accepting a token.
type grantRef struct {
	proc  string
	token int64
	t     int64
	line  int
}

// New returns a Checker.
func New(opts Options) *Checker {
	if opts.LinTimeout <= 0 {
		opts.LinTimeout = 10 * time.Second
	}
	c := &Checker{
		opts: opts,
		live: newLiveness(),
	}
	if opts.Linearizability {
		c.lin = newLinRecorder(opts)
	}
	return c
}

// Reset makes c ready to judge a new history with opts, as New(opts)
// would return it, keeping some of the memory the last history took (its
// holds, its grant lists): for a caller that checks many histories one
// after another, as the simulator does its seeds. A Result that Finish
// returned is not touched.
func (c *Checker) Reset(opts Options) {
	spare := c.spareGrants
	for _, ks := range c.keys.all() {
		if g := ks.grants.sorted; cap(g) > 0 && len(spare) < indexSmall {
			clear(g)
			spare = append(spare, g[:0])
		}
	}
	holds, overlaps := c.holds, c.overlaps
	holds.reset()
	overlaps.reset()
	*c = *New(opts)
	c.holds, c.overlaps, c.spareGrants = holds, overlaps, spare
}

func (c *Checker) key(k string) *keyState {
	ks := c.keys.get(k)
	if ks == nil {
		ks = &keyState{}
		if n := len(c.spareGrants); n > 0 {
			ks.grants.sorted = c.spareGrants[n-1]
			c.spareGrants = c.spareGrants[:n-1]
		}
		ks.damage.counter = true
		c.keys.put(k, ks)
	}
	return ks
}

func (c *Checker) proc(p string) *procState {
	ps := c.procs.get(p)
	if ps == nil {
		ps = &procState{}
		c.procs.put(p, ps)
	}
	return ps
}

// Add checks one event. Events must come in history order.
func (c *Checker) Add(e *history.Event) {
	c.events++
	if c.events == 1 {
		c.firstT = e.T
	}
	c.lastT = e.T
	ps := c.proc(e.Proc)
	switch e.Type {
	case history.Invoke:
		ps.open, ps.inv = true, *e
		if c.lin != nil {
			c.lin.invoke(e)
		}
		c.invoke(ps, e)
	case history.OK, history.Fail, history.Info:
		if ps.open && ps.inv.F == e.F {
			ps.open = false
			c.complete(ps, &ps.inv, e)
			return
		}
		c.notify(ps, e)
	}
}

// invoke handles an invoke event.
func (c *Checker) invoke(ps *procState, e *history.Event) {
	switch e.F {
	case history.FAcquire:
		ks := c.key(e.Key)
		ps.snap, ps.hasSnap = ks.maxGrant, ks.hasMax
		c.live.waitStart(&ps.wait, e.Proc, e.Key, e.T)
	case history.FRelease:
		c.endHold(ps, e.Key, e)
	}
}

// complete handles an ok, fail or info that completes inv.
func (c *Checker) complete(ps *procState, inv, e *history.Event) {
	key := inv.Key
	if key == "" {
		key = e.Key
	}
	if c.lin != nil {
		c.lin.complete(key, inv, e)
	}
	switch e.F {
	case history.FAcquire:
		c.live.waitEnd(&ps.wait, e.Proc, e.T)
		if e.Type != history.OK {
			return // fail: no grant; info: outcome unknown, no belief
		}
		ks := c.key(key)
		c.beginHold(ps, ks, key, e)
		if tok, ok := token(inv, e); ok {
			c.checkGrant(ps, ks, key, tok, e)
		}
	case history.FWrite:
		c.key(key).damage.write(inv, e)
	case history.FRead:
		if e.Type == history.OK {
			c.key(key).damage.read(e)
			c.key(key).list.read(e)
		}
	case history.FInsert:
		c.key(key).list.insert(inv, e)
	}
}

// notify handles a lone info: lost, accept, reject, faults.
func (c *Checker) notify(ps *procState, e *history.Event) {
	if c.lin != nil {
		c.lin.notify(e)
	}
	switch e.F {
	case history.FLost:
		if e.Key != "" {
			c.endLost(ps, e.Key, e)
			return
		}
		// Every key held, in the order the holds began (a copy: each
		// close removes one).
		var keys [4]string
		ks := keys[:0]
		for _, h := range ps.holds {
			ks = append(ks, h.key)
		}
		for _, k := range ks {
			c.endLost(ps, k, e)
		}
	case history.FAccept:
		ks := c.key(e.Key)
		if e.HasToken {
			c.checkAccept(ks, e)
		}
		ks.damage.accept(e, ks)
	}
}

// token returns the token of a completion, or of its invoke.
func token(inv, e *history.Event) (int64, bool) {
	if e.HasToken {
		return e.Token, true
	}
	return inv.Token, inv.HasToken
}

func (c *Checker) report(v Violation) { c.out = append(c.out, v) }

// Finish ends the history at the time of its last event, closes every
// belief still open, runs linearizability if asked, and returns the result.
func (c *Checker) Finish() Result {
	// Deterministic order: procs by name, keys by name.
	for _, p := range c.procs.sorted() {
		ps := c.procs.get(p)
		keys := make([]string, 0, len(ps.holds))
		for _, h := range ps.holds {
			keys = append(keys, h.key)
		}
		sort.Strings(keys)
		for _, k := range keys {
			c.closeHold(ps, k, c.lastT, 0)
		}
	}
	for _, k := range c.keys.sorted() {
		ks := c.keys.get(k)
		if v, ok := ks.damage.verdict(k, ks); ok {
			c.report(v)
		}
		if v, ok := ks.list.verdict(k); ok {
			c.report(v)
		}
	}
	res := Result{Events: c.events, Violations: c.out, Liveness: c.live.finish(c.lastT, c.lastT-c.firstT)}
	if c.lin != nil {
		res.Linearizability = c.lin.check(c.lastT)
	}
	return res
}

// Check reads every event of r and returns the verdict. The error is the
// reader's: malformed input (a *history.Error) or an I/O error. Reading and
// decoding run on a goroutine of their own, a batch of events ahead of the
// checks.
func Check(r *history.Reader, opts Options) (Result, error) {
	const batch = 512
	type chunk struct {
		events []history.Event
		err    error
	}
	full := make(chan chunk, 4)
	free := make(chan []history.Event, 6)
	done := make(chan struct{})
	defer close(done)
	go func() {
		defer close(full)
		for {
			var events []history.Event
			select {
			case events = <-free:
				events = events[:0]
			default:
				events = make([]history.Event, 0, batch)
			}
			var err error
			for len(events) < batch {
				var e history.Event
				if e, err = r.Next(); err != nil {
					break
				}
				events = append(events, e)
			}
			select {
			case full <- chunk{events, err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	c := New(opts)
	for ch := range full {
		for i := range ch.events {
			c.Add(&ch.events[i])
		}
		if ch.err == io.EOF {
			break
		}
		if ch.err != nil {
			return Result{}, ch.err
		}
		clear(ch.events) // drop the values the batch points to
		select {
		case free <- ch.events:
		default:
		}
	}
	return c.Finish(), nil
}
