package memcache

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/locksim/locksim/locks"
)

// maxTries is memcache-client's number of rehashes before it gives up.
const maxTries = 20

// servers is the client side of MegaMutex's memcache_servers: one
// connection pool per server, key placement by hashing, and failover to a
// live server when the key's server is marked dead.
type servers struct {
	addrs     []string
	clients   []*memcache.Client
	failover  bool
	retryDead time.Duration
	clock     locks.Clock

	mu        sync.Mutex
	deadUntil []time.Time
}

func newServers(cfg Config, clock locks.Clock) *servers {
	s := &servers{
		addrs:     cfg.Servers,
		failover:  !cfg.NoFailover,
		retryDead: cfg.RetryDead,
		clock:     clock,
		deadUntil: make([]time.Time, len(cfg.Servers)),
	}
	for _, a := range cfg.Servers {
		c := memcache.New(a)
		c.Timeout = cfg.Timeout
		c.MaxIdleConns = 8
		s.clients = append(s.clients, c)
	}
	return s
}

// hash is the server index a string hashes to.
func (s *servers) hash(k string) int {
	return int(crc32.ChecksumIEEE([]byte(k)) % uint32(len(s.addrs)))
}

// candidates lists the servers to try for key, in order: the server the
// key hashes to, then, with failover, the servers "<try><key>" hashes to,
// skipping servers marked dead and repeats. Without failover it is the
// key's server alone, dead or not.
func (s *servers) candidates(key string) []int {
	first := s.hash(key)
	if !s.failover || len(s.addrs) == 1 {
		return []int{first}
	}
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	seen := make([]bool, len(s.addrs))
	for try := range maxTries {
		i := first
		if try > 0 {
			i = s.hash(strconv.Itoa(try-1) + key)
		}
		if seen[i] || now.Before(s.deadUntil[i]) {
			continue
		}
		seen[i] = true
		out = append(out, i)
	}
	return out
}

// markDead makes the failover skip server i for retryDead.
func (s *servers) markDead(i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deadUntil[i] = s.clock.Now().Add(s.retryDead)
}

// do runs op on key's server, failing over to the next candidate when the
// server cannot be reached. It returns the index of the server whose
// answer op returned.
func (s *servers) do(ctx context.Context, opName, key string, op func(c *memcache.Client) error) (int, error) {
	var last error
	for _, i := range s.candidates(key) {
		if err := ctx.Err(); err != nil {
			return -1, err
		}
		err := s.try(i, op)
		if !unreachable(err) {
			return i, err
		}
		last = fmt.Errorf("%s: %w", s.addrs[i], err)
		if s.failover {
			s.markDead(i)
		}
	}
	if last == nil {
		last = errors.New("no servers available")
	}
	return -1, backendErr(opName, last)
}

// on runs op on server i, with no failover.
func (s *servers) on(ctx context.Context, opName string, i int, op func(c *memcache.Client) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.try(i, op)
	if unreachable(err) {
		return backendErr(opName, fmt.Errorf("%s: %w", s.addrs[i], err))
	}
	return err
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
