package consul

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/locksim/locksim/locks"
)

// Lease is one grant of a Consul lock: a session holding the key. A
// watcher goroutine follows the key with blocking queries from the moment
// of the grant until Release or the loss. It is safe for concurrent use.
type Lease struct {
	l         *Locker
	key       string
	session   string
	token     locks.Token
	lockIndex uint64

	lost    *locks.LostSignal
	mu      sync.Mutex
	lostErr error // the loss, joined with a Consul error if a watch failed

	stop        context.CancelFunc
	watcherDone chan struct{}
}

var (
	_ locks.Lease   = (*Lease)(nil)
	_ locks.Guarded = (*Lease)(nil)
)

func (l *Locker) newLease(key, session string, pair *api.KVPair) *Lease {
	ctx, stop := context.WithCancel(context.Background())
	le := &Lease{
		l: l, key: key, session: session,
		token:       locks.Token(pair.ModifyIndex),
		lockIndex:   pair.LockIndex,
		lost:        locks.NewLostSignal(key),
		stop:        stop,
		watcherDone: make(chan struct{}),
	}
	go le.watch(ctx, pair.ModifyIndex)
	return le
}

// Key implements locks.Lease.
func (le *Lease) Key() string { return le.key }

// Token implements locks.Lease: the key's ModifyIndex at the grant.
func (le *Lease) Token() locks.Token { return le.token }

// LockIndex is the key's LockIndex at the grant (how many times it had
// been acquired since it was created), for comparison with Token.
func (le *Lease) LockIndex() uint64 { return le.lockIndex }

// Session is the ID of the Consul session that holds the key.
func (le *Lease) Session() string { return le.session }

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

// lose marks the lease lost for reason (with cause, the Consul error that
// ended a watch, if any) and destroys the now useless session, as the seed
// does.
func (le *Lease) lose(reason string, cause error) error {
	le.mu.Lock()
	first := le.lostErr == nil && le.lost.Err() == nil
	if first && cause != nil {
		le.lostErr = errors.Join(&locks.LostError{Key: le.key, Reason: reason}, cause)
	}
	le.mu.Unlock()
	le.lost.Lose(reason)
	if first {
		go le.l.destroySession(le.session)
	}
	return le.Err()
}

// watch is the seed's hold_lock: blocking queries on the key until it no
// longer belongs to our session.
func (le *Lease) watch(ctx context.Context, index uint64) {
	defer close(le.watcherDone)
	for {
		q := (&api.QueryOptions{WaitIndex: index, WaitTime: 5 * time.Minute}).WithContext(ctx)
		pair, meta, err := le.l.c.KV().Get(le.key, q)
		if ctx.Err() != nil {
			return // released
		}
		if err != nil {
			le.lose("watch failed: "+err.Error(), backendErr("watch", err))
			return
		}
		if reason := LossReason(pair, le.session); reason != "" {
			le.lose(reason, nil)
			return
		}
		if meta.LastIndex < index {
			index = 0
		} else {
			index = meta.LastIndex
		}
	}
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
	entry, _, err := le.l.c.Session().Renew(le.session, writeOpts(ctx))
	if err != nil {
		return ctxOr(ctx, backendErr("renew", err))
	}
	if entry == nil {
		return le.lose("no active session", nil)
	}
	return nil
}

// Release implements locks.Lease: it stops the watcher, releases the key
// (PUT ?release=<session>) and destroys the session. A key that is no
// longer ours is left alone and the lease is reported lost.
func (le *Lease) Release(ctx context.Context) error {
	if err := le.Err(); err != nil {
		return err
	}
	le.stopWatch()
	ok, _, err := le.l.c.KV().Release(&api.KVPair{Key: le.key, Session: le.session}, writeOpts(ctx))
	if err != nil {
		return ctxOr(ctx, backendErr("release", err))
	}
	if !ok {
		pair, _, gerr := le.l.c.KV().Get(le.key, (&api.QueryOptions{}).WithContext(ctx))
		reason := "released by someone else"
		if gerr == nil {
			if r := LossReason(pair, le.session); r != "" {
				reason = r
			}
		}
		return le.lose(reason, nil)
	}
	if _, err := le.l.c.Session().Destroy(le.session, writeOpts(ctx)); err != nil {
		return ctxOr(ctx, backendErr("session destroy", err))
	}
	return nil
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
		{KV: &api.KVTxnOp{Verb: api.KVCheckSession, Key: le.key, Session: le.session}},
		{KV: kv},
	}
	q := (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx)
	ok, resp, _, err := le.l.c.Txn().Txn(ops, q)
	if err != nil {
		return nil, ctxOr(ctx, backendErr(op, err))
	}
	if !ok {
		// Rolled back: by the session check (index 0), or by the
		// operation itself.
		for _, e := range resp.Errors {
			if e.OpIndex == 0 {
				return nil, locks.NotHeld(le.lose(op+" refused: "+e.What, nil))
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
