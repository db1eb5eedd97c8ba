package checker

import (
	"fmt"
	"time"

	"github.com/locksim/locksim/history"
)

// checkGrant applies the lock-service fencing rule to a grant of tok on key
// to ps at acquire ok e: the token must be new, and greater than that of
// every grant that completed before this acquire was invoked.
func (c *Checker) checkGrant(ps *procState, ks *keyState, key string, tok int64, e *history.Event) {
	ref := grantRef{proc: e.Proc, token: tok, t: e.T, line: e.Line}
	if ps.hasSnap && tok <= ps.snap.token {
		c.report(Violation{
			Kind: FencingLock, Key: key,
			Procs:  []string{ps.snap.proc, e.Proc},
			Tokens: []int64{ps.snap.token, tok},
			From:   ps.snap.t, To: e.T,
			Lines: []int{ps.snap.line, e.Line},
			Detail: fmt.Sprintf("token %d granted to %s at line %d is not greater than token %d granted to %s at line %d, before this acquire was invoked",
				tok, e.Proc, e.Line, ps.snap.token, ps.snap.proc, ps.snap.line),
		})
	} else if prev, dup := ks.grants.get(tok); dup {
		c.report(Violation{
			Kind: FencingLock, Key: key,
			Procs:  []string{prev.proc, e.Proc},
			Tokens: []int64{tok, tok},
			From:   prev.t, To: e.T,
			Lines: []int{prev.line, e.Line},
			Detail: fmt.Sprintf("token %d granted twice: to %s at line %d and to %s at line %d",
				tok, prev.proc, prev.line, e.Proc, e.Line),
		})
	}
	if _, seen := ks.grants.get(tok); !seen {
		ks.grants.add(ref)
	}
	if !ks.hasMax || tok > ks.maxGrant.token {
		ks.maxGrant, ks.hasMax = ref, true
	}
}

// checkAccept applies the resource fencing rule to accept e: its token must
// not be lower than one the resource already accepted for the key.
func (c *Checker) checkAccept(ks *keyState, e *history.Event) {
	if ks.hasAccept && e.Token < ks.maxAccept.token {
		c.report(Violation{
			Kind: FencingResource, Key: e.Key,
			Procs:  []string{ks.holderOf(ks.maxAccept.token), ks.holderOf(e.Token)},
			Tokens: []int64{ks.maxAccept.token, e.Token},
			From:   ks.maxAccept.t, To: e.T,
			Lines: []int{ks.maxAccept.line, e.Line},
			Detail: fmt.Sprintf("the resource accepted a write with token %d at line %d after accepting token %d at line %d",
				e.Token, e.Line, ks.maxAccept.token, ks.maxAccept.line),
		})
		return
	}
	if !ks.hasAccept || e.Token > ks.maxAccept.token {
		ks.maxAccept = grantRef{proc: e.Proc, token: e.Token, t: e.T, line: e.Line}
		ks.hasAccept = true
	}
}

// holderOf names the proc that was granted tok on this key, or "?".
func (ks *keyState) holderOf(tok int64) string {
	if g, ok := ks.grants.get(tok); ok {
		return g.proc
	}
	return "?"
}

func fmtDuration(ns int64) string {
	return time.Duration(ns).String()
}
