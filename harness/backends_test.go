package harness

import (
	"testing"

	"github.com/locksim/locksim/backend"
)

// Every backend of the registry has the harness's part (its deployment and
// its locker), and the harness has no part the registry does not list:
// adding a backend without them (or the reverse) fails here.
func TestPartsMatchRegistry(t *testing.T) {
	for _, b := range backend.Names() {
		p, ok := parts[b]
		if !ok {
			t.Errorf("backend %q is registered (package backend) but the harness cannot deploy it (harness/backends.go)", b)
			continue
		}
		if p.deploy == nil || p.locker == nil {
			t.Errorf("backend %q: the harness's part lacks its deployment or its locker", b)
		}
	}
	for name := range parts {
		if backend.Lookup(name) == nil {
			t.Errorf("harness/backends.go has a part for %q, which the registry does not list", name)
		}
	}
}
