package harness

import (
	"bytes"
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/resource"
	"github.com/locksim/locksim/workload"
)

// memLocker is an in-memory lock for the driver's tests: one holder at a
// time, tokens counting up; lose takes the lock from its holder.
type memLocker struct {
	mu     sync.Mutex
	tok    int64
	holder *memLease
}

type memLease struct {
	l   *memLocker
	key string
	tok locks.Token
	*locks.LostSignal
	released atomic.Bool
}

func (l *memLocker) Acquire(ctx context.Context, key string) (locks.Lease, error) {
	for {
		if lease, err := l.TryAcquire(ctx, key); err == nil {
			return lease, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (l *memLocker) TryAcquire(_ context.Context, key string) (locks.Lease, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holder != nil {
		return nil, locks.ErrNotAcquired
	}
	l.tok++
	l.holder = &memLease{l: l, key: key, tok: locks.Token(l.tok), LostSignal: locks.NewLostSignal(key)}
	return l.holder, nil
}

func (l *memLocker) Options() locks.Options {
	return locks.Options{TTL: time.Second, RenewEvery: 20 * time.Millisecond, Clock: locks.SystemClock{}}
}

// lose takes the lock from its holder, who is told at once; it reports
// whether somebody held it.
func (l *memLocker) lose() bool {
	l.mu.Lock()
	h := l.holder
	l.holder = nil
	l.mu.Unlock()
	if h == nil {
		return false
	}
	h.Lose("taken away by the test")
	return true
}

func (s *memLease) Key() string        { return s.key }
func (s *memLease) Token() locks.Token { return s.tok }
func (s *memLease) Renew(context.Context) error {
	if err := s.Err(); err != nil {
		return err
	}
	return nil
}
func (s *memLease) Release(context.Context) error {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	if s.l.holder != s {
		return &locks.LostError{Key: s.key, Reason: "not ours"}
	}
	s.l.holder = nil
	s.released.Store(true)
	return nil
}

type nopRecorder struct{}

func (nopRecorder) Record(*history.Event) {}
func (nopRecorder) Now() int64            { return 0 }

// TestWorkloadDriver runs the harness's driver of the counter workload
// over an in-memory lock and a real resource server, and takes the lock
// away from holders now and then: every cycle's events are in order, a
// lost hold has its lost notice and no release, a kept one its release,
// and each write carries the value read plus one.
func TestWorkloadDriver(t *testing.T) {
	store, err := resource.NewStore(resource.ModeWrites, nopRecorder{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := resource.Serve(store)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var out bytes.Buffer
	c := &client{
		cfg: ClientConfig{Proc: "c1", Workload: "counter", Keys: []string{"k"}, HoldMin: 30 * time.Millisecond,
			HoldMax: 40 * time.Millisecond, Fencing: "writes", Poll: 5 * time.Millisecond},
		clock: NewRunClock(),
		skew:  faults.NewSkewedClock(nil),
		rng:   rand.New(rand.NewPCG(1, 7)),
		res:   resource.NewClient(srv.URL()),
		out:   history.NewWriter(&out),
	}
	l := &memLocker{}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.runWorkload(ctx, l)
	}()
	losses := 0
	for ctx.Err() == nil {
		time.Sleep(97 * time.Millisecond)
		if l.lose() {
			losses++
		}
	}
	<-done
	c.mu.Lock()
	events, err := history.ReadAll(history.NewReader(bytes.NewReader(out.Bytes()), "c1"))
	c.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	type cycle struct {
		lost, released bool
		read, wrote    []byte
	}
	cycles := map[int64]*cycle{}
	var open string
	var cur int64
	for _, e := range events {
		if e.Type == history.Invoke {
			if open != "" {
				t.Fatalf("%s invoked while %s is open: %+v", e.F, open, e)
			}
			open = e.F
		} else if e.F != history.FLost {
			if e.F != open {
				t.Fatalf("%s %s completes, but %q is open", e.F, e.Type, open)
			}
			open = ""
		}
		if e.F == history.FAcquire && e.Type == history.OK {
			cur = e.Token
		}
		tok := e.Token
		if e.F == history.FRead {
			tok = cur // the read carries no token under fencing writes
		} else if !e.HasToken {
			continue
		}
		cy := cycles[tok]
		if cy == nil {
			cy = &cycle{}
			cycles[tok] = cy
		}
		switch {
		case e.F == history.FLost:
			cy.lost = true
		case e.F == history.FRelease && e.Type == history.Invoke:
			if cy.lost {
				t.Errorf("token %d: a release after the lost notice", e.Token)
			}
			cy.released = true
		case e.F == history.FRead && e.Type == history.OK:
			cy.read = e.Value
		case e.F == history.FWrite && e.Type == history.Invoke:
			cy.wrote = e.Value
		}
	}
	lost, kept := 0, 0
	for tok, cy := range cycles {
		if cy.lost == cy.released {
			t.Errorf("token %d: lost %v released %v, want exactly one", tok, cy.lost, cy.released)
		}
		if cy.lost {
			lost++
		} else {
			kept++
		}
		if cy.wrote != nil {
			r, _ := parseInt(cy.read)
			w, _ := parseInt(cy.wrote)
			if w != r+1 {
				t.Errorf("token %d: read %s, wrote %s", tok, cy.read, cy.wrote)
			}
		}
	}
	if lost == 0 || kept < 3 || losses == 0 {
		t.Fatalf("%d cycles lost and %d kept (%d losses made): want both", lost, kept, losses)
	}
}

func parseInt(b []byte) (int64, bool) {
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, len(b) > 0
}

// A read the resource refuses (a stale token) fails; a read that gets no
// answer has an unknown outcome, as the simulator records it (real runs
// failed it).
func TestReadOutcomes(t *testing.T) {
	store, err := resource.NewStore(resource.ModeAll, nopRecorder{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := resource.Serve(store)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{cfg: ClientConfig{Fencing: "all"}, res: resource.NewClient(srv.URL())}
	if err := c.res.Write("k", ptr(int64(5)), 1); err != nil {
		t.Fatal(err)
	}
	read := func(tok int64) workload.Outcome {
		o, _, _ := c.read(nil, workload.Output{Kind: workload.OutRead, Key: "k", Token: tok, HasToken: true})
		return o
	}
	if o := read(5); o != workload.Done {
		t.Errorf("read with the current token: %v, want done", o)
	}
	if o := read(4); o != workload.Refused {
		t.Errorf("read with a stale token: %v, want refused", o)
	}
	srv.Close()
	if o := read(6); o != workload.Unknown {
		t.Errorf("read of a resource that is gone: %v, want unknown", o)
	}
}

func ptr[T any](v T) *T { return &v }
