package sim

import "sync"

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

// arenaPool is a sync.Pool of arenas of T.
type arenaPool[T any] struct{ p sync.Pool }

// get returns an arena for a run, and registers with r its return to the
// pool when the run ends.
func (p *arenaPool[T]) get(r *run) *arena[T] {
	a, _ := p.p.Get().(*arena[T])
	if a == nil {
		a = new(arena[T])
	}
	r.atEnd = append(r.atEnd, func() {
		a.reset()
		p.p.Put(a)
	})
	return a
}
