package resource_test

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/resource"
)

type memRecorder struct {
	mu     sync.Mutex
	t      int64
	events []history.Event
}

func (m *memRecorder) Now() int64 { m.t++; return m.t }
func (m *memRecorder) Record(e *history.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, *e)
}

func TestFencing(t *testing.T) {
	for _, fencing := range []bool{true, false} {
		rec := &memRecorder{}
		srv, err := resource.Serve(resource.NewStore(fencing, rec))
		if err != nil {
			t.Fatal(err)
		}
		c := resource.NewClient(srv.URL())
		tok := func(v int64) *int64 { return &v }
		if err := c.Write("k", tok(5), 1); err != nil {
			t.Fatal(err)
		}
		if err := c.Write("k", tok(5), 2); err != nil {
			t.Fatalf("same token again: %v", err)
		}
		err = c.Write("k", tok(4), 3)
		if fencing && !errors.Is(err, resource.ErrStaleToken) {
			t.Fatalf("fencing on: stale token gave %v", err)
		}
		if !fencing && err != nil {
			t.Fatalf("fencing off: stale token gave %v", err)
		}
		if err := c.Write("other", tok(1), 7); err != nil {
			t.Fatalf("another key: %v", err)
		}
		v, err := c.Read("k")
		want := int64(2)
		if !fencing {
			want = 3
		}
		if err != nil || v != want {
			t.Fatalf("fencing=%v: read %d, %v; want %d", fencing, v, err, want)
		}
		srv.Close()
		var fs []string
		for _, e := range rec.events {
			if e.Proc != history.ProcResource || e.Type != history.Info {
				t.Fatalf("event %+v", e)
			}
			fs = append(fs, e.F)
		}
		wantF := "accept,accept,reject,accept"
		if !fencing {
			wantF = "accept,accept,accept,accept"
		}
		if got := strings.Join(fs, ","); got != wantF {
			t.Fatalf("fencing=%v: events %s, want %s", fencing, got, wantF)
		}
	}
}
