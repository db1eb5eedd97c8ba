package checker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"

	"github.com/anishathalye/porcupine"

	"github.com/locksim/locksim/history"
)

// LinVerdict is porcupine's answer for one key and model.
type LinVerdict string

// The linearizability verdicts. Unknown means the check ran out of time: it
// is not evidence of safety.
const (
	LinOK      LinVerdict = "ok"
	LinIllegal LinVerdict = "illegal"
	LinUnknown LinVerdict = "unknown"
)

// The models checked for linearizability.
const (
	// ModelLock is the lock as a mutex that knows its owner, with leases:
	// acquire needs the lock free, expired or already ours; release and
	// renew need it ours. A holder's lease may expire at any moment after
	// its last successful acquire or renew was invoked, until its lost
	// notice (or forever, if none came); expiry lets another proc take the
	// lock but does not stop the old owner's release or renew from
	// succeeding until someone does.
	ModelLock = "lock"
	// ModelRegister is the fenced resource as a register: a read returns
	// the last write; before any write, whatever value the first read
	// returns is taken as the initial one. Rejected (fail) writes did not
	// happen; unknown (info) writes may have.
	ModelRegister = "register"
)

// LinResult is the linearizability verdict on one key for one model.
type LinResult struct {
	File   string     `json:"file,omitempty"` // the history file, when several were checked
	Key    string     `json:"key"`
	Model  string     `json:"model"`
	Result LinVerdict `json:"result"`
	Ops    int        `json:"ops"`
	HTML   string     `json:"html,omitempty"` // porcupine's visualization, if written
}

// linRecorder turns events into the operations of each key's lock and
// register and feeds them, as they come, to their frontiers (frontier.go).
// With HTMLDir set it also keeps them as porcupine operations, to draw the
// keys found not linearizable.
type linRecorder struct {
	opts    Options
	keep    bool // keep porcupine operations, to draw
	procs   map[string]*linProc
	keys    map[string]*linKey
	keyless linInvokes // open invokes that name no key: they hold back every key
	seq     uint64
	now     int64          // the time of the latest event
	clients map[string]int // porcupine's client ids (keep only)
}

// linKey is one key's two frontiers and open invokes.
type linKey struct {
	lock        *linStream[lockAt]
	reg         *linStream[string]
	nLock, nReg int // operations, as porcupine would count them
	invokes     linInvokes
	pLock, pReg []porcupine.Operation // keep only
}

// linProc is one proc: its open invoke and its holds.
type linProc struct {
	id    int32  // the lock's owner id, from 1
	seq   uint64 // of its open invoke; 0 if none
	holds map[string]*linHold
}

// linHold is an open hold, for its expire operation.
type linHold struct {
	lastOkCall int64 // invoke time of the last successful acquire or renew
	slot       int   // the expire operation's slot in the key's lock frontier
}

// linInvokes is a key's open invokes in time order; closed ones are
// dropped when they come first. A return can be taken only before every
// open invoke: the operation, once it completes, may be linearized before
// it.
type linInvokes struct {
	q    []linInvoke
	head int
}

type linInvoke struct {
	p   *linProc
	seq uint64
	t   int64
}

func (v *linInvokes) push(p *linProc, t int64) { v.q = append(v.q, linInvoke{p, p.seq, t}) }

// first is the time of the earliest open invoke (linForever if none).
func (v *linInvokes) first() int64 {
	for v.head < len(v.q) && v.q[v.head].p.seq != v.q[v.head].seq {
		v.head++
	}
	if v.head == len(v.q) {
		v.q, v.head = v.q[:0], 0
		return linForever
	}
	if v.head >= 64 && 2*v.head >= len(v.q) {
		v.q, v.head = v.q[:copy(v.q, v.q[v.head:])], 0
	}
	return v.q[v.head].t
}

// unbounded marks a porcupine operation whose return is the end of the
// history.
const unbounded = -1

type lockKind uint8

const (
	opAcquire lockKind = iota
	opRelease
	opRenew
	opExpire
)

var lockKindNames = [...]string{"acquire", "release", "renew", "expire"}

// The register's operations, in linOp.kind.
const (
	regRead uint8 = iota
	regWrite
)

type lockIn struct {
	kind lockKind
	proc string
}

type lockState struct {
	owner   string
	expired bool
}

type regIn struct {
	write bool
	value string // written, or read
}

// outcome is an operation's output: whether its result is unknown (info).
type outcome struct{ unknown bool }

// lockAt is the lock's state in a frontier: its owner's id (0: free) and
// whether its lease expired.
type lockAt struct {
	owner   int32
	expired bool
}

// lockStep is the lock model (ModelLock, lockModel) on a known outcome.
func lockStep(s lockAt, o *linOp) (lockAt, bool) {
	switch lockKind(o.kind) {
	case opAcquire:
		return lockAt{owner: o.proc}, s.owner == 0 || s.expired || s.owner == o.proc
	case opRelease:
		return lockAt{}, s.owner == o.proc
	case opRenew:
		return lockAt{owner: o.proc}, s.owner == o.proc
	}
	return lockAt{owner: o.proc, expired: true}, s.owner == o.proc && !s.expired
}

// What an operation can do to make a lock operation of the same proc legal.
const (
	helpAcquire uint8 = 1 << iota // an acquire: the lock becomes its
	helpRenew                     // a renew: its lease is no longer expired
)

func lockHelp(target, p *linOp) uint8 {
	if p.proc != target.proc {
		return 0
	}
	switch lockKind(p.kind) {
	case opAcquire:
		return helpAcquire
	case opRenew:
		return helpRenew
	}
	return 0
}

// lockViable reports whether target is legal in s or may become so: only
// an acquire by its proc makes the lock its, and only that or a renew ends
// an expiry. (An unknown expire that takes no effect is always legal; the
// frontier asks only about its taking effect.)
func lockViable(s lockAt, target *linOp, h uint8) bool {
	switch lockKind(target.kind) {
	case opAcquire:
		return true
	case opRelease, opRenew:
		return s.owner == target.proc || h&helpAcquire != 0
	}
	if s.owner != target.proc {
		return h&helpAcquire != 0
	}
	return !s.expired || h != 0
}

// regInitial is the register's state before its first write or read.
const regInitial = "\x00initial"

// regStep is the register model (ModelRegister, registerModel) on a known
// outcome.
func regStep(s string, o *linOp) (string, bool) {
	if o.kind == regWrite || s == regInitial || s == o.value {
		return o.value, true
	}
	return s, false
}

// regHelp: a write of the value a read returns can make it legal.
func regHelp(target, p *linOp) uint8 {
	if p.kind == regWrite && p.value == target.value {
		return 1
	}
	return 0
}

// regViable reports whether target is legal in s or may become so: a read
// needs its value written, unless it is the register's value or the
// register was never written nor read.
func regViable(s string, target *linOp, h uint8) bool {
	return target.kind == regWrite || s == regInitial || s == target.value || h != 0
}

func newLinRecorder(opts Options) *linRecorder {
	return &linRecorder{
		opts:    opts,
		keep:    opts.HTMLDir != "",
		procs:   make(map[string]*linProc),
		keys:    make(map[string]*linKey),
		clients: make(map[string]int),
	}
}

func (l *linRecorder) key(k string) *linKey {
	lk := l.keys[k]
	if lk == nil {
		lk = &linKey{}
		l.keys[k] = lk
	}
	return lk
}

func (l *linRecorder) proc(name string) *linProc {
	p := l.procs[name]
	if p == nil {
		p = &linProc{id: int32(len(l.procs) + 1), holds: make(map[string]*linHold)}
		l.procs[name] = p
	}
	return p
}

func (lk *linKey) lockStream(l *linRecorder) *linStream[lockAt] {
	if lk.lock == nil {
		lk.lock = newLinStream(lockAt{}, lockStep, lockHelp, lockViable, l.opts.LinTimeout)
	}
	return lk.lock
}

func (lk *linKey) regStream(l *linRecorder) *linStream[string] {
	if lk.reg == nil {
		lk.reg = newLinStream(regInitial, regStep, regHelp, regViable, l.opts.LinTimeout)
	}
	return lk.reg
}

// invoke records an invoke: until it completes, no return after it is
// taken.
func (l *linRecorder) invoke(e *history.Event) {
	l.now = e.T
	p := l.proc(e.Proc)
	p.seq = 0
	switch e.F {
	case history.FAcquire, history.FRelease, history.FRenew, history.FRead, history.FWrite:
	default:
		return
	}
	l.seq++
	p.seq = l.seq
	if e.Key == "" {
		l.keyless.push(p, e.T)
	} else {
		l.key(e.Key).invokes.push(p, e.T)
	}
}

// advance takes the returns of lk that can no longer be preceded by an
// operation not yet known: those before every open invoke and before the
// latest event's time (an invoke may still come at that time).
func (l *linRecorder) advance(lk *linKey) {
	limit := min(lk.invokes.first(), l.keyless.first(), l.now)
	if lk.lock != nil {
		lk.lock.advance(limit)
	}
	if lk.reg != nil {
		lk.reg.advance(limit)
	}
}

func (l *linRecorder) lockOp(lk *linKey, p *linProc, proc string, kind lockKind, call, ret int64, unknown bool) {
	lk.nLock++
	lk.lockStream(l).add(linOp{kind: uint8(kind), proc: p.id, call: call, ret: ret, unknown: unknown})
	if l.keep {
		lk.pLock = append(lk.pLock, l.pop(proc, lockIn{kind, proc}, call, ret, unknown))
	}
}

func (l *linRecorder) regOp(lk *linKey, proc string, write bool, value string, call, ret int64, unknown bool) {
	lk.nReg++
	kind := regRead
	if write {
		kind = regWrite
	}
	lk.regStream(l).add(linOp{kind: kind, value: value, call: call, ret: ret, unknown: unknown})
	if l.keep {
		lk.pReg = append(lk.pReg, l.pop(proc, regIn{write: write, value: value}, call, ret, unknown))
	}
}

// pop is a porcupine operation.
func (l *linRecorder) pop(proc string, in any, call, ret int64, unknown bool) porcupine.Operation {
	id, ok := l.clients[proc]
	if !ok {
		id = len(l.clients)
		l.clients[proc] = id
	}
	if ret == linForever {
		ret = unbounded
	}
	return porcupine.Operation{ClientId: id, Input: in, Call: call, Output: outcome{unknown}, Return: ret}
}

// complete records an operation that completed.
func (l *linRecorder) complete(key string, inv, e *history.Event) {
	l.now = e.T
	p := l.proc(e.Proc)
	p.seq = 0
	lk := l.key(key)
	defer func() {
		if inv.Key == "" {
			for _, k := range l.keys {
				l.advance(k)
			}
			return
		}
		l.advance(lk)
	}()
	if e.Type == history.Fail {
		if e.F == history.FRelease {
			l.endHold(p, e.Proc, key, linForever)
		}
		return // certainly did not happen
	}
	unknown := e.Type == history.Info
	ret := e.T
	if unknown {
		ret = linForever
	}
	switch e.F {
	case history.FAcquire:
		l.lockOp(lk, p, e.Proc, opAcquire, inv.T, ret, unknown)
		if !unknown {
			l.endHold(p, e.Proc, key, e.T)
			l.beginHold(p, lk, key, inv.T)
		}
	case history.FRelease:
		l.lockOp(lk, p, e.Proc, opRelease, inv.T, ret, unknown)
		l.endHold(p, e.Proc, key, ret)
	case history.FRenew:
		l.lockOp(lk, p, e.Proc, opRenew, inv.T, ret, unknown)
		if h := p.holds[key]; h != nil && !unknown {
			h.lastOkCall = inv.T
			lk.lock.recall(h.slot, inv.T)
		}
	case history.FWrite:
		l.regOp(lk, e.Proc, true, canonical(inv.Value, e.Value), inv.T, ret, unknown)
	case history.FRead:
		if !unknown {
			l.regOp(lk, e.Proc, false, canonical(e.Value, nil), inv.T, ret, false)
		}
	}
}

// notify records a lost notice: the lease expired before it.
func (l *linRecorder) notify(e *history.Event) {
	l.now = e.T
	if e.F != history.FLost {
		return
	}
	p := l.proc(e.Proc)
	if e.Key != "" {
		l.endHold(p, e.Proc, e.Key, e.T)
		l.advance(l.key(e.Key))
		return
	}
	for k := range p.holds {
		l.endHold(p, e.Proc, k, e.T)
		l.advance(l.key(k))
	}
}

// beginHold opens proc's hold on key, and its expire operation: the lease
// may expire from call on, until the hold ends.
func (l *linRecorder) beginHold(p *linProc, lk *linKey, key string, call int64) {
	slot := lk.lockStream(l).add(linOp{kind: uint8(opExpire), proc: p.id, call: call, ret: linPending, unknown: true})
	p.holds[key] = &linHold{lastOkCall: call, slot: slot}
}

// endHold closes proc's hold on key with its expire operation, which may
// take effect until ret.
func (l *linRecorder) endHold(p *linProc, proc, key string, ret int64) {
	h := p.holds[key]
	if h == nil {
		return
	}
	delete(p.holds, key)
	lk := l.key(key)
	lk.nLock++
	lk.lock.setReturn(h.slot, ret)
	if l.keep {
		lk.pLock = append(lk.pLock, l.pop(proc, lockIn{opExpire, proc}, h.lastOkCall, ret, true))
	}
}

// check ends the history: every hold still open may expire until its end,
// every return left is taken, and each key and model gets its verdict.
func (l *linRecorder) check(lastT int64) []LinResult {
	procs := make([]string, 0, len(l.procs))
	for p := range l.procs {
		procs = append(procs, p)
	}
	sort.Strings(procs)
	for _, name := range procs {
		p := l.procs[name]
		keys := make([]string, 0, len(p.holds))
		for k := range p.holds {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			l.endHold(p, name, k, linForever)
		}
	}
	keys := make([]string, 0, len(l.keys))
	for k := range l.keys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []LinResult
	for _, k := range keys {
		lk := l.keys[k]
		delete(l.keys, k)
		if lk.nLock > 0 {
			r := LinResult{Key: k, Model: ModelLock, Ops: lk.nLock, Result: lk.lock.finish()}
			out = append(out, l.draw(r, lockModel(), lk.pLock, lastT))
		}
		if lk.nReg > 0 {
			r := LinResult{Key: k, Model: ModelRegister, Ops: lk.nReg, Result: lk.reg.finish()}
			out = append(out, l.draw(r, registerModel(), lk.pReg, lastT))
		}
	}
	return out
}

// draw writes porcupine's visualization of a key and model found not
// linearizable, if asked. Porcupine's verbose mode (the partial
// linearizations a visualization shows) is slow on a long history, so it
// runs only for these.
func (l *linRecorder) draw(r LinResult, m porcupine.Model, ops []porcupine.Operation, lastT int64) LinResult {
	if r.Result != LinIllegal || !l.keep {
		return r
	}
	for i := range ops {
		if ops[i].Return == unbounded {
			ops[i].Return = lastT + 1
		}
	}
	path := filepath.Join(l.opts.HTMLDir, fmt.Sprintf("%s-%s.html", r.Model, fileSafe(r.Key)))
	if err := os.MkdirAll(l.opts.HTMLDir, 0o755); err == nil {
		if res, info := porcupine.CheckOperationsVerbose(m, ops, l.opts.LinTimeout); res == porcupine.Illegal {
			if err := porcupine.VisualizePath(m, info, path); err == nil {
				r.HTML = path
			}
		}
	}
	return r
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func fileSafe(key string) string {
	if key == "" {
		return "_"
	}
	return unsafeChars.ReplaceAllString(key, "_")
}

// canonical returns a JSON value in compact form ("" if absent).
func canonical(v, alt json.RawMessage) string {
	if len(v) == 0 {
		v = alt
	}
	if len(v) == 0 {
		return ""
	}
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return string(v)
	}
	return b.String()
}

func lockModel() porcupine.Model {
	m := &porcupine.NondeterministicModel{
		Init: func() []any { return []any{lockState{}} },
		Step: func(state, input, output any) []any {
			s, in, out := state.(lockState), input.(lockIn), output.(outcome)
			next, legal := s, false
			switch in.kind {
			case opAcquire:
				legal = s.owner == "" || s.expired || s.owner == in.proc
				next = lockState{owner: in.proc}
			case opRelease:
				legal = s.owner == in.proc
				next = lockState{}
			case opRenew:
				legal = s.owner == in.proc
				next = lockState{owner: in.proc}
			case opExpire:
				legal = s.owner == in.proc && !s.expired
				next = lockState{owner: in.proc, expired: true}
			}
			switch {
			case legal && out.unknown:
				return []any{s, next}
			case legal:
				return []any{next}
			case out.unknown:
				return []any{s}
			}
			return nil
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(lockIn), output.(outcome)
			if out.unknown {
				return fmt.Sprintf("%s(%s) -> ?", lockKindNames[in.kind], in.proc)
			}
			return fmt.Sprintf("%s(%s)", lockKindNames[in.kind], in.proc)
		},
		DescribeState: func(state any) string {
			s := state.(lockState)
			switch {
			case s.owner == "":
				return "free"
			case s.expired:
				return s.owner + " (expired)"
			}
			return s.owner
		},
	}
	return m.ToModel()
}

func registerModel() porcupine.Model {
	const initial = "\x00initial"
	m := &porcupine.NondeterministicModel{
		Init: func() []any { return []any{initial} },
		Step: func(state, input, output any) []any {
			s, in, out := state.(string), input.(regIn), output.(outcome)
			if in.write {
				if out.unknown {
					return []any{s, in.value}
				}
				return []any{in.value}
			}
			if s == initial {
				return []any{in.value}
			}
			if s == in.value {
				return []any{s}
			}
			return nil
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(regIn), output.(outcome)
			q := ""
			if out.unknown {
				q = " -> ?"
			}
			if in.write {
				return fmt.Sprintf("write(%s)%s", in.value, q)
			}
			return fmt.Sprintf("read() -> %s", in.value)
		},
		DescribeState: func(state any) string {
			if state.(string) == initial {
				return "initial"
			}
			return state.(string)
		},
	}
	return m.ToModel()
}
