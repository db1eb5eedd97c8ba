package consul

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/hashicorp/consul/api"

	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/consul/machine"
	lm "github.com/locksim/locksim/locks/machine"
)

// Lease is one grant of a Consul lock: a session holding the key. A
// watcher goroutine follows the key with blocking queries from the moment
// of the grant until Release or the loss (the machine's watch). It is safe
// for concurrent use.
type Lease struct {
	l     *Locker
	m     *machine.Lease
	token locks.Token

	lost    *locks.LostSignal
	mu      sync.Mutex // guards lostErr and m's lost and ended marks
	lostErr error      // the loss, joined with a Consul error if a watch failed

	stop        context.CancelFunc
	watcherDone chan struct{}
}

var (
	_ locks.Lease   = (*Lease)(nil)
	_ locks.Guarded = (*Lease)(nil)
)

func (l *Locker) newLease(m *machine.Lease) *Lease {
	ctx, stop := context.WithCancel(context.Background())
	le := &Lease{
		l: l, m: m,
		token:       locks.Token(m.Token),
		lost:        locks.NewLostSignal(m.Key),
		stop:        stop,
		watcherDone: make(chan struct{}),
	}
	go le.watch(ctx)
	return le
}

// Key implements locks.Lease.
func (le *Lease) Key() string { return le.m.Key }

// Token implements locks.Lease: the key's ModifyIndex at the grant.
func (le *Lease) Token() locks.Token { return le.token }

// LockIndex is the key's LockIndex at the grant (how many times it had
// been acquired since it was created), for comparison with Token.
func (le *Lease) LockIndex() uint64 { return le.m.LockIndex }

// Session is the ID of the Consul session that holds the key.
func (le *Lease) Session() string { return le.m.Session }

// Lost implements locks.Lease.
func (le *Lease) Lost() <-chan struct{} { return le.lost.Lost() }

// Err implements locks.Lease. After a failed watch it matches both
// locks.ErrLockLost and a *locks.BackendError.
func (le *Lease) Err() error {
	le.mu.Lock()
	defer le.mu.Unlock()
	if le.lostErr != nil {
		return le.lostErr
	}
	return le.lost.Err()
}

// lose marks the lease lost as the machine's OutLost o says; cause is the
// Consul error that ended a watch (LossWatch).
func (le *Lease) lose(o *machine.Output, cause error) {
	text := ""
	if o.Reason == machine.LossWatch && cause != nil {
		text = cause.Error()
	}
	reason := o.LossText(text)
	le.mu.Lock()
	if o.Reason == machine.LossWatch && cause != nil && le.lostErr == nil && le.lost.Err() == nil {
		le.lostErr = errors.Join(&locks.LostError{Key: le.m.Key, Reason: reason}, backendErr("watch", cause))
	}
	le.mu.Unlock()
	le.lost.Lose(reason)
}

// request runs one request of the lease through the machine. The
// machine's marks on the lease (lost, ended) are read and written under
// le.mu only: the watcher and the caller's requests run at once.
func (le *Lease) request(ctx context.Context, kind machine.ReqKind) error {
	var r run
	var buf [4]machine.Output
	if r.drive(ctx, le.l, machine.Request{Kind: kind, Lease: le.m}, le, buf[:0], &le.mu) == lm.OK {
		return nil
	}
	return r.err
}

// watch is the seed's hold_lock: blocking queries on the key until it no
// longer belongs to our session.
func (le *Lease) watch(ctx context.Context) {
	defer close(le.watcherDone)
	_ = le.request(ctx, machine.Watch)
}

// stopWatch stops the watcher and waits for it.
func (le *Lease) stopWatch() {
	le.stop()
	<-le.watcherDone
}

// Renew implements locks.Lease: it renews the session. A session Consul no
// longer knows (expired or destroyed) makes the lease lost.
func (le *Lease) Renew(ctx context.Context) error {
	if err := le.Err(); err != nil {
		return err
	}
	return le.request(ctx, machine.Renew)
}

// Release implements locks.Lease: it stops the watcher, releases the key
// (PUT ?release=<session>) and destroys the session. A key that is no
// longer ours is left alone and the lease is reported lost.
func (le *Lease) Release(ctx context.Context) error {
	if err := le.Err(); err != nil {
		return err
	}
	le.stopWatch()
	return le.request(ctx, machine.Release)
}

// GuardedPut implements locks.Guarded: one KV transaction (PUT /v1/txn)
// that checks that the lock key is still held by this lease's session
// (verb check-session) and sets key to value; Consul applies both in one
// Raft entry, or neither. key is a KV key of the caller's; it is not
// locked and outlives the lock. Refused, the lease is lost and the error
// matches locks.ErrNotHeld.
func (le *Lease) GuardedPut(ctx context.Context, key string, value []byte) error {
	_, err := le.guarded(ctx, "guarded put", &api.KVTxnOp{Verb: api.KVSet, Key: key, Value: value})
	return err
}

// GuardedGet implements locks.Guarded: one read-only KV transaction,
// consistent (the leader confirms its leadership), that checks the lock
// key's session and reads key (verb get-or-empty: nil if absent).
func (le *Lease) GuardedGet(ctx context.Context, key string) ([]byte, error) {
	resp, err := le.guarded(ctx, "guarded get", &api.KVTxnOp{Verb: api.KVGetOrEmpty, Key: key})
	if err != nil {
		return nil, err
	}
	if len(resp.Results) < 2 || resp.Results[1].KV == nil {
		return nil, nil
	}
	return resp.Results[1].KV.Value, nil
}

func (le *Lease) guarded(ctx context.Context, op string, kv *api.KVTxnOp) (*api.TxnResponse, error) {
	// No local check of Err: the session check at the server decides.
	ops := api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVCheckSession, Key: le.m.Key, Session: le.m.Session}},
		{KV: kv},
	}
	q := (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx)
	ok, resp, _, err := le.l.c.Txn().Txn(ops, q)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, backendErr(op, err)
	}
	if !ok {
		// Rolled back: by the session check (index 0), or by the
		// operation itself.
		for _, e := range resp.Errors {
			if e.OpIndex == 0 {
				return nil, locks.NotHeld(le.refused(op + " refused: " + e.What))
			}
		}
		var msgs []string
		for _, e := range resp.Errors {
			msgs = append(msgs, e.What)
		}
		return nil, backendErr(op, fmt.Errorf("transaction rolled back: %s", strings.Join(msgs, "; ")))
	}
	return resp, nil
}

// refused marks the lease lost after a guarded operation's session check
// failed (reason), its session destroyed, and returns its error.
func (le *Lease) refused(reason string) error {
	le.mu.Lock()
	out := le.l.m.Lose(le.m, machine.LossWatch, "", nil)
	le.mu.Unlock()
	for i := range out {
		switch o := &out[i]; {
		case o.Kind == machine.OutLost:
			le.lost.Lose(reason)
		case o.Kind == machine.OutSend && o.Background:
			go le.l.background(o.Op)
		}
	}
	return le.Err()
}
