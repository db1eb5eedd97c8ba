package harness

import (
	"container/heap"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/locksim/locksim/history"
)

// ProcLog is the history of one proc (a client, the resource, the nemesis),
// appended and flushed event by event, so that a run that crashes still
// leaves every event recorded before the crash.
type ProcLog struct {
	mu   sync.Mutex
	f    *os.File
	w    *history.Writer
	last int64
}

// CreateProcLog creates path for one proc's events.
func CreateProcLog(path string) (*ProcLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	return &ProcLog{f: f, w: history.NewWriter(f)}, nil
}

// Write appends e and flushes it to the file.
func (l *ProcLog) Write(e *history.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return errors.New("harness: write to a closed proc log")
	}
	if e.T < l.last {
		e.T = l.last // one proc's events are in order; guard against a racing stamp
	}
	l.last = e.T
	if err := l.w.Write(e); err != nil {
		return err
	}
	return l.w.Flush()
}

// Close closes the file.
func (l *ProcLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// Merge merges the per-proc histories in files into one history written to
// w, in time order (ties in the order of files). Each input must be in time
// order; an input that ends in a torn line (a crash mid-write) is read up to
// that line.
func Merge(w io.Writer, files []string) (int, error) {
	var readers []*history.Reader
	defer func() {
		for _, r := range readers {
			r.Close()
		}
	}()
	h := &mergeHeap{}
	for i, f := range files {
		r, err := history.Open(f)
		if err != nil {
			return 0, err
		}
		readers = append(readers, r)
		if e, ok, err := nextEvent(r); err != nil {
			return 0, err
		} else if ok {
			heap.Push(h, mergeItem{e: e, src: i})
		}
	}
	out := history.NewWriter(w)
	n := 0
	for h.Len() > 0 {
		it := heap.Pop(h).(mergeItem)
		if err := out.Write(&it.e); err != nil {
			return n, err
		}
		n++
		if e, ok, err := nextEvent(readers[it.src]); err != nil {
			return n, err
		} else if ok {
			heap.Push(h, mergeItem{e: e, src: it.src})
		}
	}
	return n, out.Flush()
}

// nextEvent reads the next event, treating a malformed last line as the
// end (a torn write); a malformed line followed by more is an error.
func nextEvent(r *history.Reader) (history.Event, bool, error) {
	e, err := r.Next()
	if err == io.EOF {
		return e, false, nil
	}
	var he *history.Error
	if errors.As(err, &he) {
		if _, err2 := r.Next(); err2 == io.EOF {
			return e, false, nil // torn last line
		}
		return e, false, fmt.Errorf("harness: merge: %w", err)
	}
	return e, err == nil, err
}

type mergeItem struct {
	e   history.Event
	src int
}

type mergeHeap []mergeItem

func (h mergeHeap) Len() int { return len(h) }
func (h mergeHeap) Less(i, j int) bool {
	if h[i].e.T != h[j].e.T {
		return h[i].e.T < h[j].e.T
	}
	return h[i].src < h[j].src
}
func (h mergeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)   { *h = append(*h, x.(mergeItem)) }
func (h *mergeHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// procFiles lists the per-proc histories of a run directory.
func procFiles(dir string) ([]string, error) {
	return filepath.Glob(filepath.Join(dir, "procs", "*.jsonl"))
}
