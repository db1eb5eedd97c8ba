package locks_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/locksim/locksim/locks"
)

func TestApply(t *testing.T) {
	base := locks.Options{TTL: 30 * time.Second, RenewEvery: 10 * time.Second, PollInterval: 500 * time.Millisecond}
	clock := &manualClock{}
	for _, c := range []struct {
		name string
		opts []locks.Option
		ok   bool
		want func(locks.Options) bool
	}{
		{"defaults", nil, true, func(o locks.Options) bool {
			return o.TTL == 30*time.Second && o.Owner == locks.DefaultOwner() && o.Clock == locks.SystemClock{}
		}},
		{"all options", []locks.Option{
			locks.WithTTL(2 * time.Second), locks.WithRenewEvery(time.Second), locks.WithPollInterval(time.Millisecond),
			locks.WithWaitTimeout(time.Minute), locks.WithOwner("me"), locks.WithClock(clock),
		}, true, func(o locks.Options) bool {
			return o.TTL == 2*time.Second && o.RenewEvery == time.Second && o.PollInterval == time.Millisecond &&
				o.WaitTimeout == time.Minute && o.Owner == "me" && o.Clock == clock
		}},
		{"zero TTL", []locks.Option{locks.WithTTL(0)}, false, nil},
		{"renew not shorter than TTL", []locks.Option{locks.WithRenewEvery(30 * time.Second)}, false, nil},
		{"zero renew", []locks.Option{locks.WithRenewEvery(0)}, false, nil},
		{"negative poll", []locks.Option{locks.WithPollInterval(-1)}, false, nil},
		{"negative wait", []locks.Option{locks.WithWaitTimeout(-1)}, false, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			o, err := locks.Apply(base, c.opts...)
			if (err == nil) != c.ok {
				t.Fatalf("Apply: %v, want ok=%v", err, c.ok)
			}
			if c.want != nil && !c.want(o) {
				t.Errorf("Apply gave %+v", o)
			}
		})
	}
}

func TestDefaultOwner(t *testing.T) {
	if o := locks.DefaultOwner(); !strings.HasSuffix(o, fmt.Sprintf(":%d", os.Getpid())) {
		t.Errorf("DefaultOwner() = %q, want host:pid", o)
	}
}

func TestLostSignal(t *testing.T) {
	s := locks.NewLostSignal("k")
	if s.Err() != nil {
		t.Fatal("Err before Lose")
	}
	select {
	case <-s.Lost():
		t.Fatal("Lost closed before Lose")
	default:
	}
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() { s.Lose(fmt.Sprintf("reason %d", i)) })
	}
	wg.Wait()
	<-s.Lost()
	err := s.Err()
	var lost *locks.LostError
	if !errors.Is(err, locks.ErrLockLost) || !errors.As(err, &lost) || lost.Key != "k" {
		t.Fatalf("Err() = %v", err)
	}
	first := lost.Reason
	if got := s.Lose("later"); got.(*locks.LostError).Reason != first {
		t.Errorf("a later Lose changed the reason to %q", got)
	}
}

func TestErrors(t *testing.T) {
	inner := errors.New("connection refused")
	be := &locks.BackendError{Backend: "etcd", Op: "acquire", Err: inner}
	if !errors.Is(be, inner) || be.Error() != "locks: etcd acquire: connection refused" {
		t.Errorf("BackendError: %v", be)
	}
	if errors.Is(be, locks.ErrLockLost) || errors.Is(be, locks.ErrNotAcquired) {
		t.Error("BackendError matches a lock sentinel")
	}
	fe := &locks.FnError{Err: inner}
	if !errors.Is(fe, inner) || errors.Is(fe, locks.ErrLockLost) {
		t.Errorf("FnError: %v", fe)
	}
	if p := (&locks.FnError{Panic: 42}).Error(); !strings.Contains(p, "panicked: 42") {
		t.Errorf("panic FnError: %q", p)
	}
	if locks.Token(7).String() != "7" {
		t.Error("Token.String")
	}
}
