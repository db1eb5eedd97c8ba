package sim

import (
	"fmt"
	"github.com/locksim/locksim/backend"

	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/scenario"
)

// guardedClient is a lock client whose service can make a read or write of
// its own store conditional on the lock, in one atomic step with the lock
// check (workload.fencing: guarded; locks.Guarded in locks/). The etcd,
// Consul and PostgreSQL models have one; memcached has none.
type guardedClient interface {
	// guarded sends one guarded operation for the hold whose token is tok
	// (write: through the service's commit, else a read). apply runs on
	// the service at the instant it decides, with whether the hold still
	// holds the lock; done runs on the client with the answer; failed
	// runs on the client if no answer came within resourceTimeout (the
	// outcome is unknown: apply may have run).
	guarded(write bool, tok int64, apply func(held bool), done func(held bool), failed func())
	// refused is what the client does when its service refused a guarded
	// operation: the lease is lost, as locks/ marks it.
	refused(reason string)
}

// checkFencing refuses a fencing mode the backend's model cannot provide.
func checkFencing(sc *scenario.Scenario, b *backend.Backend) error {
	if sc.Workload.Fencing.Mode() != scenario.FenceGuarded || b.Guarded {
		return nil
	}
	return fmt.Errorf("sim: fencing guarded needs a lock service that can make a write conditional on the lock; %s has none", b.Name)
}

// guardedRead is the read of p's cycle gen at the lock service (fencing
// guarded): p.readDone with the value, p.readRefused, or p.resourceFailed.
func (s *resource) guardedRead(p *proc, key string, gen uint32) {
	g := p.lc.(guardedClient)
	var v int64
	g.guarded(false, p.token, func(held bool) {
		if held {
			v = s.value[key]
		}
	}, func(held bool) {
		if p.gen != gen {
			return
		}
		if !held {
			g.refused("guarded get refused: the lock is no longer held")
			p.readRefused(gen)
			return
		}
		p.readDone(gen, v)
	}, func() { p.resourceFailed(gen) })
}

// guardedWrite is the write of v with tok at the lock service (fencing
// guarded): the service's decision is the resource's accept or reject,
// recorded at the instant it is made.
func (s *resource) guardedWrite(p *proc, key string, tok, v int64, gen uint32) {
	g := p.lc.(guardedClient)
	g.guarded(true, tok, func(held bool) {
		f := history.FReject
		if held {
			s.value[key] = v
			f = history.FAccept
		}
		s.r.emit(history.ProcResource, history.Info, f, key, tok, true, num(v))
	}, func(held bool) {
		if p.gen != gen {
			return
		}
		if !held {
			g.refused("guarded put refused: the lock is no longer held")
		}
		p.writeDone(gen, held)
	}, func() { p.resourceFailed(gen) })
}

// guarded implements guardedClient: a transaction If(IsOwner()) through
// the quorum, held while the grant's key still exists with its create
// revision.
func (c *etcdClient) guarded(write bool, tok int64, apply func(bool), done func(bool), failed func()) {
	key := c.key
	c.m.r.w.rpc(c.p.n, c.server(), resourceTimeout, func(r *call) {
		c.m.q.do(r, write, func() func() {
			held := c.m.owns(key, tok)
			apply(held)
			return func() { done(held) }
		}, failed)
	}, func(rpcErr) { failed() })
}

func (c *etcdClient) refused(reason string) { c.p.onLost(reason) }

// owns is Mutex.IsOwner's comparison: the key of create revision rev
// still exists in key's queue.
func (m *etcd) owns(key string, rev int64) bool {
	for _, k := range m.queues[key] {
		if k.rev == rev {
			return true
		}
	}
	return false
}

// guarded implements guardedClient: a KV transaction through the quorum
// whose check-session holds while the lock key's session is this hold's.
func (c *consulClient) guarded(write bool, tok int64, apply func(bool), done func(bool), failed func()) {
	ck, sid := c.ck, c.sid()
	c.m.r.w.rpc(c.p.n, c.server(), resourceTimeout, func(r *call) {
		c.m.q.do(r, write, func() func() {
			held := sid != 0 && ck.session == sid && c.m.session(sid) != nil
			apply(held)
			return func() { done(held) }
		}, failed)
	}, func(rpcErr) { failed() })
}

// refused is the lease lost, its session destroyed (locks/consul's lose).
func (c *consulClient) refused(reason string) { c.lose(reason) }

// guarded implements guardedClient: one statement on the server that
// checks the lock row's locked_by and sequence (lease table), or, on the
// lock's own connection, that the connection holds the advisory lock.
func (c *pgClient) guarded(write bool, tok int64, apply func(bool), done func(bool), failed func()) {
	lease, conn := c.lease, c.conn
	c.m.r.w.rpc(c.p.n, c.m.n, resourceTimeout, func(r *call) {
		var held bool
		switch {
		case lease == nil:
		case c.m.advisory:
			held = conn != nil && conn.alive && c.m.holders[advisoryKey(lease.Space, lease.Hash)] == conn
		default:
			row := c.m.rows[lease.Key]
			held = row != nil && row.lockedBy == lease.LockedBy && row.sequence == tok
		}
		apply(held)
		r.reply(func() { done(held) })
	}, func(rpcErr) { failed() })
}

func (c *pgClient) refused(reason string) { c.p.onLost(reason) }
