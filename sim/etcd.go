package sim

import (
	"slices"
	"time"

	"github.com/locksim/locksim/history"
	lockEtcd "github.com/locksim/locksim/locks/etcd"
	lm "github.com/locksim/locksim/locks/machine"
)

// etcd models etcd (v3.7, as cluster/ runs it: TickMs 10, ElectionMs 100)
// under locks/etcd, which is client/v3/concurrency's session and Mutex.
//
// Reproduced:
//   - A lease per grant, with the TTL rounded up to whole seconds
//     (locks/etcd.TTLSeconds). The lessor lives on the leader: every 500 ms
//     (etcd's expiry check interval) it revokes the leases whose expiry has
//     passed on the leader's clock, deleting their keys through a commit. A
//     keepalive, forwarded to the leader, sets expiry to now + TTL. A new
//     leader extends every lease to now + election timeout + TTL (the
//     lessor's Promote).
//   - The lock queue: Lock puts prefix/key/<lease> (idempotent: the same
//     key on a retry) and gets its create revision; the lowest revision
//     under the prefix owns the lock, the others wait for the deletion of
//     the keys before them (a watch, delivered by the leader through the
//     client's server), then find their own key still there or fail. The
//     token is the create revision.
//   - The client's session: a keepalive every TTL/3 (the client's
//     keepalive loop, on the Go runtime's clock inside the etcd client: true
//     time, which the injected client clock does not reach — so client
//     clock skew leaves etcd's keepalive alone, as in real runs), and a
//     deadline of TTL after the last answer (the TTL the server answered);
//     when it passes (the client's deadline loop checks every second, from
//     the client's first session: client/v3 v3.7 lease.go's deadlineLoop,
//     started with the keepalive stream by firstKeepAliveOnce) the session
//     is done and the lease is lost. Until the first answer the deadline is
//     the client's first-keepalive timeout, DialTimeout + 1 s. The
//     keepalive send loop looks every 500 ms (retryConnWait) for a lease
//     due a keepalive, so the cadence is TTL/3 rounded up to its ticks;
//     until an answer comes it sends one at every tick (nextKeepAlive
//     moves only on an answer). A keepalive answered with TTL 0 (lease
//     not found) ends the session too. Run's renewer adds a KeepAliveOnce
//     every RenewEvery.
//   - The keepalive stream: one per client (etcdStream), on one member's
//     connection. When it breaks — its link reset at a heal, or a
//     keepalive on it refused or answered with an error — the client's
//     receive loop opens a new one retryConnWait (500 ms) later, and the
//     send loop, started anew from then, sends the keepalives due at once.
//   - A client's links to the members reset at their heal, as the real
//     runs' proxies close every connection then (node.resets): a request
//     in flight fails. A mutating one (Mutex.Lock's Txn, Unlock's Delete,
//     a Put) goes to its caller, as clientv3 retries a mutating request
//     only if it was never sent: Lock fails (locks/etcd revokes the
//     session's lease, and the acquire is an error, an info in the
//     history), Release revokes the lease next and reports the Unlock's
//     error. A repeatable one (LeaseGrant, LeaseRevoke, a Range) is tried
//     again by the retry interceptor (etcdResetRetry), KeepAliveOnce on a
//     new stream after the reconnect (etcdReconnect).
//   - A member's kill closes its connections at once (memberKilled): every
//     call pending to it ends as at a reset, and the client's next
//     attempt, and a keepalive stream opened again, go to another member
//     (gRPC's balancer picks a ready connection).
//   - Release deletes the key and revokes the lease; a lease that is gone
//     makes Release fail (locks.ErrLockLost). locks.Run bounds it by one
//     TTL on the client's clock (it was unbounded here, as in the Consul
//     model, until a real holder-cut-off history showed the bound). The
//     session's keepalive goes on until the Unlock returns (locks/etcd
//     orphans the session after it), so a release whose Unlock hangs —
//     sent to a member just as the leader died, it waits out etcd's
//     request timeout — keeps the lease, and the lock, alive until a TTL
//     after the bound: real leader-killed runs left the lock idle 3.3-4.1 s
//     from the kill in 4 of 5 runs, where the model, which stopped the
//     keepalive when the release began, gave 2.3-2.7 s (now 3.5-4.3 s in
//     5 of 8 seeds; 2026-12-02).
//   - The server grants no lease under its minimum TTL, 1.5 election
//     timeouts rounded up to seconds (1 s).
//
// Held to a real three-member cluster and the real client by the behaviour
// cases of sim/behaviour (EtcdCases; real: sim/behaviour/etcd_test.go,
// model: behaviour_etcd_test.go): the minimum lease TTL; the keepalive
// cadence (TTL 4 s: every 1.5 s); at the heal of a client's cut, its Put
// in flight failing and not applied and its read tried again (answered
// 3-35 ms later), and its keepalive stream opening again 500 ms later and
// renewing at once (both held by nothing until 2026-12-02: the model held
// what was sent into the cut and delivered it at the heal, so the Put
// was applied and the read and the keepalive answered at once, which
// both cases catch); a cut-off client's session ending at its
// 1 s deadline loop's tick, 1 s + u after a cut made u before that tick,
// and the leader deleting its key 0.5-1.5 s after the cut; a session cut
// off before its first answer ending 3-4 s after its start; expiry at the
// leader's 500 ms check after the TTL; a keepalive's round trip (about
// 1.5 ms: the leader's etcdKeepAliveServe); a new leader extending every
// lease; revision tokens; the Mutex queue order; a waiter whose session
// ended (its lease revoked) waiting on in Mutex.Lock until the key before
// it is deleted, then failing at once (real: 0-3 ms after that delete, 7
// of 7; the model gave the Lock up when the session ended, about 1.5 s
// earlier — the Mutex does not watch its session: concurrency/mutex.go's
// "TODO: early termination if the session key is deleted"; fixed
// 2026-12-02: the waiter's key, deleted with its lease, is an orphan the
// leader tells once no key before it is left); a Put in flight when its
// member is killed failing at once (real: 6-22 ms after the kill began,
// "error reading from server: EOF"; the model held the call until the
// member's restart; fixed 2026-12-02 by memberKilled, which also breaks a
// keepalive stream on the member at the kill, where the model broke it
// only when a keepalive on it was refused: no case times that). The
// defects they found:
// a keepalive was answered in about 50 us, so a cut-off session's
// deadline loop, which looks about a round trip before each deadline,
// often looked just after it instead: in holder-cut-off the holder's
// session ended a second early in 42 % of seeds (with no mutual
// exclusion in any of them), against about one real cut in eight; now
// 20 %, and mutual-exclusion 60 % → 80 % of seeds. The others: the
// deadline of a session before its first keepalive answer was the TTL, not
// the first-keepalive timeout (3 s); and a read forwarded to a dead leader
// (a keepalive, a Get) waited for the request timeout, 5.2 s, where etcd
// retries once a new leader is there (quorum). Fixing that deadline
// exposed another, in no case yet (TestEtcdLeaderPause, 3 of 40 seeds, once sessions
// lived their real 3 s): a waiter whose watch event came after its lease
// was revoked got the lock; Mutex.Lock reads its own key after the wait
// and fails (ErrSessionExpired). The case of the cut-off
// client also holds the lead's earlier fix of the deadline loop (1 s, apart
// from the 500 ms send loop): with a 500 ms deadline loop it fails on
// every seed.
//
// Simplified: the leader and its elections (see quorum); requests have no
// deadline, as in locks/etcd, except the server's own request timeout
// (5 s + 2 election timeouts) after which the client retries; the client
// stays on its server and moves to the next only when that one refuses
// (clientv3 balances its requests over the members round robin);
// a keepalive's time to be answered is all spent on the leader (in etcd
// part of it is a follower's forward to the leader); other reads are
// answered at once.
//
// Not held, and known to depart: gRPC's keepalive
// (10 s, then 2 s for the ping's answer, in real runs' clients) is not
// modelled, so a cut longer than about 10 s does not close the client's
// connections before its heal; Mutex.Lock's read of its own key after its wait (a Range, one round
// trip) is not modelled: the model looks at the key when the watch event
// reaches the client. A Lock whose session ended while its lease lives on
// at the leader (a client cut off, its keepalives unanswered) and that
// then gets the key is granted and lost at once (locks/etcd's watch of
// the session finds it done); no case holds that.
type etcd struct {
	r      *run
	q      *quorum
	rev    int64
	leases []*etcdLease // by id; ids start at 1
	queues map[string][]*etcdKey
	// orphans are keys deleted (their lease gone) while their client
	// still waits in Mutex.Lock, by lock: each is told once no key before
	// it is left (the client's waitDeletes returns, and its Get finds its
	// key gone).
	orphans map[string][]*etcdKey
	ttl     int64

	// The run's arenas.
	reqs   *arena[etcdReq]
	timers *arena[etcdTimer]
	lss    *arena[etcdLease]
	keys   *arena[etcdKey]
}

type etcdLease struct {
	id     int64
	alive  bool
	ttl    int64 // granted, in whole seconds (ns)
	expiry int64 // on the leader's clock
	keys   []*etcdKey
	keys0  [1]*etcdKey // keys' first array: a lease has one key
}

type etcdKey struct {
	lock   string
	rev    int64
	lease  *etcdLease
	client *etcdClient
	entry  *node // the server the owner's Lock came through
}

const etcdCheckInterval = int64(500 * time.Millisecond)

// etcdDeadlineInterval is how often the etcd client's deadlineLoop looks
// for leases whose keepalive went unanswered for a TTL (client/v3
// lease.go: a one-second timer, reset after each look).
const etcdDeadlineInterval = int64(time.Second)

// etcdFirstKeepAliveTimeout is the etcd client's deadline for a lease's
// first keepalive answer: DialTimeout + 1 s (client/v3 lease.go
// firstKeepAliveTimeout), with the harness's DialTimeout of 2 s
// (harness/backend_client.go). Found by the behaviour case "a session cut
// off before its first keepalive answer ...": the model had the TTL.
const etcdFirstKeepAliveTimeout = int64(3 * time.Second)

// etcdCommit is the leader's commit delay (plus a uniform jitter of the
// same size): 1.4-2.8 ms, so that a put through a client's link answers
// in about 2.1 ms, as the behaviour case "a write commits in about two
// milliseconds ..." measured on cluster/'s etcd (p50 2.08 ms, p90 2.69 ms,
// 2026-12-02; the model had 1-2 ms).
const etcdCommit = 1400 * time.Microsecond

func newEtcd(r *run, size int) *etcd {
	m := &etcd{r: r, queues: make(map[string][]*etcdKey)}
	m.reqs, m.timers, m.lss, m.keys = etcdReqs.get(r), etcdTimers.get(r), etcdLeases.get(r), etcdKeys.get(r)
	m.ttl = int64(lockEtcd.TTLSeconds(time.Duration(r.opts.ttl))) * int64(time.Second)
	m.q = newQuorum(r, "etcd", size, 100*time.Millisecond, etcdCommit, 5*time.Second+200*time.Millisecond)
	for _, n := range m.q.servers {
		n.resets = true // each client reaches it through a proxy of its own
		n.onCrash = func() { m.memberKilled(n) }
	}
	m.q.onLeader = m.promote
	m.startLessor(m.q.leaderNode(), m.q.term)
	return m
}

func (m *etcd) leader() *node { return m.q.leaderNode() }

// memberKilled is a member's kill as its clients see it: the kernel
// closes its connections, and the proxy in front of each closes the
// client's side, so every call pending to it ends at once as at a
// link's reset (world.resetLink): a mutating request fails, a repeatable
// one goes again, the keepalive stream on it breaks.
func (m *etcd) memberKilled(n *node) {
	for _, c := range m.r.w.nodes {
		if c.pend != nil {
			m.r.w.resetLink(c, n)
		}
	}
}
func (m *etcd) faultChanged() { m.q.faultChanged() }
func (m *etcd) evict(n *node) {}
func (m *etcd) client(p *proc) lockClient {
	// The loops' phases are set at the client's first session
	// (startSession).
	return &etcdClient{m: m, p: p, ep: p.idx % len(m.q.servers)}
}

// destroySession revokes p's lease (etcdctl lease revoke).
func (m *etcd) destroySession(p *proc) {
	c, ok := p.lc.(*etcdClient)
	if ok && c.leaseID > 0 {
		m.revoke(m.leases[c.leaseID-1])
	}
}

// promote is what a new leader's lessor does: extend every lease.
func (m *etcd) promote() {
	l := m.q.leaderNode()
	for _, ls := range m.leases {
		if ls.alive {
			ls.expiry = l.now() + m.q.electionTimeout + ls.ttl
		}
	}
	m.startLessor(l, m.q.term)
}

// startLessor starts the leader's expiry loop at a phase of its own: the
// lessor's ticks and the clients' keepalive ticks are not aligned, which
// decides who learns of an expiry first.
func (m *etcd) startLessor(l *node, term int) {
	m.lessorAfter(l, term, m.r.w.int64n(etcdCheckInterval)+1)
}

// lessor is the leader's expiry loop.
func (m *etcd) lessor(l *node, term int) { m.lessorAfter(l, term, etcdCheckInterval) }

func (m *etcd) lessorAfter(l *node, term int, first int64) {
	t := m.timer(etLessor)
	t.l, t.term = l, term
	l.afterH(first, t)
}

// expire is one look of the leader's expiry loop: the leases whose expiry
// has passed are revoked through a commit.
func (m *etcd) expire(l *node, term int) {
	if !m.q.isLeader(l, term) {
		return
	}
	now := l.now()
	for _, ls := range m.leases {
		if ls.alive && ls.expiry <= now {
			t := m.timer(etExpire)
			t.l, t.term, t.ls = l, term, ls
			l.afterH(m.q.commitDelay, t)
		}
	}
	m.lessor(l, term)
}

// grant makes a lease of ttl (whole seconds) and returns its ID. The server
// grants no less than its minimum TTL: 1.5 election timeouts, rounded up to
// whole seconds (etcdserver's minTTL; 1 s with ElectionMs 100).
func (m *etcd) grant(ttl int64) int64 {
	minTTL := (3*m.q.electionTimeout/2 + int64(time.Second) - 1) / int64(time.Second) * int64(time.Second)
	ttl = max(ttl, minTTL)
	ls := m.lss.alloc()
	ls.id, ls.alive, ls.ttl, ls.expiry = int64(len(m.leases)+1), true, ttl, m.q.leaderNode().now()+ttl
	ls.keys = ls.keys0[:0]
	m.leases = append(m.leases, ls)
	return ls.id
}

func (m *etcd) lease(id int64) *etcdLease {
	if id <= 0 || int(id) > len(m.leases) {
		return nil
	}
	if ls := m.leases[id-1]; ls.alive {
		return ls
	}
	return nil
}

// renew is a keepalive on the leader: the lease's expiry set to a TTL from
// now, and the TTL answered (0: the lease is gone).
func (m *etcd) renew(id int64) int64 {
	ls := m.lease(id)
	if ls == nil {
		return 0
	}
	ls.expiry = m.q.leaderNode().now() + ls.ttl
	return ls.ttl
}

// revoke deletes a lease and its keys.
func (m *etcd) revoke(ls *etcdLease) {
	if !ls.alive {
		return
	}
	ls.alive = false
	for _, k := range ls.keys {
		m.deleteKey(k)
	}
	ls.keys = nil
}

func (m *etcd) deleteKey(k *etcdKey) {
	q := m.queues[k.lock]
	for i, x := range q {
		if x != k {
			continue
		}
		m.rev++
		q = slices.Delete(q, i, i+1) // in place: nothing else holds the queue
		m.queues[k.lock] = q
		if i == 0 && len(q) > 0 {
			m.notify(q[0])
		}
		if c := k.client; i > 0 && c.waiting != nil && c.key == k.lock && c.rev == k.rev {
			if m.orphans == nil {
				m.orphans = make(map[string][]*etcdKey)
			}
			m.orphans[k.lock] = append(m.orphans[k.lock], k)
		}
		m.notifyOrphans(k.lock)
		return
	}
}

// notifyOrphans tells each orphan of lock with no key before it left
// (Mutex.Lock's waitDeletes has nothing more to wait for).
func (m *etcd) notifyOrphans(lock string) {
	os := m.orphans[lock]
	if len(os) == 0 {
		return
	}
	q := m.queues[lock]
	kept := os[:0]
	for _, o := range os {
		if len(q) == 0 || q[0].rev > o.rev {
			m.notify(o)
		} else {
			kept = append(kept, o)
		}
	}
	clear(os[len(kept):])
	m.orphans[lock] = kept
}

// notify delivers the watch event that makes k's client the owner.
func (m *etcd) notify(k *etcdKey) {
	l := m.q.leaderNode()
	if l == nil || l == k.entry || k.entry.down {
		m.deliver(k, m.q.servers[max(m.q.leader, 0)])
		return
	}
	t := m.timer(etWatchEntry)
	t.k = k
	m.r.w.sendEv(l, k.entry, evHandler, t, nil)
}

// deliver sends the watch event for k from the server from to its client.
func (m *etcd) deliver(k *etcdKey, from *node) {
	t := m.timer(etWatch)
	t.c, t.k = k.client, k
	m.r.w.sendEv(from, k.client.p.n, evHandler, t, nil)
}

// lock is the Mutex's put-and-get: it returns the key's create revision
// and whether it owns the lock, or 0 if the lease is gone.
func (m *etcd) lock(c *etcdClient, key string, leaseID int64, entry *node) (int64, bool) {
	ls := m.lease(leaseID)
	if ls == nil {
		return 0, false
	}
	for _, k := range ls.keys {
		if k.lock == key {
			return k.rev, m.queues[key][0] == k
		}
	}
	m.rev++
	k := m.keys.alloc()
	k.lock, k.rev, k.lease, k.client, k.entry = key, m.rev, ls, c, entry
	ls.keys = append(ls.keys, k)
	m.queues[key] = append(m.queues[key], k)
	return k.rev, len(m.queues[key]) == 1
}

// etcdClient is locks/etcd's client side for one proc.
type etcdClient struct {
	m  *etcd
	p  *proc
	ep int // the server it talks to

	phase    int64  // of the keepalive send loop, in [0, 500 ms)
	dlPhase  int64  // of the deadline loop, in [0, 1 s)
	loops    bool   // the loops run: phase and dlPhase are set
	gen      uint32 // one per session
	leaseID  int64
	deadline int64 // client clock
	nextKA   int64
	session  bool
	doneAt   int64  // when the session ended (Session.Done), -1 while it runs
	doneWhy  string // why it ended
	// releasing: Release has begun (locks/etcd's releasing channel): the
	// session's end is no loss any more.
	releasing bool
	stream    *etcdStream // the keepalive stream; nil while it is broken
	epoch     uint32      // of the keepalive send loop: one per stream
	key       string
	rev       int64
	waiting   acquireWaiter
}

func (c *etcdClient) server() *node { return c.m.q.servers[c.ep] }

// etcdReq is one request of an etcd client: what it asks (kind and its
// arguments), the answer the leader keeps in it (apply), and what the
// client does with the answer (replied). The call and its way through the
// quorum are embedded, so a request is one object from the run's arena
// and no closures. A request tried again (refused, or the server's error)
// goes as a new request with the same arguments: the old one may still be
// on its way through the quorum (a write whose request timed out may
// still be applied later), so a request is never reused.
type etcdReq struct {
	call
	qr    qreq
	c     *etcdClient
	kind  uint8
	write bool
	gen   uint32
	id    int64             // the lease
	key   string            // ekLock
	entry *node             // ekLock: the server the Lock came through
	done  *etcdReleaseBound // ekRelease
	fn    func() func()     // ekFunc: runs on the leader, returns the answer
	lost  func()            // ekFunc: the caller's error, for a write its connection's reset failed
	renew bool              // ekFunc: a lease keepalive (renewOp)
	on    *etcdStream       // ekKeepAlive: the stream it was sent on

	// ekRelease: its Unlock failed (its connection reset), so this is
	// the Revoke after it; the Unlock had been applied (the lease found).
	unlockFailed, unlockApplied bool

	// The answer, kept by apply.
	rev   int64  // ekGrant: the lease ID; ekLock: the key's create revision
	owner bool   // ekLock
	ttl   int64  // ekKeepAlive, ekRenew: the TTL answered (0: not found)
	found bool   // ekRelease: the lease was there
	ans   func() // ekFunc
}

// Kinds of etcdReq.
const (
	ekGrant     uint8 = iota // LeaseGrant for acquire's session
	ekLock                   // Mutex.Lock's put and get
	ekKeepAlive              // the session's keepalive
	ekRevoke                 // LeaseRevoke
	ekRenew                  // Run's KeepAliveOnce
	ekRelease                // Unlock, then Revoke
	ekFunc                   // fn on the leader, its answer on the client (op)
)

// The memory of etcd's requests, timers, leases and keys, kept from one
// run to the next.
var (
	etcdReqs   arenaPool[etcdReq]
	etcdTimers arenaPool[etcdTimer]
	etcdLeases arenaPool[etcdLease]
	etcdKeys   arenaPool[etcdKey]
)

// req returns a new request of kind.
func (c *etcdClient) req(kind uint8, write bool, gen uint32, id int64) *etcdReq {
	q := c.m.reqs.alloc()
	q.c, q.kind, q.write, q.gen, q.id = c, kind, write, gen, id
	return q
}

// op sends one request through the quorum, retrying on another server when
// refused and again after an error, until it is answered: fn runs on the
// leader and the function it returns on the client. A write whose
// connection is reset on its way fails instead: lost runs on the client.
func (c *etcdClient) op(write bool, fn func() func(), lost func()) {
	q := c.req(ekFunc, write, 0, 0)
	q.fn, q.lost = fn, lost
	q.try()
}

// renewOp is op for a lease keepalive made outside the session's loop
// (a behaviour case's KeepAliveOnce): the leader takes its serve time.
func (c *etcdClient) renewOp(fn func() func()) {
	q := c.req(ekFunc, false, 0, 0)
	q.fn, q.renew = fn, true
	q.try()
}

// try sends the request to the client's server; a keepalive goes on the
// client's stream, to the server that stream is on.
func (q *etcdReq) try() {
	c := q.c
	s := c.server()
	if q.kind == ekKeepAlive {
		q.on = c.stream
		s = c.stream.s
	}
	q.call.w, q.call.c, q.call.s, q.call.h = c.m.r.w, c.p.n, s, q
	q.call.w.start(&q.call, 0)
}

// again tries the request once more, as a new request, etcdRetry later.
func (q *etcdReq) again() { q.after(etcdRetry) }

// after tries the request once more, as a new request, d later.
func (q *etcdReq) after(d int64) {
	n := q.c.req(q.kind, q.write, q.gen, q.id)
	n.key, n.entry, n.done, n.fn, n.lost, n.renew = q.key, q.entry, q.done, q.fn, q.lost, q.renew
	n.unlockFailed, n.unlockApplied = q.unlockFailed, q.unlockApplied
	q.c.p.n.afterH(d, (*etcdRetryTimer)(n))
}

// etcdRetryTimer is a request waiting to be tried again.
type etcdRetryTimer etcdReq

func (t *etcdRetryTimer) handle() { (*etcdReq)(t).try() }

// serve runs on the server: the request goes through the quorum.
func (q *etcdReq) serve(*call) {
	q.qr.q, q.qr.c, q.qr.o, q.qr.write = q.c.m.q, &q.call, q, q.write
	q.c.m.q.start(&q.qr)
}

// failed is a request that got no answer: refused (the next server, a
// little later), the server's error (the same server, a little later) or
// its connection reset at its link's heal. A reset fails a mutating
// request (a Txn, a Delete: clientv3's retry policy for them retries only
// a request that was never sent) and tries a repeatable one again
// (etcdResetRetry). A keepalive's failure, whatever it is, breaks its
// stream: etcd's lease server ends the stream with the error.
func (q *etcdReq) failed(e rpcErr) {
	c := q.c
	if q.kind == ekRelease && q.done.over {
		return // its context ended with locks.Run's bound: not tried again
	}
	if e == errRefused || e == errTimeout || q.call.s.down {
		// gRPC's balancer picks another member for the next attempt.
		c.ep = (c.ep + 1) % len(c.m.q.servers)
	}
	switch {
	case q.kind == ekKeepAlive:
		c.streamBroken(q.on)
	case e != errReset:
		q.again()
	case q.kind == ekRenew || q.renew:
		// KeepAliveOnce opens a new stream at once, on a new connection.
		q.after(etcdReconnect.draw(c.m.r.w))
	case q.kind == ekLock:
		// Mutex.Lock returns the Txn's error; locks/etcd orphans the
		// session and revokes its lease.
		if c.gen == q.gen && c.waiting != nil {
			c.endSession()
			c.revoke(q.id)
			c.giveUp(lm.Failed)
		}
	case q.kind == ekRelease && !q.unlockFailed:
		// Unlock (the Delete) failed; Release orphans the session and
		// revokes the lease next, a new request on a new connection.
		q.done.orphan()
		q.unlockFailed, q.unlockApplied = true, q.found
		q.after(etcdResetRetry(c.m.r.w))
	case q.kind == ekFunc && q.write:
		if q.lost != nil {
			q.lost()
		}
	default:
		q.after(etcdResetRetry(c.m.r.w))
	}
}

const etcdRetry = int64(50 * time.Millisecond)

// etcdResetRetry is when a repeatable request whose connection was reset
// at a heal goes again: clientv3's retry interceptor tries it at once
// (attempt 1), which finds a connection made anew about half the time and
// is answered then; otherwise it fails too and attempt 2 waits the
// backoff, 25 ms ± 10 % (roundRobinQuorumBackoff: on three members,
// before every second attempt). Measured by the behaviour case "at the
// heal of a client's cut its Put in flight fails ...": of 35 reads in
// flight at a heal, 19 answered 3.4-15 ms after it, 16 in 27-35 ms
// (2026-12-02, load average 1-2).
func etcdResetRetry(w *world) int64 {
	if w.float64() < 19.0/35 {
		return etcdReconnect.draw(w)
	}
	return int64(float64(25*time.Millisecond) * (0.9 + 0.2*w.float64()))
}

// serveTime is how long the leader takes to answer a keepalive (the
// session's, or Run's KeepAliveOnce): etcdKeepAliveServe. Other reads are
// answered at once.
func (q *etcdReq) serveTime() int64 {
	if q.kind == ekKeepAlive || q.kind == ekRenew || q.renew {
		return etcdKeepAliveServe.draw(q.c.m.r.w)
	}
	return 0
}

// apply runs on the leader and keeps the answer.
func (q *etcdReq) apply() {
	m := q.c.m
	switch q.kind {
	case ekGrant:
		q.rev = m.grant(m.ttl)
	case ekLock:
		q.rev, q.owner = m.lock(q.c, q.key, q.id, q.entry)
	case ekKeepAlive, ekRenew:
		q.ttl = m.renew(q.id)
	case ekRevoke:
		if ls := m.lease(q.id); ls != nil {
			m.revoke(ls)
		}
	case ekRelease:
		if ls := m.lease(q.id); ls != nil {
			q.found = true
			m.revoke(ls)
		}
	case ekFunc:
		q.ans = q.fn()
	}
}

// replied runs on the client with the answer.
func (q *etcdReq) replied() {
	c, gen := q.c, q.gen
	switch q.kind {
	case ekGrant:
		c.granted0(gen, q.rev)
	case ekLock:
		if c.gen != gen || c.waiting == nil {
			return
		}
		switch {
		case q.rev == 0:
			c.endSession()
			c.giveUp(lm.Failed) // the Txn's "requested lease not found"
		case q.owner:
			c.rev = q.rev
			c.give(q.rev)
			c.lostIfDone()
		default:
			c.rev = q.rev // wait for granted
		}
	case ekKeepAlive:
		if c.gen != gen || !c.session {
			return
		}
		if q.ttl == 0 {
			c.sessionDone("etcd session ended: lease expired or revoked (keepalive TTL 0)")
			return
		}
		// The client takes the TTL the server answered.
		t := c.p.n.w.now
		c.deadline = t + q.ttl
		c.nextKA = t + q.ttl/3
	case ekRenew:
		if c.gen == gen && q.ttl == 0 {
			c.sessionDone("renew: etcd lease not found (expired or revoked)")
		}
	case ekRelease:
		switch {
		case q.unlockFailed && (q.found || q.unlockApplied):
			q.done.released(history.Info) // the Unlock's error
		case q.found:
			q.done.released(history.OK)
		default:
			q.done.released(history.Fail)
		}
	case ekFunc:
		q.ans()
	}
}

// etcdTimer is a timer or a message of the etcd model that carries its
// own arguments: from the run's arena, instead of a closure.
type etcdTimer struct {
	m     *etcd
	c     *etcdClient
	l     *node // etLessor, etExpire: the leader
	ls    *etcdLease
	k     *etcdKey
	gen   uint32
	epoch uint32 // etKeepAlive: the send loop's stream
	term  int
	kind  uint8
	rb    *etcdReleaseBound // etReleaseBound
}

// Kinds of etcdTimer.
const (
	etKeepAlive    uint8 = iota // the client's keepalive send loop
	etDeadline                  // the client's deadline loop
	etWaitLimit                 // acquire's wait timeout
	etLessor                    // the leader's expiry loop
	etExpire                    // the leader revokes an expired lease
	etWatchEntry                // a watch event at the waiter's server
	etWatch                     // a watch event at the waiter
	etReleaseBound              // locks.Run's bound on a release
	etStreamOpen                // the keepalive stream opens again
)

func (m *etcd) timer(kind uint8) *etcdTimer {
	t := m.timers.alloc()
	t.m, t.kind = m, kind
	return t
}

func (t *etcdTimer) stopped() bool {
	c := t.c
	switch t.kind {
	case etReleaseBound:
		return t.rb.over
	case etKeepAlive:
		return c.gen != t.gen || !c.session || c.epoch != t.epoch
	case etDeadline:
		return c.gen != t.gen || !c.session
	case etWaitLimit:
		return c.gen != t.gen || c.waiting == nil
	}
	return false
}

func (t *etcdTimer) handle() {
	m, c := t.m, t.c
	switch t.kind {
	case etReleaseBound:
		t.rb.released(history.Info)
	case etKeepAlive:
		if t.epoch == c.epoch {
			c.keepalive(t.gen)
		}
	case etDeadline:
		c.deadlineCheck(t.gen)
	case etWaitLimit:
		if c.gen == t.gen && c.waiting != nil {
			c.giveUp(lm.NotAcquired)
			c.endSession()
			c.revoke(c.leaseID)
		}
	case etLessor:
		m.expire(t.l, t.term)
	case etExpire:
		if m.q.isLeader(t.l, t.term) {
			m.revoke(t.ls)
		}
	case etWatchEntry:
		m.deliver(t.k, t.k.entry)
	case etWatch:
		t.c.granted(t.k)
	case etStreamOpen:
		c.openStream()
	}
}

func (c *etcdClient) acquire(key string, done acquireWaiter) {
	c.gen++
	gen := c.gen
	c.key = key
	c.waiting = done
	c.req(ekGrant, true, gen, 0).try()
	if wt := c.m.r.opts.waitTimeout; wt > 0 {
		t := c.m.timer(etWaitLimit)
		t.c, t.gen = c, gen
		c.p.n.afterH(wt, t)
	}
}

// give completes the pending acquire: granted with token tok.
func (c *etcdClient) give(tok int64) { c.finishAcquire(lm.OK, tok) }

// giveUp completes the pending acquire without a grant: res says why
// (NotAcquired: the wait timeout; Failed: an error of Mutex.Lock's,
// which real runs record as an info).
func (c *etcdClient) giveUp(res lm.Result) { c.finishAcquire(res, 0) }

func (c *etcdClient) finishAcquire(res lm.Result, tok int64) {
	done := c.waiting
	c.waiting = nil
	if done != nil {
		endAcquire(done, res, tok)
	}
}

func (c *etcdClient) granted0(gen uint32, id int64) {
	if c.gen != gen || c.waiting == nil {
		c.revoke(id)
		return
	}
	c.startSession(gen, id)
	c.lock(gen, c.key)
}

// loopTimer returns a timer of kind (etKeepAlive, etDeadline) for c's
// session gen.
func (c *etcdClient) loopTimer(kind uint8, gen uint32) *etcdTimer {
	t := c.m.timer(kind)
	t.c, t.gen, t.epoch = c, gen, c.epoch
	return t
}

// etcdStream is the client's lease keepalive stream (client/v3 lease.go:
// one LeaseKeepAlive stream per client, on one member's connection): a
// call that is never answered, on its client's pending list for as long
// as the stream lives, so that its link's reset at a heal breaks it.
type etcdStream struct {
	call
	c *etcdClient
}

func (s *etcdStream) serve(*call)   {}
func (s *etcdStream) failed(rpcErr) { s.c.streamBroken(s) }

// etcdRetryConnWait is how long client/v3's keepalive receive loop waits
// after its stream broke before it opens a new one (lease.go's
// retryConnWait).
const etcdRetryConnWait = int64(500 * time.Millisecond)

// newStream opens a keepalive stream to the client's server.
func (c *etcdClient) newStream() *etcdStream {
	s := &etcdStream{c: c}
	s.call.w, s.call.c, s.call.s, s.call.h = c.m.r.w, c.p.n, c.server(), s
	s.pend()
	return s
}

// streamBroken ends the keepalive stream s, if it is still the client's,
// and its send loop: the receive loop opens a new one etcdRetryConnWait
// later.
func (c *etcdClient) streamBroken(s *etcdStream) {
	if s == nil || c.stream != s {
		return
	}
	if !s.done {
		s.done = true
		s.unpend()
	}
	c.stream = nil
	c.epoch++
	t := c.m.timer(etStreamOpen)
	t.c = c
	c.p.n.afterTrueH(etcdRetryConnWait, t)
}

// openStream opens the keepalive stream again, on the client's server,
// and starts its send loop: the keepalives due go at once, and the loop
// ticks every 500 ms from now.
func (c *etcdClient) openStream() {
	if c.stream != nil {
		return
	}
	// The stream opens on a member whose connection is up (gRPC's
	// balancer picks a ready one).
	for i := 0; i < len(c.m.q.servers) && c.server().down; i++ {
		c.ep = (c.ep + 1) % len(c.m.q.servers)
	}
	c.stream = c.newStream()
	c.phase = c.p.n.w.now % etcdCheckInterval
	if c.session {
		c.keepalive(c.gen)
	}
}

// startSession is concurrency.NewSession on lease id: the client's
// keepalive of it starts.
func (c *etcdClient) startSession(gen uint32, id int64) {
	c.leaseID = id
	c.session = true
	c.doneAt = -1
	now := c.p.n.w.now // the etcd client's own timers: true time
	if !c.loops {
		// client/v3 starts its deadline loop and its keepalive stream at
		// the first KeepAlive (firstKeepAliveOnce), that is at the first
		// session, and both keep their phase after: the send loop ticks
		// from when the stream opened (a round trip later), the deadline
		// loop from now. Locked together, the deadline loop looks just
		// before a deadline (an answer comes a round trip after its send
		// tick), so a cut-off session ends about TTL + 1 s after its last
		// answer, not anywhere in TTL to TTL + 1 s: real runs of
		// holder-cut-off on etcd showed it (the notice 2.5-2.85 s after
		// the cut in most runs; mutual-exclusion in 10 of 12 where random
		// phases gave 46 %).
		c.loops = true
		c.dlPhase = now % etcdDeadlineInterval
		c.phase = (now + 2*c.m.r.w.linkDelay()) % etcdCheckInterval
		c.stream = c.newStream()
	}
	// Until the first answer the deadline is the client's
	// firstKeepAliveTimeout, not the TTL.
	c.deadline = now + etcdFirstKeepAliveTimeout
	c.nextKA = now
	// The first keepalive goes at the send loop's next tick (or when a
	// broken stream opens again); the deadline loop looks at its own.
	if c.stream != nil {
		c.p.n.afterTrueH((c.phase-now%etcdCheckInterval+etcdCheckInterval)%etcdCheckInterval, c.loopTimer(etKeepAlive, gen))
	}
	c.p.n.afterTrueH((c.dlPhase-now%etcdDeadlineInterval+etcdDeadlineInterval)%etcdDeadlineInterval, c.loopTimer(etDeadline, gen))
}

// lock is Mutex.Lock on key, under the session's lease: the answer goes
// to c.waiting.
func (c *etcdClient) lock(gen uint32, key string) {
	q := c.req(ekLock, true, gen, c.leaseID)
	q.key, q.entry = key, c.server()
	q.try()
}

// granted is the watch event: every key before ours is deleted. The
// session may have ended meanwhile: Mutex.Lock does not watch it.
func (c *etcdClient) granted(k *etcdKey) {
	if c.waiting == nil || c.key != k.lock || c.rev != k.rev {
		return
	}
	// Mutex.Lock then reads its own key: gone (its lease revoked or
	// expired), the Lock fails with ErrSessionExpired.
	if !k.lease.alive {
		c.endSession()
		c.giveUp(lm.Failed)
		return
	}
	c.give(k.rev)
	c.lostIfDone()
}

// lostIfDone ends a grant whose session ended before Mutex.Lock returned
// (its lease still there on the leader): locks/etcd's watch of the
// session sees it done at once.
func (c *etcdClient) lostIfDone() {
	if !c.session && c.doneAt >= 0 {
		c.p.onLost(c.doneWhy)
	}
}

// deadlineCheck is the client's deadlineLoop (every second): a session
// whose last keepalive answer is more than a TTL old is done.
func (c *etcdClient) deadlineCheck(gen uint32) {
	if c.gen != gen || !c.session {
		return
	}
	if c.p.n.w.now > c.deadline {
		c.sessionDone("etcd session ended: no keepalive answer within the TTL")
		return
	}
	c.p.n.afterTrueH(etcdDeadlineInterval, c.loopTimer(etDeadline, gen))
}

// keepalive is the client's keepalive send loop (every 500 ms): a
// keepalive for the lease once TTL/3 has passed since the last answer —
// at every tick until an answer comes (client/v3 moves nextKeepAlive only
// on an answer).
func (c *etcdClient) keepalive(gen uint32) {
	if c.gen != gen || !c.session || c.stream == nil {
		return
	}
	now := c.p.n.w.now
	if now >= c.nextKA {
		c.req(ekKeepAlive, false, gen, c.leaseID).try()
	}
	c.p.n.afterTrueH(etcdCheckInterval, c.loopTimer(etKeepAlive, gen))
}

// sessionDone is Session.Done closing. A Lock under way goes on: it does
// not watch its session, and ends when the keys before its own are gone
// (failing then if its own is gone too) or at the wait timeout.
func (c *etcdClient) sessionDone(reason string) {
	c.endSession()
	c.doneAt, c.doneWhy = c.p.n.w.now, reason
	if c.waiting != nil || c.releasing {
		return
	}
	c.p.onLost(reason)
}

func (c *etcdClient) endSession() { c.session = false }

func (c *etcdClient) revoke(id int64) {
	if id <= 0 {
		return
	}
	c.req(ekRevoke, true, 0, id).try()
}

// renew is Run's KeepAliveOnce.
func (c *etcdClient) renew() {
	c.req(ekRenew, false, c.gen, c.leaseID).try()
}

// release is locks/etcd's Release: Unlock (delete our key), then the
// session orphaned (its keepalive stops) and the lease revoked — one
// request here, Unlock and Revoke applied together. The session's
// keepalive goes on until the Unlock returns: a release whose Unlock
// hangs (its member's leader gone) keeps the lease alive meanwhile.
func (c *etcdClient) release(done releaseWaiter) {
	if !c.session {
		c.gen++
		done.released(history.Fail)
		return
	}
	c.releasing = true
	q := c.req(ekRelease, true, c.gen, c.leaseID)
	// locks.Run bounds the release by one TTL on the client's clock: its
	// context ends it then (an answer after that is stale; the Revoke,
	// with the same context, is not sent).
	b := &etcdReleaseBound{done: done, c: c, gen: c.gen}
	q.done = b
	t := c.m.timer(etReleaseBound)
	t.rb = b
	c.p.n.afterH(c.m.r.opts.ttl, t)
	q.try()
}

// etcdReleaseBound is a release's end, once: its answer or locks.Run's
// bound, whichever comes first.
type etcdReleaseBound struct {
	done releaseWaiter
	over bool
	c    *etcdClient
	gen  uint32 // the session released
}

func (b *etcdReleaseBound) released(t history.Type) {
	if !b.over {
		b.over = true
		b.orphan()
		b.done.released(t)
	}
}

// orphan is Session.Orphan once the Unlock has returned: the session's
// keepalive and deadline loops stop.
func (b *etcdReleaseBound) orphan() {
	if c := b.c; c.gen == b.gen {
		c.endSession()
		c.releasing = false
		c.gen++
	}
}
