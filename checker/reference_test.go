package checker

// The linearizability checker as it was before it was made faster (commit
// 8c93012), kept verbatim but for its names as the reference that
// TestSameVerdicts compares the checker with.

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

// ReferenceLinearizability checks events as the old checker did: the same
// dispatch of invokes, completions and notices as Checker.Add, then the old
// recorder's check.
func ReferenceLinearizability(events []history.Event, opts Options) []LinResult {
	if opts.LinTimeout <= 0 {
		opts.LinTimeout = 10e9
	}
	l := refNewLinRecorder()
	open := map[string]*history.Event{}
	var lastT int64
	for i := range events {
		e := &events[i]
		lastT = e.T
		switch e.Type {
		case history.Invoke:
			open[e.Proc] = e
		case history.OK, history.Fail, history.Info:
			if inv := open[e.Proc]; inv != nil && inv.F == e.F {
				delete(open, e.Proc)
				key := inv.Key
				if key == "" {
					key = e.Key
				}
				l.complete(key, inv, e)
				continue
			}
			l.notify(e)
		}
	}
	return l.check(lastT, opts)
}

// refLinRecorder collects porcupine operations per key.
type refLinRecorder struct {
	clients map[string]int
	keys    map[string]*refLinKey
	holds   map[string]map[string]*refLinHold // proc → key → open hold
}

type refLinKey struct {
	lock []porcupine.Operation
	reg  []porcupine.Operation
}

// refLinHold is an open hold, for its expire operation.
type refLinHold struct {
	key        string
	lastOkCall int64 // invoke time of the last successful acquire or renew
}

// refUnbounded marks an operation whose return is the end of the history.
const refUnbounded = -1

type refLockKind uint8

const (
	refOpAcquire refLockKind = iota
	refOpRelease
	refOpRenew
	refOpExpire
)

var refLockKindNames = [...]string{"acquire", "release", "renew", "expire"}

type refLockIn struct {
	kind refLockKind
	proc string
}

type refLockState struct {
	owner   string
	expired bool
}

type refRegIn struct {
	write bool
	value string // written, or read
}

// refOutcome is an operation's output: whether its result is unknown (info).
type refOutcome struct{ unknown bool }

func refNewLinRecorder() *refLinRecorder {
	return &refLinRecorder{
		clients: make(map[string]int),
		keys:    make(map[string]*refLinKey),
		holds:   make(map[string]map[string]*refLinHold),
	}
}

func (l *refLinRecorder) key(k string) *refLinKey {
	lk := l.keys[k]
	if lk == nil {
		lk = &refLinKey{}
		l.keys[k] = lk
	}
	return lk
}

func (l *refLinRecorder) client(p string) int {
	id, ok := l.clients[p]
	if !ok {
		id = len(l.clients)
		l.clients[p] = id
	}
	return id
}

func (l *refLinRecorder) op(key, proc string, in any, call, ret int64, unknown bool, lock bool) {
	o := porcupine.Operation{ClientId: l.client(proc), Input: in, Call: call, Output: refOutcome{unknown}, Return: ret}
	lk := l.key(key)
	if lock {
		lk.lock = append(lk.lock, o)
	} else {
		lk.reg = append(lk.reg, o)
	}
}

// complete records an operation that completed.
func (l *refLinRecorder) complete(key string, inv, e *history.Event) {
	if e.Type == history.Fail {
		if e.F == history.FRelease {
			l.endHold(e.Proc, key, refUnbounded)
		}
		return // certainly did not happen
	}
	unknown := e.Type == history.Info
	ret := e.T
	if unknown {
		ret = refUnbounded
	}
	switch e.F {
	case history.FAcquire:
		l.op(key, e.Proc, refLockIn{refOpAcquire, e.Proc}, inv.T, ret, unknown, true)
		if !unknown {
			l.endHold(e.Proc, key, e.T)
			l.beginHold(e.Proc, key, inv.T)
		}
	case history.FRelease:
		l.op(key, e.Proc, refLockIn{refOpRelease, e.Proc}, inv.T, ret, unknown, true)
		l.endHold(e.Proc, key, ret)
	case history.FRenew:
		l.op(key, e.Proc, refLockIn{refOpRenew, e.Proc}, inv.T, ret, unknown, true)
		if h := l.holds[e.Proc][key]; h != nil && !unknown {
			h.lastOkCall = inv.T
		}
	case history.FWrite:
		l.op(key, e.Proc, refRegIn{write: true, value: refCanonical(inv.Value, e.Value)}, inv.T, ret, unknown, false)
	case history.FRead:
		if !unknown {
			l.op(key, e.Proc, refRegIn{value: refCanonical(e.Value, nil)}, inv.T, ret, false, false)
		}
	}
}

// notify records a lost notice: the lease expired before it.
func (l *refLinRecorder) notify(e *history.Event) {
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

func (l *refLinRecorder) beginHold(proc, key string, call int64) {
	m := l.holds[proc]
	if m == nil {
		m = make(map[string]*refLinHold)
		l.holds[proc] = m
	}
	m[key] = &refLinHold{key: key, lastOkCall: call}
}

// endHold closes proc's hold on key with its expire operation, which may
// take effect until ret.
func (l *refLinRecorder) endHold(proc, key string, ret int64) {
	h := l.holds[proc][key]
	if h == nil {
		return
	}
	delete(l.holds[proc], key)
	l.op(key, proc, refLockIn{refOpExpire, proc}, h.lastOkCall, ret, true, true)
}

// check runs porcupine on every key and model.
func (l *refLinRecorder) check(lastT int64, opts Options) []LinResult {
	procs := make([]string, 0, len(l.holds))
	for p := range l.holds {
		procs = append(procs, p)
	}
	sort.Strings(procs)
	for _, p := range procs {
		for k := range l.holds[p] {
			l.endHold(p, k, refUnbounded)
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
		if len(lk.lock) > 0 {
			out = append(out, refRunPorcupine(k, ModelLock, refLockModel(), lk.lock, lastT, opts))
		}
		if len(lk.reg) > 0 {
			out = append(out, refRunPorcupine(k, ModelRegister, refRegisterModel(), lk.reg, lastT, opts))
		}
	}
	return out
}

func refRunPorcupine(key, name string, m porcupine.Model, ops []porcupine.Operation, lastT int64, opts Options) LinResult {
	for i := range ops {
		if ops[i].Return == refUnbounded {
			ops[i].Return = lastT + 1
		}
	}
	res, info := porcupine.CheckOperationsVerbose(m, ops, opts.LinTimeout)
	r := LinResult{Key: key, Model: name, Ops: len(ops)}
	switch res {
	case porcupine.Ok:
		r.Result = LinOK
	case porcupine.Illegal:
		r.Result = LinIllegal
	default:
		r.Result = LinUnknown
	}
	if r.Result == LinIllegal && opts.HTMLDir != "" {
		path := filepath.Join(opts.HTMLDir, fmt.Sprintf("%s-%s.html", name, refFileSafe(key)))
		if err := os.MkdirAll(opts.HTMLDir, 0o755); err == nil {
			if err := porcupine.VisualizePath(m, info, path); err == nil {
				r.HTML = path
			}
		}
	}
	return r
}

var refUnsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func refFileSafe(key string) string {
	if key == "" {
		return "_"
	}
	return refUnsafeChars.ReplaceAllString(key, "_")
}

// refCanonical returns a JSON value in compact form ("" if absent).
func refCanonical(v, alt json.RawMessage) string {
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

func refLockModel() porcupine.Model {
	m := &porcupine.NondeterministicModel{
		Init: func() []any { return []any{refLockState{}} },
		Step: func(state, input, output any) []any {
			s, in, out := state.(refLockState), input.(refLockIn), output.(refOutcome)
			next, legal := s, false
			switch in.kind {
			case refOpAcquire:
				legal = s.owner == "" || s.expired || s.owner == in.proc
				next = refLockState{owner: in.proc}
			case refOpRelease:
				legal = s.owner == in.proc
				next = refLockState{}
			case refOpRenew:
				legal = s.owner == in.proc
				next = refLockState{owner: in.proc}
			case refOpExpire:
				legal = s.owner == in.proc && !s.expired
				next = refLockState{owner: in.proc, expired: true}
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
			in, out := input.(refLockIn), output.(refOutcome)
			if out.unknown {
				return fmt.Sprintf("%s(%s) -> ?", refLockKindNames[in.kind], in.proc)
			}
			return fmt.Sprintf("%s(%s)", refLockKindNames[in.kind], in.proc)
		},
		DescribeState: func(state any) string {
			s := state.(refLockState)
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

func refRegisterModel() porcupine.Model {
	const initial = "\x00initial"
	m := &porcupine.NondeterministicModel{
		Init: func() []any { return []any{initial} },
		Step: func(state, input, output any) []any {
			s, in, out := state.(string), input.(refRegIn), output.(refOutcome)
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
			in, out := input.(refRegIn), output.(refOutcome)
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
