package checker

// The linearizability recorder as it was before the checker was made
// faster (commit 8c93012), kept verbatim but for its names as the reference
// that TestSameVerdicts compares the checker with. It runs porcupine on the
// package's own models (lockModel, registerModel), which are the
// specification both sides are judged by.

import (
	"fmt"
	"os"
	"path/filepath"
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

// unbounded marks an operation whose return is the end of the history.

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
	o := porcupine.Operation{ClientId: l.client(proc), Input: in, Call: call, Output: outcome{unknown}, Return: ret}
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
	l.op(key, proc, lockIn{opExpire, proc}, h.lastOkCall, ret, true, true)
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
			l.endHold(p, k, unbounded)
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
			out = append(out, refRunPorcupine(k, ModelLock, lockModel(), lk.lock, lastT, opts))
		}
		if len(lk.reg) > 0 {
			out = append(out, refRunPorcupine(k, ModelRegister, registerModel(), lk.reg, lastT, opts))
		}
	}
	return out
}

func refRunPorcupine(key, name string, m porcupine.Model, ops []porcupine.Operation, lastT int64, opts Options) LinResult {
	for i := range ops {
		if ops[i].Return == unbounded {
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
		path := filepath.Join(opts.HTMLDir, fmt.Sprintf("%s-%s.html", name, fileSafe(key)))
		if err := os.MkdirAll(opts.HTMLDir, 0o755); err == nil {
			if err := porcupine.VisualizePath(m, info, path); err == nil {
				r.HTML = path
			}
		}
	}
	return r
}
