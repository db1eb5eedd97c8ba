package netns

import (
	"context"
	"io"
	"net"
	"sync"
	"time"
)

// Forwarder accepts TCP connections on a listener in one namespace and
// joins each to a connection it opens to an upstream address in another.
// It is the plumbing between namespaces; the proxies that cut and slow
// traffic live in faults.
type Forwarder struct {
	ln       net.Listener
	to       *Namespace
	upstream string

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// DialTimeout bounds a Forwarder's dial of its upstream.
const DialTimeout = 2 * time.Second

// Forward listens on listen (a 127.0.0.1 address; port 0 picks a free
// one) inside from, and forwards every connection to upstream, dialled
// inside to. A connection whose upstream cannot be reached is closed.
func Forward(from *Namespace, listen string, to *Namespace, upstream string) (*Forwarder, error) {
	ln, err := from.Listen(listen)
	if err != nil {
		return nil, err
	}
	f := &Forwarder{ln: ln, to: to, upstream: upstream, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.accept()
	return f, nil
}

// Addr is the address the Forwarder listens on, in its from namespace.
func (f *Forwarder) Addr() string { return f.ln.Addr().String() }

func (f *Forwarder) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		if !f.track(c) {
			c.Close()
			return
		}
		f.wg.Add(1)
		go f.serve(c)
	}
}

func (f *Forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *Forwarder) untrack(c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.conns, c)
}

func (f *Forwarder) serve(c net.Conn) {
	defer f.wg.Done()
	defer f.untrack(c)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), DialTimeout)
	up, err := f.to.DialContext(ctx, f.upstream)
	cancel()
	if err != nil {
		return
	}
	if !f.track(up) {
		up.Close()
		return
	}
	defer f.untrack(up)
	defer up.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		// Plain reads and writes: io.Copy between two TCP connections
		// would splice through pipes that Go pools and frees only at GC.
		buf := make([]byte, 32<<10)
		_, _ = io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, buf)
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	// One side ended: end both, which ends the other copy.
	c.Close()
	up.Close()
	<-done
}

// Close stops listening and closes every connection it carries.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	f.closed = true
	err := f.ln.Close()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
	return err
}
