package sim

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"time"

	"github.com/locksim/locksim/backend"
	"github.com/locksim/locksim/checker"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/scenario"
	"github.com/locksim/locksim/workload"
)

// Config is one simulated run: a scenario on one backend with one seed.
type Config struct {
	// Scenario is the parsed scenario (scenario.Load).
	Scenario *scenario.Scenario
	// Backend is one of Backends; "" means the scenario's first backend.
	Backend string
	// Seed seeds the run's one PRNG.
	Seed uint64
	// Checker options for the verdict. Linearizability is off unless set:
	// the rule checks are what a seed sweep needs, and they stream.
	Checker checker.Options
	// Net shapes every link; the zero value is the measured delay of
	// loopback through a toxiproxy link (sim/timing.go), no loss.
	Net Net
	// NoHistory drops the events once the checker has seen them: the
	// verdict is the same, Result.Events is nil, and a run allocates far
	// less. A sweep over seeds sets it and runs a violating seed again to
	// get its history.
	NoHistory bool
	// Context, if set, ends a run early when it is done: Run then returns
	// the context's error and no result. A run never looks at the wall
	// clock otherwise, so a run that is not stopped is as deterministic
	// with it as without.
	Context context.Context
	// Progress, if set, is called now and then (every few thousand
	// events) with the virtual time the run has reached, from Run's
	// goroutine: for a progress bar over one long run.
	Progress func(virtual time.Duration)
}

// Net is the shape of every link of a run.
type Net struct {
	// Delay is the one-way delay of a message and Jitter the most a
	// uniform draw adds to it.
	Delay, Jitter time.Duration
	// Loss is the chance that a message is lost once and arrives after a
	// TCP retransmission timeout (200 ms) instead: every protocol modelled
	// runs over TCP, so a loss is a delay, never a gap.
	Loss float64
}

// Result is what one run produced: its history and the checker's verdict.
type Result struct {
	Scenario string
	Backend  string
	Seed     uint64
	// Events is the history, in order, timestamps in virtual ns (nil with
	// Config.NoHistory).
	Events []history.Event
	// Verdict is the checker's result on the history.
	Verdict checker.Result
}

// OK reports whether the run broke no rule.
func (r *Result) OK() bool { return r.Verdict.OK() }

// Kinds returns the violation kinds found, in checker.Kinds order.
func (r *Result) Kinds() []checker.Kind {
	c := r.Verdict.Counts()
	var out []checker.Kind
	for _, k := range checker.Kinds {
		if c[k] > 0 {
			out = append(out, k)
		}
	}
	return out
}

// WriteHistory writes the history as JSONL.
func (r *Result) WriteHistory(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	hw := history.NewWriter(bw)
	for i := range r.Events {
		if err := hw.Write(&r.Events[i]); err != nil {
			return err
		}
	}
	if err := hw.Flush(); err != nil {
		return err
	}
	return bw.Flush()
}

// Run simulates cfg and checks the history it produced.
func Run(cfg Config) (*Result, error) {
	r, err := newRun(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Context != nil || cfg.Progress != nil {
		var done <-chan struct{}
		if cfg.Context != nil {
			done = cfg.Context.Done()
		}
		progress := cfg.Progress
		r.w.poll = func(now int64) bool {
			if progress != nil {
				progress(time.Duration(now))
			}
			select {
			case <-done:
				return true
			default:
				return false
			}
		}
	}
	r.w.run()
	if r.w.stopped {
		for _, f := range r.atEnd {
			f()
		}
		return nil, cfg.Context.Err()
	}
	r.finish()
	res := &Result{
		Scenario: cfg.Scenario.Name,
		Backend:  r.desc.Name,
		Seed:     cfg.Seed,
		Events:   r.hist,
		Verdict:  r.chk.Finish(),
	}
	for _, f := range r.atEnd {
		f()
	}
	// A run never blocks. With few Ps (one per sweep worker), a GC cycle
	// that starts during a sweep gets its fractional mark worker only when
	// the scheduler preempts the sweeping goroutine (after 10 ms), and the
	// write barrier, which slows every pointer write, stays on until the
	// cycle ends: marking took 10-18 ms of every ~35 ms of a Consul sweep.
	// Yielding between runs lets the worker finish the cycle (1-3 ms).
	runtime.Gosched()
	return res, nil
}

// Validate checks cfg as Run does before it starts, without running it:
// the backend and workload are modelled, and every fault's kind and target
// exist on the backend (a *FaultError if not).
func Validate(cfg Config) error {
	r, err := newRun(cfg)
	if err != nil {
		return err
	}
	for _, f := range r.atEnd {
		f()
	}
	return nil
}

// options are the lock options after the backend's defaults (those of its
// package in locks/) and the scenario's settings.
type options struct {
	ttl, renewEvery, poll, waitTimeout, lockDelay int64
	clock                                         string // postgres: db or client
	renewErrors                                   string // postgres: retry or stop
	pooled                                        bool   // mysql: lock.connection pooled
}

// defaults are the Defaults of the backend's package in locks/, from the
// registry (shared, not copied), plus the model's options that are not
// locks.Options. Consul's lock-delay is the scenario's lock.lock_delay, none
// if it says nothing, as harness/ configures real runs (Consul's own
// default, 15 s, has to be asked for as 15s).
func defaults(b *backend.Backend) options {
	o := b.Defaults()
	var extra options
	if x := models[b.Name].extra; x != nil {
		x(&extra)
	}
	extra.ttl, extra.renewEvery, extra.poll = int64(o.TTL), int64(o.RenewEvery), int64(o.PollInterval)
	return extra
}

func resolveOptions(b *backend.Backend, l scenario.Lock) options {
	o := defaults(b)
	if l.TTL > 0 {
		o.ttl = int64(l.TTL)
	}
	// The renew interval by the rule real runs use (harness/ passes the
	// same to its clients).
	if re := l.Renewal(); re > 0 {
		o.renewEvery = int64(re)
	}
	if l.Poll > 0 {
		o.poll = int64(l.Poll)
	}
	o.waitTimeout = int64(l.WaitTimeout)
	if l.LockDelaySet {
		o.lockDelay = int64(l.LockDelay)
	} else if b.Service == backend.Consul {
		o.lockDelay = int64(consulDefaultLockDelay)
	}
	if l.Clock != "" {
		o.clock = l.Clock
	}
	if l.RenewErrors != "" && b.ReadsField(backend.LockRenewErrors) {
		o.renewErrors = l.RenewErrors
	}
	o.pooled = b.ReadsField(backend.LockConnection) && l.Pooled()
	return o
}

// run is the state of one simulation.
type run struct {
	w       *world
	sc      *scenario.Scenario
	desc    *backend.Backend // the backend's entry in the registry
	opts    options
	be      model
	servers []*node
	procs   []*proc
	res     *resource
	hist    []history.Event
	keep    bool // keep hist
	chk     *checker.Checker
	keys    []string
	// tokens: the backend's grants carry a fencing token (history events
	// have one); not so for a Tokenless backend of the registry.
	tokens bool
	// timing is what the seed chose of the run's timing: the clients'
	// start offsets and the faults' start times (scenario.Timing, drawn as
	// real runs draw it).
	timing scenario.Timing

	timers *arena[procTimer]
	// tickets are the procs' waiters of their lock requests.
	tickets *arena[procTicket]

	lastGrant  *proc    // the client granted most recently
	grantHooks []func() // faults waiting for a holder

	// atEnd runs once the run is over and its verdict made: arenas go
	// back to their pools (nothing of the run is used after).
	atEnd []func()
}

// granted runs the faults that were waiting for a holder.
func (r *run) granted() {
	if len(r.grantHooks) == 0 {
		return
	}
	hooks := r.grantHooks
	r.grantHooks = nil
	for _, h := range hooks {
		h()
	}
}

// model is a backend model: its servers, and a lock client per proc.
type model interface {
	// client returns the lock client of p (a new one after a restart).
	client(p *proc) lockClient
	// leader is the server a "leader" fault targets.
	leader() *node
	// destroySession makes the service forget p's hold (Consul session
	// destroy, etcd lease revoke, pg_terminate_backend, delete the item).
	destroySession(p *proc)
	// evict evicts items from a memcached server (other models: nothing).
	evict(n *node)
	// faultChanged is told after every fault starts or ends (elections).
	faultChanged()
}

// lockClient is a backend's client side for one proc: the lock algorithm
// of the matching package in locks/, driven by virtual time and messages.
type lockClient interface {
	// acquire blocks (polls or waits) until the lock on key is held, and
	// calls done once: ok with the token, or not ok (wait timeout, error).
	acquire(key string, done acquireWaiter)
	// renew is one tick of locks.Run's renewer.
	renew()
	// release gives the lock up and calls done with ok, fail (not ours any
	// more) or info (unknown).
	release(done releaseWaiter)
}

func newRun(cfg Config) (*run, error) {
	sc := cfg.Scenario
	if sc == nil {
		return nil, fmt.Errorf("sim: no scenario")
	}
	name := cfg.Backend
	if name == "" {
		name = sc.Backends[0]
	}
	be := backend.Lookup(name)
	spec, ok := models[name]
	if be == nil || !ok {
		return nil, fmt.Errorf("sim: no model of backend %q (have %v)", name, Backends)
	}
	if sc.Workload.Kind == "list" {
		return nil, fmt.Errorf("sim: the list workload is not simulated: run it with locksim run")
	}
	if err := checkFencing(sc, be); err != nil {
		return nil, err
	}
	r := &run{
		w:      newWorld(cfg.Seed, sc.Duration),
		sc:     sc,
		desc:   be,
		opts:   resolveOptions(be, sc.Lock),
		keep:   !cfg.NoHistory,
		chk:    newChecker(cfg.Checker),
		timing: sc.Timing(cfg.Seed),
		tokens: !be.Tokenless,
	}
	chk := r.chk
	r.atEnd = append(r.atEnd, func() { checkers.put(chk) })
	r.w.reuseQueue(r)
	r.timers = procTimers.get(r)
	r.tickets = procTickets.get(r)
	if r.keep {
		r.hist = make([]history.Event, 0, 1024)
	}
	if cfg.Net.Delay > 0 || cfg.Net.Jitter > 0 {
		r.w.delays = nil
		r.w.baseDelay, r.w.jitter = int64(cfg.Net.Delay), int64(cfg.Net.Jitter)
	}
	for k := 0; k < max(sc.Workload.Keys, 1); k++ {
		r.keys = append(r.keys, "locksim-"+strconv.Itoa(k)) // as harness/ names them
	}
	r.be = spec.new(r)
	r.res = newResource(r)
	for i := 0; i < sc.Clients; i++ {
		r.procs = append(r.procs, newProc(r, i))
	}
	if cfg.Net.Loss > 0 {
		for i := range r.w.links {
			for j := range r.w.links[i] {
				r.w.links[i][j].loss = cfg.Net.Loss
			}
		}
	}
	nm := newNemesis(r)
	if err := nm.validate(); err != nil {
		return nil, err
	}
	for i, p := range r.procs {
		p.start(int64(r.timing.ClientStart[i]))
	}
	nm.schedule()
	return r, nil
}

// checkers keeps checkers from one run to the next (Checker.Reset).
var checkers freeList[checker.Checker]

func newChecker(opts checker.Options) *checker.Checker {
	if c := checkers.get(); c != nil {
		c.Reset(opts)
		return c
	}
	return checker.New(opts)
}

// emit appends one event to the history at the current virtual time.
func (r *run) emit(proc string, typ history.Type, f, key string, tok int64, hasTok bool, value []byte) {
	e := history.Event{T: r.w.now, Proc: proc, Type: typ, F: f, Key: key, Token: tok, HasToken: hasTok, Value: value}
	r.chk.Add(&e)
	if r.keep {
		r.hist = append(r.hist, e)
	}
}

// finish ends the run: every operation still open completes as info
// (outcome unknown), at the end time, in proc order.
func (r *run) finish() {
	r.w.now = r.w.end
	for _, p := range r.procs {
		p.finish()
	}
}

// num is v in decimal, as an event's value: workload.Num.
func num(v int64) []byte { return workload.Num(v) }

func quote(s string) []byte { return strconv.AppendQuote(nil, s) }

// consulDefaultLockDelay is Consul's session lock-delay when a session
// does not set one, as locks/consul leaves it by default.
const consulDefaultLockDelay = 15 * time.Second
