package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/locksim/locksim/locks"
	lm "github.com/locksim/locksim/locks/machine"
	"github.com/locksim/locksim/locks/postgres/machine"
)

// AdvisoryConfig is what Advisory has beyond locks.Options. The zero value
// is usable.
type AdvisoryConfig struct {
	// Lockspace is the first int4 of the advisory lock key, as in
	// Locker::Advisory (default 1).
	Lockspace int32
	// Sequence is the sequence the tokens come from, optionally
	// schema-qualified; created if absent. Default "locksim_advisory_token".
	Sequence string
	// DataTable is where guarded writes (AdvisoryLease.GuardedPut) keep
	// their data, as Config.DataTable. Default "locks_data".
	DataTable string
}

// DefaultAdvisoryOptions are Advisory's defaults: its connection is checked
// every 5 s, as Locker::Advisory does. TTL has no effect on an advisory
// lock (it lives as long as its connection) and is only there to satisfy
// locks.Apply; PollInterval is unused (Acquire waits on the server).
var DefaultAdvisoryOptions = locks.Options{
	TTL:          30 * time.Second,
	RenewEvery:   5 * time.Second,
	PollInterval: 5 * time.Millisecond,
}

// Advisory is a lock on PostgreSQL session-level advisory locks, each held
// by a connection opened for that lease alone. It is safe for concurrent
// use. Its algorithm is the machine of package locks/postgres/machine
// (machine.Advisory), which Advisory drives over pgx and the simulator
// drives over its model.
type Advisory struct {
	connConfig *pgx.ConnConfig
	cfg        AdvisoryConfig
	opts       locks.Options
	m          *machine.Advisory

	data dataTable
}

var _ locks.Locker = (*Advisory)(nil)

// NewAdvisory returns an Advisory locker that connects with connString for
// every lease, creating the token sequence if it is absent. opts start from
// DefaultAdvisoryOptions; WaitTimeout bounds a blocking Acquire through the
// server's lock_timeout.
func NewAdvisory(ctx context.Context, connString string, cfg AdvisoryConfig, opts ...locks.Option) (*Advisory, error) {
	o, err := locks.Apply(DefaultAdvisoryOptions, opts...)
	if err != nil {
		return nil, err
	}
	cc, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, wrap("connect", err)
	}
	if cfg.Lockspace == 0 {
		cfg.Lockspace = 1
	}
	if cfg.Sequence == "" {
		cfg.Sequence = "locksim_advisory_token"
	}
	if cfg.DataTable == "" {
		cfg.DataTable = DefaultDataTable
	}
	a := &Advisory{connConfig: cc, cfg: cfg, opts: o}
	// Guarded: $1 data key, $2 value, $3 and $4 the lock's key pair. The
	// statement runs on the connection that holds the lock, and checks
	// pg_locks that this session still holds it (a two-int4 advisory lock
	// is classid, objid, objsubid 2).
	a.data.name = pgx.Identifier(strings.Split(cfg.DataTable, ".")).Sanitize()
	held := `EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted` +
		` AND classid = $3::int4::oid AND objid = $4::int4::oid AND objsubid = 2)`
	a.data.putSQL = `INSERT INTO ` + a.data.name + ` (key, value) SELECT $1, $2 WHERE ` + held +
		` ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`
	a.data.getSQL = `SELECT (SELECT value FROM ` + a.data.name + ` WHERE key = $1) WHERE ` + strings.ReplaceAll(strings.ReplaceAll(held, "$3", "$2"), "$4", "$3")
	seqName := pgx.Identifier(strings.Split(cfg.Sequence, ".")).Sanitize()
	a.m = machine.NewAdvisory(AdvisoryMachineConfig(seqName, cfg, o))

	conn, err := a.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, `CREATE SEQUENCE IF NOT EXISTS `+seqName)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42P07" || pgErr.Code == "23505") {
		err = nil // created by another locker at the same time
	}
	if err != nil {
		return nil, wrap("create sequence", err)
	}
	return a, nil
}

// Options implements locks.Locker.
func (a *Advisory) Options() locks.Options { return a.opts }

// Config is the advisory locker's lockspace and sequence, after defaults.
func (a *Advisory) Config() AdvisoryConfig { return a.cfg }

// AdvisoryMachineConfig is the advisory machine's configuration for an
// Advisory with the token sequence seq (a quoted identifier), cfg (after
// defaults) and o: what the simulator's driver uses too.
func AdvisoryMachineConfig(seq string, cfg AdvisoryConfig, o locks.Options) machine.AdvisoryConfig {
	return machine.AdvisoryConfig{Lockspace: cfg.Lockspace, Sequence: seq, WaitTimeout: o.WaitTimeout}
}

// LockKey is the advisory lock key pair for key: (Lockspace, CRC-32 of key
// as a signed int4), as Locker::Advisory computes it.
func (a *Advisory) LockKey(key string) (int32, int32) { return a.m.LockKey(key) }

func (a *Advisory) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, a.connConfig.Copy())
	if err != nil {
		return nil, wrap("connect", err)
	}
	return conn, nil
}

// TryAcquire implements locks.Locker: pg_try_advisory_lock on a new
// connection, which is closed again if the lock is held elsewhere.
func (a *Advisory) TryAcquire(ctx context.Context, key string) (locks.Lease, error) {
	return a.acquire(ctx, machine.TryAcquire, key)
}

// Acquire implements locks.Locker: pg_advisory_lock on a new connection,
// waiting on the server until the lock is granted, WaitTimeout passes
// (lock_timeout; ErrNotAcquired) or ctx ends. Then the token.
func (a *Advisory) Acquire(ctx context.Context, key string) (locks.Lease, error) {
	return a.acquire(ctx, machine.Acquire, key)
}

func (a *Advisory) acquire(ctx context.Context, kind machine.ReqKind, key string) (locks.Lease, error) {
	s := &AdvisoryLease{a: a}
	var r advRun
	switch r.drive(ctx, a, machine.Request{Kind: kind, Key: key, Lease: &s.m}, nil) {
	case lm.OK:
		s.LostSignal = locks.NewLostSignal(key)
		s.conn, s.pid = r.conn, r.conn.PgConn().PID()
		return s, nil
	case lm.NotAcquired:
		return nil, locks.ErrNotAcquired
	}
	return nil, r.err
}

// advRun is one request driven through the advisory machine.
type advRun struct {
	c    machine.Call
	conn *pgx.Conn // the connection the request uses
	err  error     // the request's error, once the machine failed it
	last error     // the last statement's error
	op   machine.OpKind
}

// drive runs req to its end and returns its result; lease (renew,
// release) is the AdvisoryLease, whose mu the caller holds.
func (r *advRun) drive(ctx context.Context, a *Advisory, req machine.Request, lease *AdvisoryLease) lm.Result {
	var buf [4]machine.Output
	now := func() int64 { return a.opts.Clock.Now().UnixNano() }
	out := a.m.Request(&r.c, req, now(), buf[:0])
	for {
		var next *machine.Output
		for i := range out {
			o := &out[i]
			switch o.Kind {
			case machine.OutSend:
				next = o
			case machine.OutClose:
				if r.conn != nil {
					r.conn.Close(context.WithoutCancel(ctx))
				}
			case machine.OutLost:
				reason := o.Text
				if o.Gone {
					reason = fmt.Sprintf("%s: %v", reason, r.last)
				}
				lease.Lose(reason)
			case machine.OutFail:
				r.err = r.failure(ctx, o)
			case machine.OutDone:
				if o.Result == lm.Lost {
					r.err = lease.Err()
				}
				return o.Result
			}
		}
		if next == nil {
			return lm.Failed // no timers: not reached
		}
		rep := r.exec(ctx, a, &next.Op)
		out = a.m.Reply(&r.c, rep, now(), buf[:0])
	}
}

// failure is the error of a request the machine failed.
func (r *advRun) failure(ctx context.Context, o *machine.Output) error {
	if o.Cause == machine.CauseCancelled || (r.op == machine.OpLock && ctx.Err() != nil) {
		return ctx.Err()
	}
	return wrap(o.Text, r.last)
}

// exec sends op on the request's connection (OpConnect: opens it) and
// reads the answer as the machine's Reply.
func (r *advRun) exec(ctx context.Context, a *Advisory, op *machine.Op) machine.Reply {
	var rep machine.Reply
	var err error
	r.op = op.Kind
	switch op.Kind {
	case machine.OpConnect:
		r.conn, err = pgx.ConnectConfig(ctx, a.connConfig.Copy())
	case machine.OpSetLockTimeout, machine.OpPing:
		_, err = r.conn.Exec(ctx, op.SQL)
	case machine.OpLock:
		_, err = r.conn.Exec(ctx, op.SQL, op.Args()...)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_not_available
			r.last = err
			return machine.Reply{Outcome: machine.LockTimeout}
		}
	case machine.OpTryLock:
		var token *int64
		err = r.conn.QueryRow(ctx, op.SQL, op.Args()...).Scan(&token)
		if err == nil && token == nil {
			rep.Outcome = machine.NoRow
		} else if token != nil {
			rep.N = *token
		}
	case machine.OpNextval:
		var token int64 // a local of its own: only it goes to the heap
		err = r.conn.QueryRow(ctx, op.SQL).Scan(&token)
		rep.N = token
	case machine.OpUnlock:
		var unlocked bool
		err = r.conn.QueryRow(ctx, op.SQL, op.Args()...).Scan(&unlocked)
		if err == nil && !unlocked {
			rep.Outcome = machine.NoRow
		}
	}
	r.last = err
	if err != nil {
		rep.Outcome = machine.Failed
		rep.Closed = r.conn == nil || r.conn.IsClosed()
		rep.Cancelled = errors.Is(context.Cause(ctx), context.Canceled)
	}
	return rep
}

// AdvisoryLease is one advisory lock held by its own connection.
type AdvisoryLease struct {
	*locks.LostSignal
	a   *Advisory
	pid uint32

	mu   sync.Mutex    // serializes use of conn and m
	m    machine.Lease // the machine's record of the grant
	conn *pgx.Conn     // nil once released or lost
}

var (
	_ locks.Lease   = (*AdvisoryLease)(nil)
	_ locks.Guarded = (*AdvisoryLease)(nil)
)

// GuardedPut implements locks.Guarded: one statement on the connection
// that holds the advisory lock, which writes value under key in
// AdvisoryConfig.DataTable if pg_locks shows that this session holds the
// lock. Only this session can release its lock, and its statements run
// one at a time, so the lock cannot go between the check and the write;
// if the session is gone (the server ended it, the connection broke), so
// is the lock, and nothing it sent afterwards can be written. Refused,
// the lease is lost and the error matches locks.ErrNotHeld; a connection
// that broke during the statement leaves the outcome unknown: the error is
// a *locks.BackendError that also matches locks.ErrLockLost (not
// ErrNotHeld), and the lease is lost.
func (s *AdvisoryLease) GuardedPut(ctx context.Context, key string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	return s.guarded(ctx, "guarded put", func(conn *pgx.Conn) (bool, error) {
		tag, err := conn.Exec(ctx, s.a.data.putSQL, key, value, s.m.Space, s.m.Hash)
		return tag.RowsAffected() == 1, err
	})
}

// GuardedGet implements locks.Guarded: one statement on the lock's
// connection that reads key from AdvisoryConfig.DataTable if this session
// holds the lock.
func (s *AdvisoryLease) GuardedGet(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := s.guarded(ctx, "guarded get", func(conn *pgx.Conn) (bool, error) {
		err := conn.QueryRow(ctx, s.a.data.getSQL, key, s.m.Space, s.m.Hash).Scan(&v)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		return err == nil, err
	})
	return v, err
}

func (s *AdvisoryLease) guarded(ctx context.Context, op string, do func(*pgx.Conn) (bool, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		if err := s.Err(); err != nil {
			return locks.NotHeld(err)
		}
		return locks.NotHeld(&locks.LostError{Key: s.m.Key, Reason: op + " after release"})
	}
	err := s.a.data.create(ctx, func(ctx context.Context, sql string) error {
		_, err := s.conn.Exec(ctx, sql)
		return err
	})
	var held bool
	if err == nil {
		held, err = do(s.conn)
	}
	switch {
	case err != nil && s.conn.IsClosed():
		s.conn = nil
		s.m.ConnectionGone()
		return errors.Join(wrap(op, err), s.Lose(fmt.Sprintf("%s: connection holding the advisory lock is gone: %v", op, err)))
	case err != nil:
		return wrap(op, err)
	case !held:
		return locks.NotHeld(s.Lose(op + " refused: this session does not hold the advisory lock"))
	}
	return nil
}

// Key implements locks.Lease.
func (s *AdvisoryLease) Key() string { return s.m.Key }

// Token implements locks.Lease: the sequence value taken after the grant.
func (s *AdvisoryLease) Token() locks.Token { return locks.Token(s.m.Token) }

// BackendPID is the server process id of the connection holding the lock
// (what pg_terminate_backend takes).
func (s *AdvisoryLease) BackendPID() uint32 { return s.pid }

// Renew implements locks.Lease. An advisory lock needs no renewal: Renew
// checks that the connection holding it is alive (SELECT 1). If the
// connection is dead the lock is gone: Renew closes Lost() and returns an
// error matching locks.ErrLockLost.
func (s *AdvisoryLease) Renew(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.Err(); err != nil {
		return err
	}
	return s.request(ctx, machine.Renew)
}

// Release implements locks.Lease: pg_advisory_unlock, then close the
// connection. If the connection was already dead, the lock had gone with
// it: Release returns an error matching locks.ErrLockLost.
func (s *AdvisoryLease) Release(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.request(ctx, machine.Release)
}

// request drives a renewal or release on the lease's connection; s.mu is
// held.
func (s *AdvisoryLease) request(ctx context.Context, kind machine.ReqKind) error {
	r := advRun{conn: s.conn}
	res := r.drive(ctx, s.a, machine.Request{Kind: kind, Lease: &s.m}, s)
	if s.m.Gone() {
		s.conn = nil
	}
	if res != lm.OK {
		return r.err
	}
	return nil
}
