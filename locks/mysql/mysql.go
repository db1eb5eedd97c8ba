package mysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/locksim/locksim/locks"
	lm "github.com/locksim/locksim/locks/machine"
	"github.com/locksim/locksim/locks/mysql/machine"
)

// Defaults is what New starts from: the pinned connection is pinged every
// 5 s. TTL has no effect on a named lock (it lives as long as its
// connection) and is only there to satisfy locks.Apply; PollInterval is
// unused (Acquire waits on the server).
var Defaults = locks.Options{
	TTL:          30 * time.Second,
	RenewEvery:   5 * time.Second,
	PollInterval: 5 * time.Millisecond,
}

// DefaultTokenTable is where the fencing counters live.
const DefaultTokenTable = "locksim_mysql_token"

// DefaultTimeout bounds each statement beyond GET_LOCK's wait.
const DefaultTimeout = 5 * time.Second

// Config is what the Locker has beyond locks.Options. The zero value is
// usable.
type Config struct {
	// TokenTable holds a counter row per lock name (default
	// DefaultTokenTable); created if absent. A bare identifier.
	TokenTable string
	// Timeout bounds each statement (connect, token, renew, release) and
	// GET_LOCK beyond its wait (default DefaultTimeout), on true time.
	Timeout time.Duration
	// Pooled takes, renews and releases the lock on database/sql's pool
	// instead of a pinned connection, and the pool keeps no idle
	// connection (SetMaxIdleConns(0)): the pitfall, in which the lock's
	// connection is closed as soon as GET_LOCK's row is read and the
	// lock silently goes. For showing the failure, not for use.
	Pooled bool
}

// MachineConfig is the client machine's configuration for cfg and the
// options o (after locks.Apply), with New's defaults. The real driver and
// the simulator both build their machines with it.
func MachineConfig(cfg Config, o locks.Options) machine.Config {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	return machine.Config{Timeout: cfg.Timeout, WaitTimeout: o.WaitTimeout, Pooled: cfg.Pooled}
}

// Locker is a lock client on one MySQL or MariaDB server. It is safe for
// concurrent use. Close closes its pool.
type Locker struct {
	db       *sql.DB
	m        *machine.Machine
	cfg      Config
	opts     locks.Options
	tokenSQL string
}

var _ locks.Locker = (*Locker)(nil)

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// New returns a Locker on the server of dsn (a go-sql-driver/mysql data
// source name, e.g. "root@tcp(127.0.0.1:3306)/locksim"), with Defaults and
// opts, creating the token table if it is absent.
func New(ctx context.Context, dsn string, cfg Config, opts ...locks.Option) (*Locker, error) {
	o, err := locks.Apply(Defaults, opts...)
	if err != nil {
		return nil, err
	}
	if cfg.TokenTable == "" {
		cfg.TokenTable = DefaultTokenTable
	}
	if !identRe.MatchString(cfg.TokenTable) {
		return nil, fmt.Errorf("mysql: token table %q is not a bare identifier", cfg.TokenTable)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	dc, err := gomysql.ParseDSN(dsn)
	if err != nil {
		return nil, backendErr("connect", err)
	}
	if dc.Timeout <= 0 {
		dc.Timeout = cfg.Timeout // the dial
	}
	conn, err := gomysql.NewConnector(dc)
	if err != nil {
		return nil, backendErr("connect", err)
	}
	db := sql.OpenDB(conn)
	if cfg.Pooled {
		db.SetMaxIdleConns(0)
	}
	l := &Locker{
		db: db, m: machine.New(MachineConfig(cfg, o)), cfg: cfg, opts: o,
		tokenSQL: "INSERT INTO `" + cfg.TokenTable + "` (name, n) VALUES (?, LAST_INSERT_ID(1)) ON DUPLICATE KEY UPDATE n = LAST_INSERT_ID(n + 1)",
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if _, err := db.ExecContext(cctx, "CREATE TABLE IF NOT EXISTS `"+cfg.TokenTable+"` (name VARBINARY(255) PRIMARY KEY, n BIGINT NOT NULL) ENGINE=InnoDB"); err != nil {
		db.Close()
		return nil, backendErr("create token table", err)
	}
	return l, nil
}

// Options implements locks.Locker.
func (l *Locker) Options() locks.Options { return l.opts }

// Config is the locker's configuration, after defaults.
func (l *Locker) Config() Config { return l.cfg }

// DB is the locker's pool.
func (l *Locker) DB() *sql.DB { return l.db }

// Close closes the locker's pool; the leases' pinned connections close
// when they are released or lost.
func (l *Locker) Close() error { return l.db.Close() }

// Acquire implements locks.Locker: a pinned connection, GET_LOCK on it
// waiting on the server until the lock is granted, WaitTimeout passes
// (locks.ErrNotAcquired) or ctx ends; then the token.
func (l *Locker) Acquire(ctx context.Context, key string) (locks.Lease, error) {
	return l.acquire(ctx, machine.Acquire, key)
}

// TryAcquire implements locks.Locker: GET_LOCK(key, 0) on a pinned
// connection, which is hung up again if the lock is held elsewhere.
func (l *Locker) TryAcquire(ctx context.Context, key string) (locks.Lease, error) {
	return l.acquire(ctx, machine.TryAcquire, key)
}

func (l *Locker) acquire(ctx context.Context, kind machine.ReqKind, key string) (locks.Lease, error) {
	le := &Lease{l: l, lost: locks.NewLostSignal(key)}
	r := run{l: l, lease: le}
	switch r.drive(ctx, machine.Request{Kind: kind, Key: key, Lease: &le.m}) {
	case lm.OK:
		le.conn = r.conn
		return le, nil
	case lm.NotAcquired:
		return nil, locks.ErrNotAcquired
	}
	return nil, r.err
}

// run is one request driven through the machine.
type run struct {
	l     *Locker
	lease *Lease
	c     machine.Call
	conn  *sql.Conn // the pinned connection
	err   error
	last  error // the last reply's error
}

// drive runs req to its end and returns its result; r.err is the error of
// a failed, lost or cancelled request.
func (r *run) drive(ctx context.Context, req machine.Request) lm.Result {
	var buf [4]machine.Output
	out := r.l.m.Request(&r.c, req, 0, buf[:0])
	for {
		var next *machine.Output
		for i := range out {
			o := &out[i]
			switch o.Kind {
			case machine.OutSend:
				next = o
			case machine.OutClose:
				r.close(o.Drop)
			case machine.OutLost:
				msg := o.LossText()
				if r.last != nil {
					msg += ": " + r.last.Error()
				}
				r.lease.lost.Lose(msg)
			case machine.OutFail:
				if o.Cause == machine.CauseCancelled {
					r.err = ctx.Err()
				} else {
					err := r.last
					if err == nil {
						err = errors.New("unexpected answer")
					}
					r.err = backendErr(o.Text, err)
				}
			case machine.OutDone:
				if o.Result == lm.Lost {
					r.err = r.lease.lost.Err()
				}
				return o.Result
			}
		}
		if next == nil {
			return lm.Failed // a machine always sends or ends
		}
		op := *next
		if !op.Detached && ctx.Err() != nil {
			out = r.l.m.Cancel(&r.c, 0, buf[:0])
			continue
		}
		rep := r.exec(ctx, &op.Op, op.D)
		if rep.Outcome == machine.Dead && ctx.Err() != nil && (r.c.Kind() == machine.Acquire || r.c.Kind() == machine.TryAcquire) {
			out = r.l.m.Cancel(&r.c, 0, buf[:0])
			continue
		}
		out = r.l.m.Reply(&r.c, rep, 0, buf[:0])
	}
}

// exec runs op with deadline d (within ctx) and reads the answer as the
// machine's Reply.
func (r *run) exec(ctx context.Context, o *machine.Op, d time.Duration) machine.Reply {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var q interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
		ExecContext(context.Context, string, ...any) (sql.Result, error)
	} = r.l.db
	if !o.Pooled && o.Kind != machine.OpConnect {
		if r.conn == nil {
			if r.lease.conn == nil {
				r.last = errors.New("no connection")
				return machine.Reply{Outcome: machine.Dead}
			}
			r.conn = r.lease.conn
		}
		q = r.conn
	}
	var err error
	var rep machine.Reply
	var n sql.NullInt64
	switch o.Kind {
	case machine.OpConnect:
		r.conn, err = r.l.db.Conn(ctx)
		rep.Outcome = machine.OK
	case machine.OpGetLock:
		err = q.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?), CONNECTION_ID()", o.Name, o.Wait).Scan(&n, &rep.ConnID)
	case machine.OpToken:
		var res sql.Result
		if res, err = q.ExecContext(ctx, r.l.tokenSQL, o.Name); err == nil {
			n.Int64, err = res.LastInsertId()
			n.Valid = err == nil
		}
	case machine.OpCheck:
		err = q.QueryRowContext(ctx, "SELECT IS_USED_LOCK(?)", o.Name).Scan(&n)
	case machine.OpRelease:
		err = q.QueryRowContext(ctx, "SELECT RELEASE_LOCK(?)", o.Name).Scan(&n)
	case machine.OpPing:
		err = r.l.db.PingContext(ctx)
		rep.Outcome = machine.OK
	}
	r.last = err
	var me *gomysql.MySQLError
	switch {
	case err == nil && (o.Kind == machine.OpConnect || o.Kind == machine.OpPing):
		return rep
	case err == nil && n.Valid:
		rep.Outcome, rep.N = machine.Int, n.Int64
	case err == nil:
		rep.Outcome = machine.Null
	case errors.As(err, &me):
		rep.Outcome = machine.Error
	default:
		// Refused, reset, timed out, cut off: go-sql-driver gives such a
		// connection up.
		rep.Outcome = machine.Dead
	}
	return rep
}

// close ends the pinned connection: drop hangs it up (the server frees
// what it holds), else it goes back to the pool.
func (r *run) close(drop bool) {
	c := r.conn
	if c == nil {
		c = r.lease.conn
	}
	if c == nil {
		return
	}
	if drop {
		_ = c.Raw(func(any) error { return driver.ErrBadConn })
	}
	_ = c.Close()
	r.conn, r.lease.conn = nil, nil
}

func backendErr(op string, err error) error {
	var be *locks.BackendError
	if errors.As(err, &be) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &locks.BackendError{Backend: "mysql", Op: op, Err: err}
}

// Lease is one named lock held by its pinned connection. It is safe for
// concurrent use.
type Lease struct {
	l    *Locker
	lost *locks.LostSignal
	m    machine.Lease

	mu   sync.Mutex // serializes the lease's requests
	conn *sql.Conn  // nil once released or lost (and always when Pooled)
}

var _ locks.Lease = (*Lease)(nil)

// Key implements locks.Lease.
func (le *Lease) Key() string { return le.m.Key }

// Token implements locks.Lease: the lock name's counter row, incremented
// at the grant on the lock's connection.
func (le *Lease) Token() locks.Token { return locks.Token(le.m.Token) }

// ConnectionID is the server's id of the connection holding the lock
// (what IS_USED_LOCK answers, and KILL takes).
func (le *Lease) ConnectionID() int64 { return le.m.ConnID }

// Lost implements locks.Lease.
func (le *Lease) Lost() <-chan struct{} { return le.lost.Lost() }

// Err implements locks.Lease.
func (le *Lease) Err() error { return le.lost.Err() }

// Renew implements locks.Lease: SELECT IS_USED_LOCK(name) on the pinned
// connection. Another connection's id or none, or the connection dead,
// and the lease is lost (Lost closed, an error matching locks.ErrLockLost).
func (le *Lease) Renew(ctx context.Context) error {
	return le.request(ctx, machine.Renew)
}

// Release implements locks.Lease: RELEASE_LOCK(name) on the pinned
// connection, which then goes back to the pool. A lock no longer ours
// returns an error matching locks.ErrLockLost.
func (le *Lease) Release(ctx context.Context) error {
	return le.request(ctx, machine.Release)
}

func (le *Lease) request(ctx context.Context, kind machine.ReqKind) error {
	le.mu.Lock()
	defer le.mu.Unlock()
	if err := le.lost.Err(); err != nil {
		return err
	}
	if kind == machine.Release && le.conn == nil && !le.l.cfg.Pooled {
		return nil // released before
	}
	r := run{l: le.l, lease: le, conn: le.conn}
	res := r.drive(ctx, machine.Request{Kind: kind, Lease: &le.m})
	le.conn = r.conn
	if res == lm.OK {
		return nil
	}
	return r.err
}

// RunConfig is the Config of a locksim run, real (package harness) and
// simulated (package sim): both build it here, so that both get the same
// timeout and connection mode.
func RunConfig(pooled bool) Config {
	return Config{Timeout: DefaultTimeout, Pooled: pooled}
}
