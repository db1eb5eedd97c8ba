package locks

import "sync"

// LostSignal is the part of a Lease that reports loss: a channel closed once
// and the reason. Backends embed it; its zero value is not usable, use
// NewLostSignal.
type LostSignal struct {
	key  string
	once sync.Once
	ch   chan struct{}
	mu   sync.Mutex
	err  error
}

// NewLostSignal returns a signal for a lease on key.
func NewLostSignal(key string) *LostSignal {
	return &LostSignal{key: key, ch: make(chan struct{})}
}

// Lose marks the lease lost for reason and closes the channel. Only the
// first call has an effect; it returns the error that Err will report.
func (s *LostSignal) Lose(reason string) error {
	s.once.Do(func() {
		s.mu.Lock()
		s.err = &LostError{Key: s.key, Reason: reason}
		s.mu.Unlock()
		close(s.ch)
	})
	return s.Err()
}

// Lost is closed once the lease is lost.
func (s *LostSignal) Lost() <-chan struct{} { return s.ch }

// Err is nil until Lose is called, then a *LostError.
func (s *LostSignal) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
