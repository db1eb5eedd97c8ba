package memcache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/locksim/locksim/locks"
	"github.com/locksim/locksim/locks/memcache/machine"
)

// servers is the client side of a memcached server list: one
// connection pool per server, and the client machine, which places keys
// and keeps the servers marked dead, behind one mutex.
type servers struct {
	addrs   []string
	clients []*memcache.Client
	clock   locks.Clock
	epoch   time.Time // the origin of the machine's client time

	mu sync.Mutex
	m  *machine.Machine
}

func newServers(addrs []string, cfg machine.Config, clock locks.Clock) *servers {
	s := &servers{addrs: addrs, clock: clock, epoch: clock.Now(), m: machine.New(cfg)}
	for _, a := range addrs {
		c := memcache.New(a)
		c.Timeout = cfg.Timeout
		c.MaxIdleConns = 8
		s.clients = append(s.clients, c)
	}
	return s
}

// now is the client clock's reading as the machine takes it: ns since
// the servers were set up (monotonic on the system clock).
func (s *servers) now() int64 { return int64(s.clock.Now().Sub(s.epoch)) }

// do runs op on key's server, failing over to the next candidate when the
// server cannot be reached, with the machine's placement and dead-server
// window (List's operations). It returns the index of the server whose
// answer op returned.
func (s *servers) do(ctx context.Context, opName, key string, op func(c *memcache.Client) error) (int, error) {
	var buf [machine.MaxTries]int
	s.mu.Lock()
	cands := s.m.Candidates(key, s.now(), buf[:0])
	s.mu.Unlock()
	var last error
	for _, i := range cands {
		if err := ctx.Err(); err != nil {
			return -1, err
		}
		err := s.try(i, op)
		if !unreachable(err) {
			return i, err
		}
		last = fmt.Errorf("%s: %w", s.addrs[i], err)
		s.mu.Lock()
		s.m.MarkDead(i, s.now())
		s.mu.Unlock()
	}
	if last == nil {
		last = errors.New("no servers available")
	}
	return -1, backendErr(opName, last)
}

// try runs op on server i. If the server cannot be reached, it drops the
// idle connections (after a server restart they are all broken) and tries
// once more on a fresh one, as a client that reconnects would.
func (s *servers) try(i int, op func(c *memcache.Client) error) error {
	err := op(s.clients[i])
	if unreachable(err) {
		_ = s.clients[i].Close()
		err = op(s.clients[i])
	}
	return err
}

// unreachable reports whether err means the server could not be talked to
// (connection refused, timeout, broken connection), as opposed to an
// answer such as NOT_STORED or a cache miss.
func unreachable(err error) bool {
	if err == nil {
		return false
	}
	var netErr net.Error
	var timeout *memcache.ConnectTimeoutError
	return errors.As(err, &netErr) || errors.As(err, &timeout) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}

func backendErr(op string, err error) error {
	return &locks.BackendError{Backend: "memcache", Op: op, Err: err}
}
