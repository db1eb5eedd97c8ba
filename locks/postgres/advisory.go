package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/locksim/locksim/locks"
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
// use.
type Advisory struct {
	connConfig *pgx.ConnConfig
	cfg        AdvisoryConfig
	opts       locks.Options

	trySQL, lockSQL, nextSQL string
	data                     dataTable
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
	// The CASE takes a token only once the lock is granted.
	seqName := pgx.Identifier(strings.Split(cfg.Sequence, ".")).Sanitize()
	seq := quoteLiteral(seqName)
	a.trySQL = `SELECT CASE WHEN pg_try_advisory_lock($1::int4, $2::int4) THEN nextval(` + seq + `) END`
	a.lockSQL = `SELECT pg_advisory_lock($1::int4, $2::int4)`
	a.nextSQL = `SELECT nextval(` + seq + `)`

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

// LockKey is the advisory lock key pair for key: (Lockspace, CRC-32 of key
// as a signed int4), as Locker::Advisory computes it.
func (a *Advisory) LockKey(key string) (int32, int32) {
	return a.cfg.Lockspace, int32(crc32.ChecksumIEEE([]byte(key)))
}

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
	conn, err := a.connect(ctx)
	if err != nil {
		return nil, err
	}
	space, h := a.LockKey(key)
	var token *int64
	if err := conn.QueryRow(ctx, a.trySQL, space, h).Scan(&token); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, wrap("acquire", err)
	}
	if token == nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, locks.ErrNotAcquired
	}
	return a.newLease(conn, key, *token), nil
}

// Acquire implements locks.Locker: pg_advisory_lock on a new connection,
// waiting on the server until the lock is granted, WaitTimeout passes
// (lock_timeout; ErrNotAcquired) or ctx ends. Then the token.
func (a *Advisory) Acquire(ctx context.Context, key string) (locks.Lease, error) {
	conn, err := a.connect(ctx)
	if err != nil {
		return nil, err
	}
	lease, err := a.lock(ctx, conn, key)
	if err != nil {
		// Whatever the server did, the lock dies with the connection.
		conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return lease, nil
}

func (a *Advisory) lock(ctx context.Context, conn *pgx.Conn, key string) (locks.Lease, error) {
	if a.opts.WaitTimeout > 0 {
		ms := a.opts.WaitTimeout.Milliseconds()
		if _, err := conn.Exec(ctx, fmt.Sprintf("SET lock_timeout = %d", max(ms, 1))); err != nil {
			return nil, wrap("acquire", err)
		}
	}
	space, h := a.LockKey(key)
	if _, err := conn.Exec(ctx, a.lockSQL, space, h); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_not_available
			return nil, locks.ErrNotAcquired
		}
		return nil, wrap("acquire", err)
	}
	var token int64
	if err := conn.QueryRow(ctx, a.nextSQL).Scan(&token); err != nil {
		return nil, wrap("acquire", err)
	}
	return a.newLease(conn, key, token), nil
}

func (a *Advisory) newLease(conn *pgx.Conn, key string, token int64) *AdvisoryLease {
	space, h := a.LockKey(key)
	return &AdvisoryLease{
		LostSignal: locks.NewLostSignal(key),
		a:          a, key: key, space: space, hash: h,
		token: locks.Token(token),
		conn:  conn, pid: conn.PgConn().PID(),
	}
}

// AdvisoryLease is one advisory lock held by its own connection.
type AdvisoryLease struct {
	*locks.LostSignal
	a     *Advisory
	key   string
	space int32
	hash  int32
	token locks.Token
	pid   uint32

	mu   sync.Mutex // serializes use of conn
	conn *pgx.Conn  // nil once released or lost
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
		tag, err := conn.Exec(ctx, s.a.data.putSQL, key, value, s.space, s.hash)
		return tag.RowsAffected() == 1, err
	})
}

// GuardedGet implements locks.Guarded: one statement on the lock's
// connection that reads key from AdvisoryConfig.DataTable if this session
// holds the lock.
func (s *AdvisoryLease) GuardedGet(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := s.guarded(ctx, "guarded get", func(conn *pgx.Conn) (bool, error) {
		err := conn.QueryRow(ctx, s.a.data.getSQL, key, s.space, s.hash).Scan(&v)
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
		return locks.NotHeld(&locks.LostError{Key: s.key, Reason: op + " after release"})
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
		return errors.Join(wrap(op, err), s.Lose(fmt.Sprintf("%s: connection holding the advisory lock is gone: %v", op, err)))
	case err != nil:
		return wrap(op, err)
	case !held:
		return locks.NotHeld(s.Lose(op + " refused: this session does not hold the advisory lock"))
	}
	return nil
}

// Key implements locks.Lease.
func (s *AdvisoryLease) Key() string { return s.key }

// Token implements locks.Lease: the sequence value taken after the grant.
func (s *AdvisoryLease) Token() locks.Token { return s.token }

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
	if s.conn == nil {
		return s.Lose("renew after release")
	}
	if _, err := s.conn.Exec(ctx, "SELECT 1"); err != nil {
		if s.conn.IsClosed() {
			s.conn = nil
			return s.Lose(fmt.Sprintf("connection holding the advisory lock is gone: %v", err))
		}
		return wrap("renew", err)
	}
	return nil
}

// Release implements locks.Lease: pg_advisory_unlock, then close the
// connection. If the connection was already dead, the lock had gone with
// it: Release returns an error matching locks.ErrLockLost.
func (s *AdvisoryLease) Release(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		if err := s.Err(); err != nil {
			return err
		}
		return nil // released before
	}
	conn := s.conn
	s.conn = nil
	defer conn.Close(context.WithoutCancel(ctx))
	var unlocked bool
	err := conn.QueryRow(ctx, "SELECT pg_advisory_unlock($1::int4, $2::int4)", s.space, s.hash).Scan(&unlocked)
	switch {
	case err != nil && conn.IsClosed():
		return s.Lose(fmt.Sprintf("release: connection holding the advisory lock is gone: %v", err))
	case err != nil:
		return wrap("release", err) // closing the connection frees the lock anyway
	case !unlocked:
		return s.Lose("release: this session did not hold the advisory lock")
	}
	return nil
}

// quoteLiteral quotes s as an SQL string literal.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
