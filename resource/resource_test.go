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
	for _, mode := range []resource.Mode{resource.ModeWrites, resource.ModeNone, resource.ModeAll} {
		fencing := mode != resource.ModeNone
		rec := &memRecorder{}
		store, err := resource.NewStore(mode, rec)
		if err != nil {
			t.Fatal(err)
		}
		srv, err := resource.Serve(store)
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
			t.Fatalf("%s: stale token gave %v", mode, err)
		}
		if !fencing && err != nil {
			t.Fatalf("fencing off: stale token gave %v", err)
		}
		if err := c.Write("other", tok(1), 7); err != nil {
			t.Fatalf("another key: %v", err)
		}
		v, err := c.Read("k", tok(5))
		want := int64(2)
		if !fencing {
			want = 3
		}
		if err != nil || v != want {
			t.Fatalf("%s: read %d, %v; want %d", mode, v, err, want)
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
			t.Fatalf("%s: events %s, want %s", mode, got, wantF)
		}
	}
}

// The lost increment that fencing on writes lets through: the old holder
// (token 7) reads, a newer holder (token 8) reads the same value, the old
// one writes first — its token is the highest the resource has accepted
// so far — and the newer one writes too. ModeWrites accepts both (one
// increment lost); ModeAll refuses the old holder's write, because the
// newer holder's read raised the highest token to 8.
func TestStaleReadThenWrite(t *testing.T) {
	for _, tc := range []struct {
		mode    resource.Mode
		oldErr  error
		final   int64
		accepts int
	}{
		{resource.ModeWrites, nil, 1, 2},
		{resource.ModeAll, resource.ErrStaleToken, 1, 1},
	} {
		rec := &memRecorder{}
		s, err := resource.NewStore(tc.mode, rec)
		if err != nil {
			t.Fatal(err)
		}
		v7, err7 := s.Read("k", 7, true)
		v8, err8 := s.Read("k", 8, true)
		if v7 != 0 || v8 != 0 || err7 != nil || err8 != nil {
			t.Fatalf("%s: reads %d %v, %d %v", tc.mode, v7, err7, v8, err8)
		}
		if err := s.Write("k", 7, true, v7+1); !errors.Is(err, tc.oldErr) || (tc.oldErr == nil && err != nil) {
			t.Fatalf("%s: the old holder's write: %v, want %v", tc.mode, err, tc.oldErr)
		}
		if err := s.Write("k", 8, true, v8+1); err != nil {
			t.Fatalf("%s: the new holder's write: %v", tc.mode, err)
		}
		accepts := 0
		for _, e := range rec.events {
			if e.F == history.FAccept {
				accepts++
			}
		}
		got, _ := s.Read("k", 8, true)
		if got != tc.final || accepts != tc.accepts {
			t.Fatalf("%s: final %d with %d accepts, want %d with %d", tc.mode, got, accepts, tc.final, tc.accepts)
		}
	}
}

// ModeAll: a read with a lower token than one served, or with none, is
// refused over HTTP too, and changes nothing; the other modes ignore the
// read's token.
func TestReadFencing(t *testing.T) {
	tok := func(v int64) *int64 { return &v }
	for _, mode := range []resource.Mode{resource.ModeAll, resource.ModeWrites} {
		store, err := resource.NewStore(mode, &memRecorder{})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := resource.Serve(store)
		if err != nil {
			t.Fatal(err)
		}
		c := resource.NewClient(srv.URL())
		if _, err := c.Read("k", tok(9)); err != nil {
			t.Fatal(err)
		}
		_, errLow := c.Read("k", tok(8))
		_, errNone := c.Read("k", nil)
		errWrite := c.Write("k", tok(8), 1)
		srv.Close()
		if mode == resource.ModeAll {
			if !errors.Is(errLow, resource.ErrStaleToken) || !errors.Is(errNone, resource.ErrStaleToken) || !errors.Is(errWrite, resource.ErrStaleToken) {
				t.Fatalf("all: low read %v, tokenless read %v, low write %v", errLow, errNone, errWrite)
			}
		} else if errLow != nil || errNone != nil || errWrite != nil {
			t.Fatalf("writes: low read %v, tokenless read %v, write %v", errLow, errNone, errWrite)
		}
	}
	if _, err := resource.NewStore("guarded", &memRecorder{}); err == nil {
		t.Fatal("NewStore accepted a mode it does not know")
	}
}
