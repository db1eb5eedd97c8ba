package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/locks"
	lm "github.com/locksim/locksim/locks/machine"
	"github.com/locksim/locksim/resource"
	"github.com/locksim/locksim/scenario"
	"github.com/locksim/locksim/workload"
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
	// TimingFile, if set, is where the client writes, as it ends, how late
	// its process's timers fired while it ran (a TimerProbe's
	// TimingRecord).
	TimingFile string `json:"timing_file,omitempty"`
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
	if cfg.TimingFile != "" {
		// Two goroutines beside the client's own: a handful of timer
		// firings a second, nothing a run's timing would notice.
		probeCtx, stopProbe := context.WithCancel(context.Background())
		probe := StartTimerProbe(probeCtx, 2)
		defer func() {
			stopProbe()
			probe.Wait()
			if err := probe.writeTiming(cfg.TimingFile, cfg.Proc); err != nil {
				fmt.Fprintf(os.Stderr, "locksim client %s: timing: %v\n", cfg.Proc, err)
			}
		}()
	}

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
	c.runWorkload(ctx, locker)
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

// DataKey is where the guarded counter of lock key lives in the lock
// service's own store (fencing: guarded).
func DataKey(key string) string { return "locksim-data/" + key }

// wdriver carries out the outputs of a client's workload machine (package
// workload, which the simulator drives alike): it records the events and
// hands the operations, in order, to the workload's goroutine. Inputs
// come from that goroutine and from the lease's loss watcher, one at a
// time.
type wdriver struct {
	c   *client
	mu  sync.Mutex
	m   *workload.Machine
	ops chan workload.Output
	buf []workload.Output
}

// feed gives the machine one input (in appends its outputs to out) and
// carries out what it says.
func (d *wdriver) feed(in func(out []workload.Output) []workload.Output) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := in(d.buf[:0])
	for _, o := range out {
		if o.Kind == workload.OutEmit {
			e := &o.Event
			d.c.emit(e.Type, e.F, e.Key, e.Token, e.HasToken, e.Value)
		} else {
			d.ops <- o
		}
	}
	d.buf = out[:0]
}

// next is the next operation, or false once ctx ends.
func (d *wdriver) next(ctx context.Context) (workload.Output, bool) {
	select {
	case o := <-d.ops:
		return o, true
	case <-ctx.Done():
		return workload.Output{}, false
	}
}

// runWorkload runs the counter or rotation workload until ctx ends: its
// machine asks for the lock, which locks.Run holds while the machine's
// critical section runs, and for the sleeps between cycles, on true time.
func (c *client) runWorkload(ctx context.Context, l locks.Locker) {
	mode := scenario.Fencing(c.cfg.Fencing)
	d := &wdriver{c: c, ops: make(chan workload.Output, 8), m: workload.New(workload.Config{
		Kind: c.cfg.Workload, Keys: c.cfg.Keys, HoldMin: c.cfg.HoldMin, HoldMax: c.cfg.HoldMax,
		ReadToken: mode == scenario.FenceAll || mode == scenario.FenceGuarded, Poll: c.cfg.Poll,
		Tokenless: registered(c.cfg.Backend.Kind).Tokenless,
	})}
	d.feed(func(out []workload.Output) []workload.Output { return d.m.Begin(c.rng, out) })
	for {
		op, ok := d.next(ctx)
		if !ok {
			return
		}
		switch op.Kind {
		case workload.OutTimer:
			c.sleep(ctx, op.D)
			if ctx.Err() != nil {
				return
			}
			d.feed(func(out []workload.Output) []workload.Output { return d.m.Fire(c.rng, out) })
		case workload.OutAcquire:
			c.critical(ctx, l, d, op.Key)
		}
	}
}

// critical runs one critical section under locks.Run: the machine's read,
// hold and write. Run renews the lease and cancels the section's context
// when the lock is lost; the machine then skips its write, as a
// well-behaved user would — but a write already under way goes on, which
// is what fencing is for.
func (c *client) critical(ctx context.Context, l locks.Locker, d *wdriver, key string) {
	done := make(chan struct{})
	watcher := make(chan struct{})
	started := false
	err := locks.Run(ctx, l, key, func(fctx context.Context, lease locks.Lease) error {
		started = true
		go func() {
			defer close(watcher)
			select {
			case <-lease.Lost():
				why := errValue(lease.Err())
				d.feed(func(out []workload.Output) []workload.Output { return d.m.Lost(why, out) })
			case <-done:
			}
		}()
		tok := int64(lease.Token())
		d.feed(func(out []workload.Output) []workload.Output { return d.m.Granted(tok, out) })
		for {
			op, ok := d.next(ctx)
			if !ok {
				// The run is ending: a hold is cut short, and the section
				// is over (Run releases).
				d.feed(d.m.Stop)
				return nil
			}
			switch op.Kind {
			case workload.OutRead:
				o, v, why := c.read(lease, op)
				d.feed(func(out []workload.Output) []workload.Output { return d.m.ReadDone(o, v, why, c.rng, out) })
			case workload.OutTimer: // the hold
				c.sleep(fctx, op.D)
				switch {
				case fctx.Err() == nil:
					d.feed(func(out []workload.Output) []workload.Output { return d.m.Fire(c.rng, out) })
				case lease.Err() == nil:
					// The run is ending, not the lock: the section is over.
					d.feed(d.m.Stop)
				}
				// Else the lock is lost: the watcher's notice ends the
				// section.
			case workload.OutWrite:
				o := c.write(lease, op)
				d.feed(func(out []workload.Output) []workload.Output { return d.m.WriteDone(o, out) })
			case workload.OutSectionDone:
				return nil
			}
		}
	})
	close(done)
	if started {
		<-watcher
	}
	res := runResult(err)
	why := errValue(err)
	d.feed(func(out []workload.Output) []workload.Output { return d.m.RunDone(res, why, c.rng, out) })
}

// runResult is how locks.Run ended, as the workload machine takes it.
func runResult(err error) lm.Result {
	switch {
	case err == nil:
		return lm.OK
	case errors.Is(err, locks.ErrNotAcquired):
		return lm.NotAcquired
	case errors.Is(err, context.Canceled):
		return lm.Cancelled
	case errors.Is(err, locks.ErrLockLost):
		return lm.Lost
	}
	return lm.Failed
}

// read is the machine's read of the counter: at the resource (with the
// token under fencing all), or under guarded in the lock service's store
// through the lease's guarded get, checked in one atomic step with the
// lock. A read the resource refuses (a stale token) or a guarded read of
// a lock not held fails; on other errors (no answer) its outcome is
// unknown, as the simulator records it.
func (c *client) read(lease locks.Lease, op workload.Output) (workload.Outcome, int64, []byte) {
	if c.cfg.Fencing != string(scenario.FenceGuarded) {
		var tok *int64
		if op.HasToken {
			tok = &op.Token
		}
		v, err := c.res.Read(op.Key, tok)
		switch {
		case err == nil:
			return workload.Done, v, nil
		case errors.Is(err, resource.ErrStaleToken):
			return workload.Refused, 0, errValue(err)
		}
		return workload.Unknown, 0, errValue(err)
	}
	g, ok := lease.(locks.Guarded)
	if !ok {
		return workload.Refused, 0, errValue(fmt.Errorf("harness: backend %s has no guarded writes", c.cfg.Backend.Kind))
	}
	// Not the section's context: a lost lock must not cancel an operation
	// already sent (that is what the guard is for).
	ctx, cancel := context.WithTimeout(context.Background(), c.opTimeout())
	raw, err := g.GuardedGet(ctx, DataKey(op.Key))
	cancel()
	var v int64
	if err == nil && raw != nil {
		v, err = strconv.ParseInt(string(raw), 10, 64)
	}
	switch {
	case err == nil:
		return workload.Done, v, nil
	case errors.Is(err, locks.ErrNotHeld):
		return workload.Refused, 0, errValue(err)
	}
	return workload.Unknown, 0, errValue(err)
}

// write is the machine's write of the counter with the token: at the
// fenced resource, or under guarded through the lease's guarded put,
// whose decision is recorded as the resource's accept or reject (proc
// "resource", stamped when the answer came), so the checker judges it as
// any other write; a write whose outcome is unknown (the answer was
// lost) has no resource event.
//
// The stamp of an accept is taken after the service's answer: were the
// client paused between the two, a later accept of another holder could be
// stamped before it. The window is the few microseconds between reading
// the answer and writing the event.
func (c *client) write(lease locks.Lease, op workload.Output) workload.Outcome {
	if c.cfg.Fencing != string(scenario.FenceGuarded) {
		var tok *int64
		if op.HasToken {
			tok = &op.Token // a tokenless lock's holder writes without one
		}
		switch err := c.res.Write(op.Key, tok, op.Value); {
		case err == nil:
			return workload.Done
		case errors.Is(err, resource.ErrStaleToken):
			return workload.Refused
		}
		return workload.Unknown
	}
	nv := strconv.AppendInt(nil, op.Value, 10)
	ctx, cancel := context.WithTimeout(context.Background(), c.opTimeout())
	err := lease.(locks.Guarded).GuardedPut(ctx, DataKey(op.Key), nv)
	cancel()
	switch {
	case err == nil:
		c.emitResource(history.FAccept, op.Key, op.Token, nv)
		return workload.Done
	case errors.Is(err, locks.ErrNotHeld):
		c.emitResource(history.FReject, op.Key, op.Token, nv)
		return workload.Refused
	}
	return workload.Unknown
}

// opTimeout bounds one guarded operation.
func (c *client) opTimeout() time.Duration {
	if c.cfg.OpTimeout > 0 {
		return c.cfg.OpTimeout
	}
	return resource.ClientTimeout // the resource client's own timeout
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
