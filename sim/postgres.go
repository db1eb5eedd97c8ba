package sim

import (
	"hash/crc32"
	"slices"
	"strconv"
	"time"

	"github.com/locksim/locksim/history"
)

// postgres models one PostgreSQL 15 server under locks/postgres, in one of
// its two backends.
//
// Locker, the lease table of seed 002 (backend "postgres"):
//   - A row per key: locked_by, locked_until, sequence. Get is Locker's
//     single UPDATE: take the row when it is free, ours, or expired
//     (locked_until < now), set locked_until = now + TTL and bump sequence,
//     which is the token. Renew sets locked_until = now + TTL while
//     locked_by is still ours, else the lease is lost (LockStolen). Release
//     clears locked_by if it is ours.
//   - "now" is the option lock.clock: db (default, Locker's
//     clock_timestamp()) reads the server's clock; client reads the
//     client's own clock and sends it, so a client whose clock runs ahead
//     takes rows that are still held.
//   - Acquire polls every PollInterval (Locker: 0.5 s). A holder learns of
//     the loss only at its next Renew (every RenewEvery) or Release.
//   - The table is durable: a restart keeps every row.
//
// Advisory locks (backend "postgres-advisory"):
//   - pg_advisory_lock on a connection opened for the lease: the server
//     grants the lock to one connection at a time and queues the others
//     (in arrival order); the token is nextval of a sequence, which
//     survives restarts. Renew is SELECT 1, and a dead connection loses the
//     lease; Release is pg_advisory_unlock.
//   - The lock lives as long as the server believes the connection lives.
//     A killed client's socket is closed by its kernel, so the server
//     frees its locks one network delay later. A paused client, or one cut
//     off by a partition, keeps its locks until TCP keepalive gives up on
//     the server (Linux defaults: 2 h idle, then 9 probes 75 s apart:
//     pgConnDeadAfter), which no scenario reaches. A server restart drops
//     every connection and every advisory lock.
//
// Simplified: no transactions or pool; each statement is one round trip
// with no client timeout (locks/postgres sets none), so a partition stalls
// a client until it heals. Locker's ensure_key_exists INSERT is not a
// separate round trip.
type postgres struct {
	r        *run
	n        *node
	advisory bool

	rows map[string]*pgRow
	// advisory
	holders map[string]*pgConn
	queues  map[string][]*pgWaiter
	seq     int64
	conns   []*pgConn
}

type pgRow struct {
	lockedBy    string
	lockedUntil int64 // on the clock the option names
	sequence    int64
}

type pgConn struct {
	id    int
	alive bool
	owner *pgClient
	keys  []string
}

type pgWaiter struct {
	conn    *pgConn
	granted func(tok int64)
	failed  func() // the connection was reset
}

// pgConnDeadAfter is when a server gives up on a silent client's
// connection: tcp_keepalives_idle 7200 s + 9 × 75 s.
const pgConnDeadAfter = int64(7875 * time.Second)

func newPostgres(r *run, advisory bool) *postgres {
	m := &postgres{
		r: r, advisory: advisory,
		rows:    make(map[string]*pgRow),
		holders: make(map[string]*pgConn),
		queues:  make(map[string][]*pgWaiter),
	}
	m.n = r.w.addNode("pg") // as harness/ names it
	r.servers = append(r.servers, m.n)
	m.n.onCrash = m.dropConnections
	return m
}

func (m *postgres) leader() *node { return m.n }

// faultChanged: a connection whose client the server cannot reach is
// given up after pgConnDeadAfter if it is still unreachable then (a paused
// client's kernel still answers keepalives, so only partitions count).
func (m *postgres) faultChanged() {
	for _, conn := range m.conns {
		if !conn.alive || m.r.w.reachable(m.n, conn.owner.p.n) {
			continue
		}
		conn := conn
		m.n.after(pgConnDeadAfter, func() {
			if conn.alive && !m.r.w.reachable(m.n, conn.owner.p.n) {
				m.closeConn(conn)
			}
		})
	}
}
func (m *postgres) evict(*node) {}

// destroySession is pg_terminate_backend of the holder's connection
// (advisory), or an UPDATE clearing its row (lease table).
func (m *postgres) destroySession(p *proc) {
	c, ok := p.lc.(*pgClient)
	if !ok {
		return
	}
	if m.advisory {
		if c.conn != nil {
			m.closeConn(c.conn)
		}
		return
	}
	if row := m.rows[c.key]; row != nil && row.lockedBy == c.id {
		row.lockedBy = ""
	}
}

func (m *postgres) client(p *proc) lockClient {
	c := &pgClient{m: m, p: p}
	return c
}

// crashed is the client process killed: its kernel closes its sockets,
// and the server frees its advisory locks when the FIN arrives — one
// network delay later, or after a partition heals, behind whatever the
// client sent before (TCP's order).
func (c *pgClient) crashed() {
	w := c.m.r.w
	w.send(c.p.n, c.m.n, func() {
		for _, conn := range c.m.conns {
			if conn.owner == c && conn.alive {
				c.m.closeConn(conn)
			}
		}
	}, nil)
}

// dropConnections is a server crash: every connection and advisory lock
// is gone; the table and the sequence are durable.
func (m *postgres) dropConnections() {
	for _, c := range m.conns {
		c.alive = false
	}
	m.conns = nil
	for _, k := range sortedKeys(m.queues) {
		for _, wt := range m.queues[k] {
			wt.failed()
		}
	}
	m.holders = make(map[string]*pgConn)
	m.queues = make(map[string][]*pgWaiter)
}

// now is the "now" of the lease table: the server's clock, or the one the
// client sent.
func (m *postgres) now(clientNow int64) int64 {
	if m.r.opts.clock == "client" {
		return clientNow
	}
	return m.n.now()
}

func (m *postgres) get(key, id string, clientNow int64) (int64, bool) {
	row := m.rows[key]
	if row == nil {
		row = &pgRow{}
		m.rows[key] = row
	}
	now := m.now(clientNow)
	if row.lockedBy != "" && row.lockedBy != id && row.lockedUntil >= now {
		return 0, false
	}
	row.lockedBy = id
	row.lockedUntil = now + m.r.opts.ttl
	row.sequence++
	return row.sequence, true
}

func (m *postgres) renewRow(key, id string, clientNow int64) bool {
	row := m.rows[key]
	if row == nil || row.lockedBy != id {
		return false
	}
	row.lockedUntil = m.now(clientNow) + m.r.opts.ttl
	return true
}

func (m *postgres) releaseRow(key, id string) bool {
	row := m.rows[key]
	if row == nil || row.lockedBy != id {
		return false
	}
	row.lockedBy = ""
	return true
}

func (m *postgres) openConn(c *pgClient) *pgConn {
	conn := &pgConn{id: len(m.conns) + 1, alive: true, owner: c}
	m.conns = append(m.conns, conn)
	return conn
}

// lockAdvisory grants key to conn now (granted called at once) or queues
// it.
func (m *postgres) lockAdvisory(conn *pgConn, key string, granted func(int64), failed func()) {
	if h := m.holders[key]; h == nil {
		m.holders[key] = conn
		conn.keys = append(conn.keys, key)
		m.seq++
		granted(m.seq)
		return
	}
	m.queues[key] = append(m.queues[key], &pgWaiter{conn: conn, granted: granted, failed: failed})
}

func (m *postgres) unlockAdvisory(conn *pgConn, key string) bool {
	if m.holders[key] != conn {
		return false
	}
	delete(m.holders, key)
	for i, k := range conn.keys {
		if k == key {
			conn.keys = append(conn.keys[:i:i], conn.keys[i+1:]...)
			break
		}
	}
	for len(m.queues[key]) > 0 {
		wt := m.queues[key][0]
		m.queues[key] = m.queues[key][1:]
		if wt.conn.alive {
			m.lockAdvisory(wt.conn, key, wt.granted, wt.failed)
			break
		}
	}
	return true
}

func (m *postgres) closeConn(conn *pgConn) {
	if !conn.alive {
		return
	}
	conn.alive = false
	for _, k := range append([]string(nil), conn.keys...) {
		m.unlockAdvisory(conn, k)
	}
	for k, q := range m.queues {
		kept := q[:0]
		for _, wt := range q {
			if wt.conn != conn {
				kept = append(kept, wt)
			}
		}
		m.queues[k] = kept
	}
}

// pgClient is locks/postgres's client side (Locker or Advisory) for one
// proc.
type pgClient struct {
	m    *postgres
	p    *proc
	gen  uint32
	key  string
	id   string // locked_by
	n    int
	conn *pgConn
}

// query is one statement: no client timeout, as in locks/postgres.
func (c *pgClient) query(op func() func(), failed func()) {
	c.m.r.w.rpc(c.p.n, c.m.n, 0, func(r *call) { r.reply(op()) }, func(rpcErr) { failed() })
}

func (c *pgClient) acquire(key string, done func(bool, int64)) {
	c.gen++
	gen := c.gen
	c.key = key
	if c.m.advisory {
		c.acquireAdvisory(gen, key, done)
		return
	}
	c.n++
	id := c.p.name + " guid:" + itoa(int64(c.n))
	c.id = id
	var deadline int64
	if wt := c.m.r.opts.waitTimeout; wt > 0 {
		deadline = c.p.n.now() + wt
	}
	var attempt func()
	attempt = func() {
		clientNow := c.p.n.now()
		c.query(func() func() {
			tok, ok := c.m.get(key, id, clientNow)
			return func() {
				if c.gen != gen {
					return
				}
				if ok {
					done(true, tok)
					return
				}
				wait := c.m.r.opts.poll
				if deadline != 0 {
					left := deadline - c.p.n.now()
					if left <= 0 {
						done(false, 0)
						return
					}
					wait = min(wait, left)
				}
				c.p.n.after(wait, attempt)
			}
		}, func() {
			if c.gen == gen {
				done(false, 0)
			}
		})
	}
	attempt()
}

// advisoryKey is the advisory lock a key maps to: Locker::Advisory's
// CRC-32 of the key (locks/postgres.Advisory.LockKey, in one lockspace), so
// two keys with the same CRC share one lock.
func advisoryKey(key string) string {
	return strconv.FormatInt(int64(int32(crc32.ChecksumIEEE([]byte(key)))), 10)
}

func (c *pgClient) acquireAdvisory(gen uint32, key string, done func(bool, int64)) {
	w := c.m.r.w
	key = advisoryKey(key)
	// Connect: one round trip, then pg_advisory_lock waits on the server.
	c.query(func() func() {
		conn := c.m.openConn(c)
		return func() {
			if c.gen != gen {
				return
			}
			c.conn = conn
			w.rpc(c.p.n, c.m.n, 0, func(r *call) {
				if !conn.alive {
					r.reply(func() { done(false, 0) })
					return
				}
				c.m.lockAdvisory(conn, key, func(tok int64) {
					r.reply(func() {
						if c.gen == gen {
							done(true, tok)
						}
					})
				}, func() {
					r.reply(func() {
						if c.gen == gen {
							done(false, 0)
						}
					})
				})
			}, func(rpcErr) {
				if c.gen == gen {
					done(false, 0)
				}
			})
			if wt := c.m.r.opts.waitTimeout; wt > 0 {
				// lock_timeout: the server cancels the wait.
				c.m.n.after(wt, func() {
					if conn.alive && c.m.holders[key] != conn {
						c.m.closeConn(conn)
					}
				})
			}
		}
	}, func() {
		if c.gen == gen {
			done(false, 0)
		}
	})
}

func (c *pgClient) renew() {
	gen := c.gen
	if c.m.advisory {
		conn := c.conn
		c.query(func() func() {
			alive := conn != nil && conn.alive
			return func() {
				if c.gen == gen && !alive {
					c.p.onLost("connection holding the advisory lock is gone")
				}
			}
		}, func() {
			if c.gen == gen {
				c.p.onLost("connection holding the advisory lock is gone")
			}
		})
		return
	}
	key, id, clientNow := c.key, c.id, c.p.n.now()
	c.query(func() func() {
		ok := c.m.renewRow(key, id, clientNow)
		return func() {
			if c.gen == gen && !ok {
				c.p.onLost("renew: the row was taken by another owner (LockStolen)")
			}
		}
	}, func() {})
}

func (c *pgClient) release(done func(history.Type)) {
	c.gen++
	key := c.key
	if c.m.advisory {
		key = advisoryKey(key)
		conn := c.conn
		c.conn = nil
		c.query(func() func() {
			ok := conn != nil && conn.alive && c.m.unlockAdvisory(conn, key)
			if conn != nil {
				c.m.closeConn(conn)
			}
			return func() {
				if ok {
					done(history.OK)
				} else {
					done(history.Fail)
				}
			}
		}, func() { done(history.Info) })
		return
	}
	id := c.id
	c.query(func() func() {
		ok := c.m.releaseRow(key, id)
		return func() {
			if ok {
				done(history.OK)
			} else {
				done(history.Fail)
			}
		}
	}, func() { done(history.Info) })
}

func itoa(v int64) string { return string(num(v)) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
