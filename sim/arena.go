package sim

import (
	"runtime"
	"sync"
)

// arena hands out zeroed Ts for one run and takes them all back when the
// run ends: a run's objects die with it (a Result keeps none), so the
// next run on the same core reuses their memory instead of allocating and
// collecting it again. For the objects a model makes per request.
type arena[T any] struct {
	chunks [][]T
	n      int // Ts handed out
}

const (
	arenaChunk = 256 // Ts per chunk
	arenaKeep  = 64  // chunks kept for the next run
)

// alloc returns a zeroed T that lives until the arena is reset.
func (a *arena[T]) alloc() *T {
	c, i := a.n/arenaChunk, a.n%arenaChunk
	if c == len(a.chunks) {
		a.chunks = append(a.chunks, make([]T, arenaChunk))
	}
	a.n++
	return &a.chunks[c][i]
}

// reset zeroes what was handed out, keeping at most arenaKeep chunks.
func (a *arena[T]) reset() {
	left := a.n
	for _, c := range a.chunks {
		if left == 0 {
			break
		}
		k := min(left, len(c))
		clear(c[:k])
		left -= k
	}
	if len(a.chunks) > arenaKeep {
		clear(a.chunks[arenaKeep:])
		a.chunks = a.chunks[:arenaKeep]
	}
	a.n = 0
}

// arenaPool keeps arenas of T from one run to the next.
type arenaPool[T any] struct{ l freeList[arena[T]] }

// get returns an arena for a run, and registers with r its return to the
// pool when the run ends.
func (p *arenaPool[T]) get(r *run) *arena[T] {
	a := p.l.get()
	if a == nil {
		a = new(arena[T])
	}
	r.atEnd = append(r.atEnd, func() {
		a.reset()
		p.l.put(a)
	})
	return a
}

// freeList keeps values of T that runs are done with for the next runs:
// as many as runs can go at once (GOMAXPROCS), the rest are dropped. It
// is not a sync.Pool, which gives a value back on the P that put it (or
// by stealing from another P's shared list, never from its private slot)
// and drops what it holds after two collections: a run's goroutine moves
// between Ps, and its arenas, queue and checker were made again every few
// runs (a sixth of etcd's bytes per seed).
type freeList[T any] struct {
	mu   sync.Mutex
	free []*T
}

func (l *freeList[T]) get() *T {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.free)
	if n == 0 {
		return nil
	}
	v := l.free[n-1]
	l.free[n-1] = nil
	l.free = l.free[:n-1]
	return v
}

func (l *freeList[T]) put(v *T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.free) < runtime.GOMAXPROCS(0) {
		l.free = append(l.free, v)
	}
}
