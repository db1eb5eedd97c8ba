package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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

// backend names the backend in every *locks.BackendError of this package.
const backend = "postgres"

// DB is what Locker needs from a database handle: a *pgxpool.Pool does.
// Locker calls it from several goroutines at once (a lease's renewals run
// beside other acquisitions), so a single *pgx.Conn will not do.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ClockSource says whose clock decides whether a lease has expired.
type ClockSource string

const (
	// ClockDB compares locked_until with the database's clock_timestamp(),
	// as Locker does. Client clock skew has no effect.
	ClockDB ClockSource = "db"
	// ClockClient writes and compares timestamps read from the client's
	// injected locks.Clock. A client clock running ahead takes rows that
	// are still held.
	ClockClient ClockSource = "client"
)

// RenewErrors says what a lease does after a renewal that fails with a
// database error (the server down or unreachable, a connection terminated,
// a timeout): not a stolen row, which is always a loss.
type RenewErrors string

const (
	// RenewRetry is locksim's default: the error is returned, the lease is
	// not lost, and the next renewal (locks.Run's next tick) tries again.
	// A lease whose row nobody took in the meantime lives on.
	RenewRetry RenewErrors = "retry"
	// RenewerDies is the gem's: its renewer thread has no rescue
	// (locker.rb lines 48-53), so the first database error of a renewal
	// ends it. The lease renews no more: every later Renew returns an
	// error matching ErrRenewerDied without a statement, Lost is not
	// closed, and the holder runs on until its row expires and is taken;
	// it notices only at Release (ErrLockLost), if then.
	RenewerDies RenewErrors = "stop"
)

// ErrRenewerDied is matched (errors.Is) by the error of every Renew after
// a renewal failed with a database error under RenewerDies: nothing was
// sent, the lease's row is no longer renewed.
var ErrRenewerDied = errors.New("the renewer died at an earlier database error; the lease is no longer renewed")

// Config is what Locker has beyond locks.Options. The zero value is
// locksim's default: table "locks", database clock (as Locker), renewal
// errors retried (RenewRetry; the gem's renewer dies, RenewerDies).
type Config struct {
	// Table is the lock table's name, optionally schema-qualified
	// ("schema.table"); Locker's model. Default "locks".
	Table string
	// Clock is whose clock says "now"; default ClockDB.
	Clock ClockSource
	// RenewErrors is what a renewal's database error does to the lease;
	// default RenewRetry.
	RenewErrors RenewErrors
	// DataTable is where guarded writes (Lease.GuardedPut) keep their
	// data: (key text primary key, value bytea), optionally
	// schema-qualified, created at the first guarded operation. Default
	// "locks_data".
	DataTable string
}

// DefaultOptions are Locker's: lock_for 30 s, renew_every 10 s, and a
// blocking Acquire polls every 0.5 s.
var DefaultOptions = locks.Options{
	TTL:          30 * time.Second,
	RenewEvery:   10 * time.Second,
	PollInterval: 500 * time.Millisecond,
}

// Locker is seed 002's lease-table lock. It is safe for concurrent use.
// Its algorithm is the machine of package locks/postgres/machine
// (machine.Table), which Locker drives over pgx and the simulator drives
// over its model.
type Locker struct {
	db    DB
	cfg   Config
	opts  locks.Options
	table string // quoted identifier
	m     *machine.Table

	data dataTable
}

var _ locks.Locker = (*Locker)(nil)

// New returns a Locker on db, creating the lock table if it is absent.
// opts start from DefaultOptions.
func New(ctx context.Context, db DB, cfg Config, opts ...locks.Option) (*Locker, error) {
	o, err := locks.Apply(DefaultOptions, opts...)
	if err != nil {
		return nil, err
	}
	if cfg.Table == "" {
		cfg.Table = "locks"
	}
	switch cfg.Clock {
	case "":
		cfg.Clock = ClockDB
	case ClockDB, ClockClient:
	default:
		return nil, fmt.Errorf("locks/postgres: unknown clock source %q (want %q or %q)", cfg.Clock, ClockDB, ClockClient)
	}
	switch cfg.RenewErrors {
	case "":
		cfg.RenewErrors = RenewRetry
	case RenewRetry, RenewerDies:
	default:
		return nil, fmt.Errorf("locks/postgres: unknown renewal error policy %q (want %q or %q)", cfg.RenewErrors, RenewRetry, RenewerDies)
	}
	if cfg.DataTable == "" {
		cfg.DataTable = DefaultDataTable
	}
	l := &Locker{db: db, cfg: cfg, opts: o, table: pgx.Identifier(strings.Split(cfg.Table, ".")).Sanitize()}
	l.data.name = pgx.Identifier(strings.Split(cfg.DataTable, ".")).Sanitize()
	l.m = machine.NewTable(TableConfig(l.table, cfg, o))
	l.buildSQL()
	if err := l.createTable(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// TableConfig is the lease table machine's configuration for a Locker on
// table (a quoted identifier) with cfg (after defaults) and o: what the
// simulator's driver uses too, so that both run the same client.
func TableConfig(table string, cfg Config, o locks.Options) machine.TableConfig {
	return machine.TableConfig{
		Table:        table,
		ClientClock:  cfg.Clock == ClockClient,
		RenewerDies:  cfg.RenewErrors == RenewerDies,
		TTL:          o.TTL,
		PollInterval: o.PollInterval,
		WaitTimeout:  o.WaitTimeout,
		Owner:        o.Owner,
	}
}

// buildSQL writes the guarded statements for the table (the lock's own
// statements are the machine's: parameters $1 key, $2 locked_by, then for
// ClockDB $3 the TTL in microseconds; for ClockClient, get takes $3 now
// and $4 now+TTL from the client clock, renew $3 now+TTL).
func (l *Locker) buildSQL() {
	t := l.table
	// Guarded: $1 lock key, $2 locked_by, $3 sequence, $4 data key, $5
	// value. FOR SHARE locks the lock row for the statement's transaction:
	// a concurrent take of the row waits for it, and a take committed
	// first makes the row no longer match (READ COMMITTED re-checks it).
	d := l.data.name
	l.data.putSQL = `INSERT INTO ` + d + ` (key, value) SELECT $4, $5 FROM ` + t +
		` WHERE key = $1 AND locked_by = $2 AND sequence = $3 FOR SHARE` +
		` ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`
	l.data.getSQL = `SELECT d.value FROM ` + t + ` l LEFT JOIN ` + d + ` d ON d.key = $4` +
		` WHERE l.key = $1 AND l.locked_by = $2 AND l.sequence = $3 FOR SHARE OF l`
}

func (l *Locker) createTable(ctx context.Context) error {
	_, err := l.db.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+l.table+` (
		id           bigserial PRIMARY KEY,
		key          text NOT NULL UNIQUE,
		locked_by    text,
		locked_at    timestamptz,
		locked_until timestamptz,
		sequence     bigint NOT NULL DEFAULT 0
	)`)
	var pgErr *pgconn.PgError
	// Two lockers creating the table at once: one of them loses the race
	// on the catalog (duplicate_table, duplicate_object on the row type,
	// or unique_violation on pg_type).
	if errors.As(err, &pgErr) && (pgErr.Code == "42P07" || pgErr.Code == "42710" || pgErr.Code == "23505") {
		err = nil
	}
	return wrap("create table", err)
}

// Options implements locks.Locker.
func (l *Locker) Options() locks.Options { return l.opts }

// Config is the locker's configuration, after defaults.
func (l *Locker) Config() Config { return l.cfg }

// Acquire implements locks.Locker: Locker's blocking run, polling every
// PollInterval until the row is ours, WaitTimeout passes or ctx ends.
func (l *Locker) Acquire(ctx context.Context, key string) (locks.Lease, error) {
	return l.acquire(ctx, machine.Acquire, key)
}

// TryAcquire implements locks.Locker: one get, ErrNotAcquired if the row is
// held by another owner and not expired.
func (l *Locker) TryAcquire(ctx context.Context, key string) (locks.Lease, error) {
	return l.acquire(ctx, machine.TryAcquire, key)
}

func (l *Locker) acquire(ctx context.Context, kind machine.ReqKind, key string) (locks.Lease, error) {
	guid, err := guid()
	if err != nil {
		return nil, err
	}
	s := &Lease{l: l}
	var r tableRun
	switch r.drive(ctx, l, machine.Request{Kind: kind, Key: key, Guid: guid, Lease: &s.m}, nil) {
	case lm.OK:
		s.LostSignal = locks.NewLostSignal(key)
		s.until = r.until
		return s, nil
	case lm.NotAcquired:
		return nil, locks.ErrNotAcquired
	}
	return nil, r.err
}

// guid is the random part of locked_by for one lease (the machine makes
// locked_by the owner, " guid:" and this).
func guid() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// tableRun is one request driven through the lease table's machine.
type tableRun struct {
	c     machine.Call
	err   error     // the request's error, once the machine failed it
	last  error     // the last statement's error
	until time.Time // locked_until of the last get or renew
	n     int64     // a prune's count
}

// drive runs req to its end and returns its result (lease: the Lease
// renewed or released, whose mu it holds around the machine's inputs).
func (r *tableRun) drive(ctx context.Context, l *Locker, req machine.Request, lease *Lease) lm.Result {
	var buf [4]machine.Output
	now := func() int64 { return l.opts.Clock.Now().UnixNano() }
	lock := func() {
		if lease != nil {
			lease.mu.Lock()
		}
	}
	unlock := func() {
		if lease != nil {
			lease.mu.Unlock()
		}
	}
	lock()
	out := l.m.Request(&r.c, req, now(), buf[:0])
	unlock()
	for {
		var next machine.Output
		for i := range out {
			o := &out[i]
			switch o.Kind {
			case machine.OutSend, machine.OutTimer:
				next = *o
			case machine.OutLost:
				lease.Lose(o.Text)
			case machine.OutDied:
				lease.mu.Lock()
				lease.died = r.last
				lease.mu.Unlock()
			case machine.OutFail:
				r.err = r.failure(ctx, lease, o)
			case machine.OutDone:
				if o.Result == lm.Lost {
					r.err = lease.Err()
				}
				r.n = o.N
				return o.Result
			}
		}
		if next.Kind == machine.OutTimer {
			t := l.opts.Clock.NewTimer(next.D)
			select {
			case <-ctx.Done():
				t.Stop()
				out = l.m.Cancel(&r.c, now(), buf[:0])
			case <-t.C():
				out = l.m.Fire(&r.c, now(), buf[:0])
			}
			continue
		}
		rep := r.exec(ctx, l.db, &next.Op)
		lock()
		out = l.m.Reply(&r.c, rep, now(), buf[:0])
		unlock()
	}
}

// failure is the error of a request the machine failed.
func (r *tableRun) failure(ctx context.Context, lease *Lease, o *machine.Output) error {
	switch o.Cause {
	case machine.CauseCancelled:
		return ctx.Err()
	case machine.CauseRenewerDied:
		return &locks.BackendError{Backend: backend, Op: "renew", Err: fmt.Errorf("%w: %v", ErrRenewerDied, lease.RenewerDied())}
	}
	return wrap(o.Text, r.last)
}

// exec sends op through db and reads the answer as the machine's Reply.
func (r *tableRun) exec(ctx context.Context, db DB, op *machine.Op) machine.Reply {
	var rep machine.Reply
	var err error
	switch op.Kind {
	case machine.OpGet:
		// Scanned into locals of their own: only what pgx is given a
		// pointer to goes to the heap.
		var seq int64
		var until time.Time
		err = db.QueryRow(ctx, op.SQL, op.Args()...).Scan(&seq, &until)
		rep.N, r.until = seq, until
	case machine.OpRenew:
		var until time.Time
		err = db.QueryRow(ctx, op.SQL, op.Args()...).Scan(&until)
		r.until = until
	default: // ensure, release, prune
		var tag pgconn.CommandTag
		tag, err = db.Exec(ctx, op.SQL, op.Args()...)
		rep.N = tag.RowsAffected()
		if err == nil && op.Kind == machine.OpRelease && rep.N == 0 {
			rep.Outcome = machine.NoRow
		}
	}
	r.last = err
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		rep.Outcome = machine.NoRow
	case err != nil:
		rep.Outcome = machine.Failed
		rep.Cancelled = errors.Is(context.Cause(ctx), context.Canceled)
	}
	return rep
}

// DefaultDataTable is the table guarded writes use unless configured.
const DefaultDataTable = "locks_data"

// dataTable is the table of guarded writes, created once.
type dataTable struct {
	name           string // quoted identifier
	putSQL, getSQL string

	mu      sync.Mutex
	created bool
}

// create makes the data table if it is absent, once per locker.
func (d *dataTable) create(ctx context.Context, exec func(ctx context.Context, sql string) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.created {
		return nil
	}
	err := exec(ctx, `CREATE TABLE IF NOT EXISTS `+d.name+` (key text PRIMARY KEY, value bytea)`)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42P07" || pgErr.Code == "42710" || pgErr.Code == "23505") {
		err = nil // created by another locker at the same time
	}
	if err != nil {
		return wrap("create data table", err)
	}
	d.created = true
	return nil
}

// Lease is one grant of a Locker row.
type Lease struct {
	*locks.LostSignal
	l *Locker

	mu    sync.Mutex
	m     machine.Lease // the machine's record of the grant
	until time.Time
	// died is the database error that ended the renewer (RenewerDies).
	died error
}

var (
	_ locks.Lease   = (*Lease)(nil)
	_ locks.Guarded = (*Lease)(nil)
)

// Key implements locks.Lease.
func (s *Lease) Key() string { return s.m.Key }

// GuardedPut implements locks.Guarded: one statement that writes value
// under key in Config.DataTable if the lock row still has this lease's
// locked_by and sequence, holding the row with FOR SHARE while it does.
// The check needs no clock: it holds until somebody takes the row (a
// holder past locked_until whose row nobody took still holds it, as
// Locker's renew says). Refused, the lease is lost and the error matches
// locks.ErrNotHeld.
func (s *Lease) GuardedPut(ctx context.Context, key string, value []byte) error {
	if err := s.l.createData(ctx); err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	tag, err := s.l.db.Exec(ctx, s.l.data.putSQL, s.m.Key, s.m.LockedBy, s.m.Token, key, value)
	if err != nil {
		return wrap("guarded put", err)
	}
	if tag.RowsAffected() == 0 {
		return locks.NotHeld(s.Lose("guarded put refused: the row was taken by another owner (LockStolen)"))
	}
	return nil
}

// GuardedGet implements locks.Guarded: one statement that reads key from
// Config.DataTable if the lock row still has this lease's locked_by and
// sequence.
func (s *Lease) GuardedGet(ctx context.Context, key string) ([]byte, error) {
	if err := s.l.createData(ctx); err != nil {
		return nil, err
	}
	var v []byte
	err := s.l.db.QueryRow(ctx, s.l.data.getSQL, s.m.Key, s.m.LockedBy, s.m.Token, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, locks.NotHeld(s.Lose("guarded get refused: the row was taken by another owner (LockStolen)"))
	}
	if err != nil {
		return nil, wrap("guarded get", err)
	}
	return v, nil
}

func (l *Locker) createData(ctx context.Context) error {
	return l.data.create(ctx, func(ctx context.Context, sql string) error {
		_, err := l.db.Exec(ctx, sql)
		return err
	})
}

// Token implements locks.Lease: the row's sequence after this grant.
func (s *Lease) Token() locks.Token { return locks.Token(s.m.Token) }

// LockedBy is this lease's identity in the locked_by column.
func (s *Lease) LockedBy() string { return s.m.LockedBy }

// Until is locked_until as last written by this holder, on the clock that
// Config.Clock names.
func (s *Lease) Until() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.until
}

// Renew implements locks.Lease: Locker's renew, which extends locked_until
// while locked_by is still ours (even past expiry, if nobody took the row).
// A row no longer ours is LockStolen: the lease is lost and the error
// matches locks.ErrLockLost. Another failure is a *locks.BackendError;
// under RenewerDies it is the renewer's last, and every later call returns
// an error matching ErrRenewerDied at once. A renewal abandoned because
// the caller cancelled ctx (not a deadline) does not kill the renewer.
func (s *Lease) Renew(ctx context.Context) error {
	if err := s.Err(); err != nil {
		return err
	}
	var r tableRun
	if r.drive(ctx, s.l, machine.Request{Kind: machine.Renew, Lease: &s.m}, s) != lm.OK {
		return r.err
	}
	s.mu.Lock()
	s.until = r.until
	s.mu.Unlock()
	return nil
}

// RenewerDied is the database error that ended this lease's renewals under
// RenewerDies, or nil while they go on.
func (s *Lease) RenewerDied() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.died
}

// Release implements locks.Lease: Locker's release, which clears locked_by
// if it is still ours and changes nothing otherwise.
func (s *Lease) Release(ctx context.Context) error {
	var r tableRun
	if r.drive(ctx, s.l, machine.Request{Kind: machine.Release, Lease: &s.m}, s) != lm.OK {
		return r.err
	}
	return nil
}

// Prune is Locker.prune (locker.rb lines 29-32): it deletes every row of
// the table whose locked_until is earlier than before, and returns how many
// it deleted. before is the caller's instant, compared with locked_until as
// the gem compares its argument: on the client's clock, whatever
// Config.Clock says. A free row (locked_by NULL) and a held row whose
// lease ran out are deleted alike; a row never locked (locked_until NULL)
// is kept.
//
// Deleting a row restarts its count: the next Acquire or TryAcquire
// creates the row again with sequence 0, so the next grant's token is 1,
// not above the tokens granted before the prune. A fenced resource that
// saw an earlier holder's token rejects the new holder's writes, and an
// earlier holder still running (its lease ran out, its row was deleted)
// has a token above the legitimate holder's: prune defeats fencing. A
// holder whose row was deleted loses it at its next Renew (LockStolen), as
// in the gem. A blocking Acquire already polling when its row is deleted
// waits until its wait timeout or ctx ends, as the gem's blocking run
// loops on get forever (its row is made once, at Locker.new, line 26).
func (l *Locker) Prune(ctx context.Context, before time.Time) (int64, error) {
	var r tableRun
	if r.drive(ctx, l, machine.Request{Kind: machine.Prune, Before: before.UnixNano()}, nil) != lm.OK {
		return 0, r.err
	}
	return r.n, nil
}

// wrap makes err a *locks.BackendError for op; nil stays nil.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return &locks.BackendError{Backend: backend, Op: op, Err: err}
}
