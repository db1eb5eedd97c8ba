package harness

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

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

// A TimerProbe records every timer it slept on, none of them early.
func TestTimerProbe(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	p := StartTimerProbe(ctx, 2)
	p.Wait()
	late := p.Lateness()
	// Each goroutine sleeps 10 ms then 100 ms (one starts at 100 ms):
	// at least three timers in 600 ms even on a loaded machine.
	if len(late) < 3 {
		t.Fatalf("%d timers recorded in 600 ms, want at least 3", len(late))
	}
	for _, l := range late {
		if l < 0 {
			t.Errorf("a timer fired %v early", -l)
		}
	}
	path := filepath.Join(t.TempDir(), "c1.json")
	if err := p.writeTiming(path, "c1"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rec TimingRecord
	if err := json.Unmarshal(b, &rec); err != nil || rec.Proc != "c1" || len(rec.TimerLatenessNs) != len(late) {
		t.Errorf("timing file %s: %+v, %v; want c1's %d timers", b, rec, err, len(late))
	}
}
