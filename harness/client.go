package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/resource"
	"github.com/locksim/locksim/scenario"
)

// ClientConfig is everything a client process needs; the harness passes it
// as JSON.
type ClientConfig struct {
	Proc        string        `json:"proc"`
	RunStart    int64         `json:"run_start"` // CLOCK_MONOTONIC ns at the start of the run
	Seed        uint64        `json:"seed"`
	Backend     BackendClient `json:"backend"`
	ResourceURL string        `json:"resource_url"`
	Keys        []string      `json:"keys"`
	Workload    string        `json:"workload"` // counter, rotation or list
	Items       int           `json:"items"`    // list: how many distinct items
	HoldMin     time.Duration `json:"hold_min"`
	HoldMax     time.Duration `json:"hold_max"`
	// Fencing is the scenario's workload.fencing (scenario.Fencing): none,
	// writes and all go to the resource at ResourceURL; guarded reads and
	// writes the counter in the lock service's own store, through the
	// lease's locks.Guarded.
	Fencing     string        `json:"fencing"`
	TTL         time.Duration `json:"ttl"`
	RenewEvery  time.Duration `json:"renew_every"`
	Poll        time.Duration `json:"poll"`
	WaitTimeout time.Duration `json:"wait_timeout"`
	OpTimeout   time.Duration `json:"op_timeout"` // bounds reads, writes and releases
	// StartDelay is how long the client waits, on true time, before its
	// workload begins: its start offset (scenario.Timing).
	StartDelay time.Duration `json:"start_delay"`
}

// setLock sets cfg's lock settings from the scenario's, by the rules the
// simulator uses: the renew interval is scenario.Lock.Renewal (with a TTL
// alone, a third of it).
func (cfg *ClientConfig) setLock(l scenario.Lock) {
	cfg.TTL, cfg.RenewEvery, cfg.Poll, cfg.WaitTimeout = l.TTL, l.Renewal(), l.Poll, l.WaitTimeout
}

// lockOptions are the options a client gives its locker on top of the
// backend's defaults (the clock is added by RunClient).
func (cfg *ClientConfig) lockOptions() []locks.Option {
	opts := []locks.Option{locks.WithOwner(cfg.Proc)}
	if cfg.TTL > 0 {
		opts = append(opts, locks.WithTTL(cfg.TTL))
	}
	if cfg.RenewEvery > 0 {
		opts = append(opts, locks.WithRenewEvery(cfg.RenewEvery))
	}
	if cfg.Poll > 0 {
		opts = append(opts, locks.WithPollInterval(cfg.Poll))
	}
	if cfg.WaitTimeout > 0 {
		opts = append(opts, locks.WithWaitTimeout(cfg.WaitTimeout))
	}
	return opts
}

// client is one running client process.
type client struct {
	cfg   ClientConfig
	clock RunClock
	skew  *faults.SkewedClock
	rng   *rand.Rand
	res   *resource.Client

	mu  sync.Mutex
	out *history.Writer
}

// RunClient runs a client: it builds its locker, runs the workload until
// "stop" arrives on control (or control closes), and writes its events as
// JSONL to events. Control also takes clock commands: "clock offset D",
// "clock drift R", "clock step D".
func RunClient(ctx context.Context, cfg ClientConfig, control io.Reader, events io.Writer) error {
	c := &client{
		cfg:   cfg,
		clock: RunClock{Start: cfg.RunStart},
		skew:  faults.NewSkewedClock(nil),
		rng:   rand.New(rand.NewPCG(cfg.Seed, 7)),
		res:   resource.NewClient(cfg.ResourceURL),
		out:   history.NewWriter(events),
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	go c.control(control, stop)

	opts := append(cfg.lockOptions(), locks.WithClock(c.skew))
	if cfg.Workload == "list" {
		c.sleep(ctx, cfg.StartDelay)
		return c.runList(ctx, opts)
	}
	locker, closer, err := NewLocker(ctx, cfg.Backend, cfg.Proc, opts...)
	if err != nil {
		return err
	}
	defer closer.Close()
	c.sleep(ctx, cfg.StartDelay)
	for ctx.Err() == nil {
		key := cfg.Keys[c.rng.IntN(len(cfg.Keys))]
		c.critical(ctx, locker, key)
		if cfg.Workload == "rotation" {
			// Locker's pattern: sleep(Kernel.rand + 1).
			c.sleep(ctx, time.Second+time.Duration(c.rng.Int64N(int64(time.Second))))
		} else {
			// Back off about as long as a waiter polls, so that the last
			// holder does not win every time.
			c.sleep(ctx, time.Duration(c.rng.Int64N(int64(max(20*time.Millisecond, 2*cfg.Poll)))))
		}
	}
	return nil
}

// control reads commands until stop or EOF.
func (c *client) control(r io.Reader, stop context.CancelFunc) {
	defer stop()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 1 && f[0] == "stop":
			return
		case len(f) == 3 && f[0] == "clock":
			switch f[1] {
			case "offset":
				if d, err := time.ParseDuration(f[2]); err == nil {
					c.skew.SetOffset(d)
				}
			case "step":
				if d, err := time.ParseDuration(f[2]); err == nil {
					c.skew.Step(d)
				}
			case "drift":
				if r, err := strconv.ParseFloat(f[2], 64); err == nil {
					c.skew.SetDrift(r)
				}
			}
		}
	}
}

func (c *client) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// emit writes one event stamped now on the run clock.
func (c *client) emit(typ history.Type, f, key string, tok int64, hasTok bool, value []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := history.Event{T: c.clock.Now(), Proc: c.cfg.Proc, Type: typ, F: f, Key: key, Token: tok, HasToken: hasTok, Value: value}
	_ = c.out.Write(&e)
	_ = c.out.Flush()
}

// holdState orders a section's lost notice against its release invoke:
// whichever comes first ends the proc's belief, and the other is not
// written as such.
type holdState struct {
	mu       sync.Mutex
	acquired bool
	tok      int64
	ended    bool // lost written or release invoked
	released bool // release invoked
}

// critical runs one critical section with locks.Run: acquire, read the
// counter, hold, write it plus one with the token, release. Run renews the
// lease and cancels the section's context when the lock is lost; the
// section, as a well-behaved user would, skips its write once its context
// is cancelled — but a write already under way goes on, which is what
// fencing is for.
func (c *client) critical(ctx context.Context, l locks.Locker, key string) {
	c.emit(history.Invoke, history.FAcquire, key, 0, false, nil)
	st := &holdState{}
	done := make(chan struct{})
	watcher := make(chan struct{})
	err := locks.Run(ctx, l, key, func(fctx context.Context, lease locks.Lease) error {
		st.mu.Lock()
		st.acquired, st.tok = true, int64(lease.Token())
		c.emit(history.OK, history.FAcquire, key, st.tok, true, nil)
		st.mu.Unlock()
		go func() {
			defer close(watcher)
			select {
			case <-lease.Lost():
				st.mu.Lock()
				if !st.ended {
					st.ended = true
					c.emit(history.Info, history.FLost, key, st.tok, true, errValue(lease.Err()))
				}
				st.mu.Unlock()
			case <-done:
			}
		}()
		if c.cfg.Fencing == string(scenario.FenceGuarded) {
			c.guardedSection(fctx, lease)
		} else {
			c.section(fctx, key, st.tok)
		}
		st.mu.Lock()
		if !st.ended {
			st.ended, st.released = true, true
			c.emit(history.Invoke, history.FRelease, key, st.tok, true, nil)
		}
		st.mu.Unlock()
		return nil
	})
	close(done)
	if !st.acquired {
		switch {
		case errors.Is(err, locks.ErrNotAcquired), errors.Is(err, context.Canceled):
			c.emit(history.Fail, history.FAcquire, key, 0, false, errValue(err))
		default:
			c.emit(history.Info, history.FAcquire, key, 0, false, errValue(err))
		}
		return
	}
	<-watcher
	if !st.released {
		return // the lost notice ended the belief; Run did not release
	}
	switch {
	case err == nil:
		c.emit(history.OK, history.FRelease, key, st.tok, true, nil)
	case errors.Is(err, locks.ErrLockLost):
		// Lost before Run could release: the release did not happen.
		c.emit(history.Fail, history.FRelease, key, st.tok, true, errValue(err))
	default:
		c.emit(history.Info, history.FRelease, key, st.tok, true, errValue(err))
	}
}

// section reads the counter, holds the lock for a while, and writes the
// counter plus one with the lease's token. With fencing all the read
// carries the token too, and a refused read ends the section.
func (c *client) section(ctx context.Context, key string, tok int64) {
	var readTok *int64
	if c.cfg.Fencing == string(scenario.FenceAll) {
		readTok = &tok
	}
	c.emit(history.Invoke, history.FRead, key, tok, readTok != nil, nil)
	v, err := c.res.Read(key, readTok)
	if err != nil {
		c.emit(history.Fail, history.FRead, key, tok, readTok != nil, errValue(err))
		return
	}
	c.emit(history.OK, history.FRead, key, tok, readTok != nil, strconv.AppendInt(nil, v, 10))
	if !c.hold(ctx) {
		return
	}
	nv := strconv.AppendInt(nil, v+1, 10)
	c.emit(history.Invoke, history.FWrite, key, tok, true, nv)
	switch err := c.res.Write(key, &tok, v+1); {
	case err == nil:
		c.emit(history.OK, history.FWrite, key, tok, true, nv)
	case errors.Is(err, resource.ErrStaleToken):
		c.emit(history.Fail, history.FWrite, key, tok, true, nv)
	default:
		c.emit(history.Info, history.FWrite, key, tok, true, nv)
	}
}

// hold sleeps for the hold time drawn between HoldMin and HoldMax; false
// if ctx ended first (the lock is lost: the section does not write).
func (c *client) hold(ctx context.Context) bool {
	hold := c.cfg.HoldMin
	if c.cfg.HoldMax > c.cfg.HoldMin {
		hold += time.Duration(c.rng.Int64N(int64(c.cfg.HoldMax - c.cfg.HoldMin)))
	}
	c.sleep(ctx, hold)
	return ctx.Err() == nil
}

// DataKey is where the guarded counter of lock key lives in the lock
// service's own store (fencing: guarded).
func DataKey(key string) string { return "locksim-data/" + key }

// guardedSection is section with the counter in the lock service's store
// (fencing: guarded): the read and the write are the lease's guarded
// operations, each conditional on the lock in one atomic step with the
// lock check. The write's outcome is recorded as the resource's accept or
// reject (proc "resource", stamped when the answer came), so the checker
// judges it as any other write; a write whose outcome is unknown (the
// answer was lost) has no resource event.
//
// The stamp of an accept is taken after the service's answer: were the
// client paused between the two, a later accept of another holder could be
// stamped before it. The window is the few microseconds between reading
// the answer and writing the event.
func (c *client) guardedSection(ctx context.Context, lease locks.Lease) {
	key, tok := lease.Key(), int64(lease.Token())
	g, ok := lease.(locks.Guarded)
	if !ok {
		c.emit(history.Invoke, history.FRead, key, tok, true, nil)
		c.emit(history.Fail, history.FRead, key, tok, true, errValue(fmt.Errorf("harness: backend %s has no guarded writes", c.cfg.Backend.Kind)))
		return
	}
	opCtx := func() (context.Context, context.CancelFunc) {
		// Not the section's context: a lost lock must not cancel an
		// operation already sent (that is what the guard is for).
		return context.WithTimeout(context.WithoutCancel(ctx), c.opTimeout())
	}
	c.emit(history.Invoke, history.FRead, key, tok, true, nil)
	rctx, cancel := opCtx()
	raw, err := g.GuardedGet(rctx, DataKey(key))
	cancel()
	var v int64
	if err == nil && raw != nil {
		v, err = strconv.ParseInt(string(raw), 10, 64)
	}
	if err != nil {
		typ := history.Info
		if errors.Is(err, locks.ErrNotHeld) {
			typ = history.Fail
		}
		c.emit(typ, history.FRead, key, tok, true, errValue(err))
		return
	}
	c.emit(history.OK, history.FRead, key, tok, true, strconv.AppendInt(nil, v, 10))
	if !c.hold(ctx) {
		return
	}
	nv := strconv.AppendInt(nil, v+1, 10)
	c.emit(history.Invoke, history.FWrite, key, tok, true, nv)
	wctx, cancel := opCtx()
	err = g.GuardedPut(wctx, DataKey(key), nv)
	cancel()
	switch {
	case err == nil:
		c.emitResource(history.FAccept, key, tok, nv)
		c.emit(history.OK, history.FWrite, key, tok, true, nv)
	case errors.Is(err, locks.ErrNotHeld):
		c.emitResource(history.FReject, key, tok, nv)
		c.emit(history.Fail, history.FWrite, key, tok, true, nv)
	default:
		c.emit(history.Info, history.FWrite, key, tok, true, nv)
	}
}

// opTimeout bounds one guarded operation.
func (c *client) opTimeout() time.Duration {
	if c.cfg.OpTimeout > 0 {
		return c.cfg.OpTimeout
	}
	return 5 * time.Second // the resource client's own timeout
}

// emitResource writes the resource's decision on a guarded write, as the
// resource server would for a fenced one.
func (c *client) emitResource(f, key string, tok int64, value []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := history.Event{T: c.clock.Now(), Proc: history.ProcResource, Type: history.Info, F: f, Key: key, Token: tok, HasToken: true, Value: value}
	_ = c.out.Write(&e)
	_ = c.out.Flush()
}

// serveResource starts the fenced resource of a run in the mode its
// scenario asks for. Under guarded the data lives in the lock service and
// the clients do not use this resource; it runs (as writes) all the same,
// so that a run always has one.
func serveResource(f scenario.Fencing, rec resource.Recorder) (*resource.Server, error) {
	mode := resource.Mode(f.Mode())
	if f == scenario.FenceGuarded {
		mode = resource.ModeWrites
	}
	store, err := resource.NewStore(mode, rec)
	if err != nil {
		return nil, err
	}
	return resource.Serve(store)
}

// errValue is an error as an event value (a JSON string, credentials
// redacted), or nil.
func errValue(err error) []byte {
	if err == nil {
		return nil
	}
	b, _ := json.Marshal(Redact(err.Error()))
	return b
}
