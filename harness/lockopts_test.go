package harness

import (
	"context"
	"testing"
	"time"

	"github.com/locksim/locksim/locks"
	pglock "github.com/locksim/locksim/locks/postgres"
	"github.com/locksim/locksim/scenario"
)

// TestTTLAloneOnEveryBackend (issue 14): a scenario that gives lock.ttl
// without renew_every gets, on every backend, a locker that renews every
// third of the TTL — the rule the simulator uses (scenario.Lock.Renewal).
// Before, real clients got the TTL alone and the backend's default
// renew_every, which locks.Apply refuses when it is not shorter (10 s
// against a 2 s TTL on memcache), while the simulator renewed every ttl/3.
func TestTTLAloneOnEveryBackend(t *testing.T) {
	var cfg ClientConfig
	cfg.Proc = "c1"
	cfg.setLock(scenario.Lock{TTL: 2 * time.Second, Poll: 100 * time.Millisecond})
	want := 2 * time.Second / 3
	if cfg.RenewEvery != want {
		t.Fatalf("renew_every %v, want %v", cfg.RenewEvery, want)
	}
	for _, kind := range []string{"etcd", "memcache", "consul"} {
		// These lockers are built without a server to reach.
		l, closer, err := NewLocker(context.Background(), BackendClient{Kind: kind, Endpoints: []string{"127.0.0.1:1"}}, "c1", cfg.lockOptions()...)
		if err != nil {
			t.Errorf("%s: a TTL alone is refused: %v", kind, err)
			continue
		}
		if got := l.Options(); got.TTL != 2*time.Second || got.RenewEvery != want {
			t.Errorf("%s: TTL %v renew every %v, want 2s and %v", kind, got.TTL, got.RenewEvery, want)
		}
		closer.Close()
	}
	// PostgreSQL's lockers open their connection as they are built: the
	// options they start from, as New and NewAdvisory apply them.
	for kind, d := range map[string]locks.Options{"postgres": pglock.DefaultOptions, "postgres-advisory": pglock.DefaultAdvisoryOptions} {
		o, err := locks.Apply(d, cfg.lockOptions()...)
		if err != nil {
			t.Errorf("%s: a TTL alone is refused: %v", kind, err)
		} else if o.RenewEvery != want {
			t.Errorf("%s: renew every %v, want %v", kind, o.RenewEvery, want)
		}
	}
}
