package locks_test

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/locksim/locksim/locks"
)

// fakeLocker is an in-memory Locker for unit tests of Run, TryRun and Poll:
// pure logic, no lock service. Real backends are tested on real servers.
type fakeLocker struct {
	opts locks.Options

	mu     sync.Mutex
	holder map[string]*fakeLease
	next   locks.Token

	acquireErr error                                         // returned by Acquire/TryAcquire if set
	renewErr   func(n int) error                             // result of the n-th renewal (1-based)
	release    func(ctx context.Context, l *fakeLease) error // replaces the release logic if set

	renews   atomic.Int32
	releases atomic.Int32
}

func newFake(opts ...locks.Option) *fakeLocker {
	o, err := locks.Apply(locks.Options{TTL: 3 * time.Second, RenewEvery: time.Second, PollInterval: 100 * time.Millisecond}, opts...)
	if err != nil {
		panic(err)
	}
	return &fakeLocker{opts: o, holder: map[string]*fakeLease{}}
}

func (f *fakeLocker) Options() locks.Options { return f.opts }

func (f *fakeLocker) TryAcquire(ctx context.Context, key string) (locks.Lease, error) {
	if f.acquireErr != nil {
		return nil, f.acquireErr
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.holder[key] != nil {
		return nil, locks.ErrNotAcquired
	}
	f.next++
	l := &fakeLease{f: f, key: key, token: f.next, sig: locks.NewLostSignal(key)}
	f.holder[key] = l
	return l, nil
}

func (f *fakeLocker) Acquire(ctx context.Context, key string) (locks.Lease, error) {
	return locks.Poll(ctx, f.opts, func(ctx context.Context) (locks.Lease, error) { return f.TryAcquire(ctx, key) })
}

// held reports whether key is held.
func (f *fakeLocker) held(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.holder[key] != nil
}

// steal takes key from its holder, as another client would after expiry.
func (f *fakeLocker) steal(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.holder, key)
}

type fakeLease struct {
	f     *fakeLocker
	key   string
	token locks.Token
	sig   *locks.LostSignal
}

func (l *fakeLease) Key() string           { return l.key }
func (l *fakeLease) Token() locks.Token    { return l.token }
func (l *fakeLease) Lost() <-chan struct{} { return l.sig.Lost() }
func (l *fakeLease) Err() error            { return l.sig.Err() }

func (l *fakeLease) owned() bool {
	l.f.mu.Lock()
	defer l.f.mu.Unlock()
	return l.f.holder[l.key] == l
}

func (l *fakeLease) Renew(ctx context.Context) error {
	n := int(l.f.renews.Add(1))
	if l.f.renewErr != nil {
		if err := l.f.renewErr(n); err != nil {
			return err
		}
	}
	if !l.owned() {
		return l.sig.Lose("stolen")
	}
	return nil
}

func (l *fakeLease) Release(ctx context.Context) error {
	l.f.releases.Add(1)
	if l.f.release != nil {
		return l.f.release(ctx, l)
	}
	if !l.owned() {
		return &locks.LostError{Key: l.key, Reason: "not the owner"}
	}
	l.f.steal(l.key)
	return nil
}

// manualClock is a Clock whose time moves only when the test says so.
type manualClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*manualTimer
}

type manualTimer struct {
	at      time.Time
	c       chan time.Time
	stopped bool
	fired   bool
}

func (m *manualClock) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

func (m *manualClock) NewTimer(d time.Duration) locks.Timer {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := &manualTimer{at: m.now.Add(d), c: make(chan time.Time, 1)}
	m.timers = append(m.timers, t)
	return &manualTimerRef{m: m, t: t}
}

// Advance moves time on by d and fires the timers that are due.
func (m *manualClock) Advance(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.now = m.now.Add(d)
	for _, t := range m.timers {
		if !t.stopped && !t.fired && !t.at.After(m.now) {
			t.fired = true
			t.c <- m.now
		}
	}
}

type manualTimerRef struct {
	m *manualClock
	t *manualTimer
}

func (r *manualTimerRef) C() <-chan time.Time { return r.t.c }

func (r *manualTimerRef) Stop() bool {
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	was := !r.t.stopped && !r.t.fired
	r.t.stopped = true
	return was
}
