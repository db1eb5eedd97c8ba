package backend_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/locksim/locksim/backend"
)

// Every entry is complete: a unique name, a seed, a package of locks/ that
// exists, a service, defaults a lock can start from.
func TestRegistryEntries(t *testing.T) {
	seen := map[string]bool{}
	for _, b := range backend.All() {
		if b.Name == "" || seen[b.Name] {
			t.Errorf("backend %q: empty or listed twice", b.Name)
		}
		seen[b.Name] = true
		if b.Seed == "" || b.Service == "" || b.Defaults == nil {
			t.Errorf("%s: seed %q, service %q, defaults set %v: want all three", b.Name, b.Seed, b.Service, b.Defaults != nil)
			continue
		}
		if o := b.Defaults(); o.TTL <= 0 && o.PollInterval <= 0 {
			t.Errorf("%s: defaults %+v have neither a TTL nor a poll interval", b.Name, o)
		}
		if _, err := os.Stat(filepath.Join("..", b.Package)); err != nil || !strings.HasPrefix(b.Package, "locks/") {
			t.Errorf("%s: package %q: want a directory of locks/ (%v)", b.Name, b.Package, err)
		}
		for _, f := range b.Reads {
			if !slices.Contains([]string{backend.LockClock, backend.LockRenewErrors, backend.LockFailover, backend.LockConnection, backend.LockDelay}, f) {
				t.Errorf("%s reads %q, which is no backend-specific lock field", b.Name, f)
			}
		}
		if b.Guarded && b.Tokenless {
			t.Errorf("%s: guarded and tokenless: a guarded write checks the lock's token", b.Name)
		}
	}
	if got := backend.Lookup("no-such-backend"); got != nil {
		t.Errorf("Lookup of an unknown name = %v, want nil", got)
	}
	if !slices.Equal(backend.Names(), backend.NamesWhere(func(*backend.Backend) bool { return true })) {
		t.Error("Names and NamesWhere(all) disagree")
	}
}

// What a verdict says of the lock settings a backend ignores, the same in
// real runs and the simulator (both call Notes).
func TestNotes(t *testing.T) {
	for _, c := range []struct {
		backend string
		s       backend.Settings
		want    []string // substrings, one per note, in order
	}{
		{"etcd", backend.Settings{TTL: 5 * time.Second, RenewEvery: time.Second, LockDelaySet: true}, nil},
		{"etcd", backend.Settings{RenewErrors: "stop"}, []string{"lock.renew_errors (stop) not applied"}},
		{"postgres", backend.Settings{RenewErrors: "stop", TTL: time.Second}, nil},
		{"consul", backend.Settings{}, nil},
		{"consul", backend.Settings{RenewEvery: time.Second}, []string{"have no effect on consul"}},
		{"consul", backend.Settings{LockDelaySet: true}, []string{"have no effect on consul"}},
		{"consul-ttl", backend.Settings{TTL: time.Second, LockDelaySet: true}, nil},
		{"megamutex", backend.Settings{TTL: 3 * time.Second}, []string{"lock.ttl (3s) does not expire the lock on megamutex"}},
		{"megamutex", backend.Settings{RenewEvery: time.Second}, nil},
		{"mysql", backend.Settings{TTL: time.Second, RenewErrors: "retry"}, []string{"renew_errors (retry) not applied", "lock.ttl has no effect on mysql"}},
		{"memcache", backend.Settings{TTL: time.Second}, nil},
	} {
		got := backend.Lookup(c.backend).Notes(c.s)
		ok := len(got) == len(c.want)
		for i := 0; ok && i < len(got); i++ {
			ok = strings.Contains(got[i], c.want[i])
		}
		if !ok {
			t.Errorf("%s %+v: notes %q, want %q", c.backend, c.s, got, c.want)
		}
	}
}

func ExampleLookup() {
	b := backend.Lookup("megamutex")
	fmt.Println(b.Seed)
	fmt.Println(b.Service, b.Tokenless, b.Guarded)
	fmt.Println(backend.NamesWhere(func(b *backend.Backend) bool { return b.Service == backend.Consul }))
	// Output:
	// seeds 000/001, MegaMutex: memcache-client add
	// memcached true false
	// [consul consul-ttl]
}
