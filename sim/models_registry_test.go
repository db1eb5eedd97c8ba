package sim

import (
	"slices"
	"testing"

	"github.com/locksim/locksim/backend"
)

// Every backend of the registry has a model, and the simulator has no
// model the registry does not list: adding a backend without its model
// (or the reverse) fails here.
func TestModelsMatchRegistry(t *testing.T) {
	for _, b := range backend.Names() {
		if _, ok := models[b]; !ok {
			t.Errorf("backend %q is registered (package backend) but sim has no model of it (sim/models.go)", b)
		}
	}
	for name := range models {
		if backend.Lookup(name) == nil {
			t.Errorf("sim/models.go has a model of %q, which the registry does not list", name)
		}
	}
	if !slices.Equal(Backends, backend.Names()) {
		t.Errorf("sim.Backends = %v, want the registry's %v", Backends, backend.Names())
	}
}
