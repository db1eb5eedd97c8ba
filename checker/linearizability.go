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

// linRecorder collects porcupine operations per key.
type linRecorder struct {
	clients map[string]int
	keys    map[string]*linKey
	holds   map[string]map[string]*linHold // proc → key → open hold
}

type linKey struct {
	lock []porcupine.Operation
	reg  []porcupine.Operation
}

// linHold is an open hold, for its expire operation.
type linHold struct {
	key        string
	lastOkCall int64 // invoke time of the last successful acquire or renew
}

// unbounded marks an operation whose return is the end of the history.
const unbounded = -1

type lockKind uint8

const (
	opAcquire lockKind = iota
	opRelease
	opRenew
	opExpire
)

var lockKindNames = [...]string{"acquire", "release", "renew", "expire"}

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

func newLinRecorder() *linRecorder {
	return &linRecorder{
		clients: make(map[string]int),
		keys:    make(map[string]*linKey),
		holds:   make(map[string]map[string]*linHold),
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

func (l *linRecorder) client(p string) int {
	id, ok := l.clients[p]
	if !ok {
		id = len(l.clients)
		l.clients[p] = id
	}
	return id
}

func (l *linRecorder) op(key, proc string, in any, call, ret int64, unknown bool, lock bool) {
	o := porcupine.Operation{ClientId: l.client(proc), Input: in, Call: call, Output: outcome{unknown}, Return: ret}
	lk := l.key(key)
	if lock {
		lk.lock = append(lk.lock, o)
	} else {
		lk.reg = append(lk.reg, o)
	}
}

// complete records an operation that completed.
func (l *linRecorder) complete(key string, inv, e *history.Event) {
	if e.Type == history.Fail {
		if e.F == history.FRelease {
			l.endHold(e.Proc, key, unbounded)
		}
		return // certainly did not happen
	}
	unknown := e.Type == history.Info
	ret := e.T
	if unknown {
		ret = unbounded
	}
	switch e.F {
	case history.FAcquire:
		l.op(key, e.Proc, lockIn{opAcquire, e.Proc}, inv.T, ret, unknown, true)
		if !unknown {
			l.endHold(e.Proc, key, e.T)
			l.beginHold(e.Proc, key, inv.T)
		}
	case history.FRelease:
		l.op(key, e.Proc, lockIn{opRelease, e.Proc}, inv.T, ret, unknown, true)
		l.endHold(e.Proc, key, ret)
	case history.FRenew:
		l.op(key, e.Proc, lockIn{opRenew, e.Proc}, inv.T, ret, unknown, true)
		if h := l.holds[e.Proc][key]; h != nil && !unknown {
			h.lastOkCall = inv.T
		}
	case history.FWrite:
		l.op(key, e.Proc, regIn{write: true, value: canonical(inv.Value, e.Value)}, inv.T, ret, unknown, false)
	case history.FRead:
		if !unknown {
			l.op(key, e.Proc, regIn{value: canonical(e.Value, nil)}, inv.T, ret, false, false)
		}
	}
}

// notify records a lost notice: the lease expired before it.
func (l *linRecorder) notify(e *history.Event) {
	if e.F != history.FLost {
		return
	}
	if e.Key != "" {
		l.endHold(e.Proc, e.Key, e.T)
		return
	}
	for k := range l.holds[e.Proc] {
		l.endHold(e.Proc, k, e.T)
	}
}

func (l *linRecorder) beginHold(proc, key string, call int64) {
	m := l.holds[proc]
	if m == nil {
		m = make(map[string]*linHold)
		l.holds[proc] = m
	}
	m[key] = &linHold{key: key, lastOkCall: call}
}

// endHold closes proc's hold on key with its expire operation, which may
// take effect until ret.
func (l *linRecorder) endHold(proc, key string, ret int64) {
	h := l.holds[proc][key]
	if h == nil {
		return
	}
	delete(l.holds[proc], key)
	l.op(key, proc, lockIn{opExpire, proc}, h.lastOkCall, ret, true, true)
}

// check runs porcupine on every key and model.
func (l *linRecorder) check(lastT int64, opts Options) []LinResult {
	procs := make([]string, 0, len(l.holds))
	for p := range l.holds {
		procs = append(procs, p)
	}
	sort.Strings(procs)
	for _, p := range procs {
		for k := range l.holds[p] {
			l.endHold(p, k, unbounded)
		}
	}
	keys := make([]string, 0, len(l.keys))
	for k := range l.keys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// One key and model at a time, though keys are independent: porcupine
	// keeps a bitset of every operation per step it takes, memory that grows
	// with the square of a key's operations, and two keys checked at once
	// (on the bench's 1,000,000-event history) took 20% less time for twice
	// the memory (1.1-1.4 GB against 0.6-0.7 GB). Each key's operations are
	// dropped as soon as it is checked.
	var out []LinResult
	for _, k := range keys {
		lk := l.keys[k]
		delete(l.keys, k)
		if len(lk.lock) > 0 {
			out = append(out, runPorcupine(k, ModelLock, lockModel(), lk.lock, lastT, opts))
			lk.lock = nil
		}
		if len(lk.reg) > 0 {
			out = append(out, runPorcupine(k, ModelRegister, registerModel(), lk.reg, lastT, opts))
		}
	}
	return out
}

// runPorcupine checks one key and model. Porcupine's verbose mode (the
// partial linearizations a visualization shows) costs most of the time on
// a long history, so it runs only to draw a history already found not
// linearizable.
func runPorcupine(key, name string, m porcupine.Model, ops []porcupine.Operation, lastT int64, opts Options) LinResult {
	for i := range ops {
		if ops[i].Return == unbounded {
			ops[i].Return = lastT + 1
		}
	}
	r := LinResult{Key: key, Model: name, Ops: len(ops)}
	switch porcupine.CheckOperationsTimeout(m, ops, opts.LinTimeout) {
	case porcupine.Ok:
		r.Result = LinOK
	case porcupine.Illegal:
		r.Result = LinIllegal
	default:
		r.Result = LinUnknown
	}
	if r.Result == LinIllegal && opts.HTMLDir != "" {
		path := filepath.Join(opts.HTMLDir, fmt.Sprintf("%s-%s.html", name, fileSafe(key)))
		if err := os.MkdirAll(opts.HTMLDir, 0o755); err == nil {
			if res, info := porcupine.CheckOperationsVerbose(m, ops, opts.LinTimeout); res == porcupine.Illegal {
				if err := porcupine.VisualizePath(m, info, path); err == nil {
					r.HTML = path
				}
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
