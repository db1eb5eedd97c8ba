package faults

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/locksim/locksim/netns"
)

// ConnectPeers wires servers that each run in a network namespace of their
// own so that every ordered pair of them talks through a link of its own.
// Inside each host's namespace, every peer's ports (on 127.0.0.1, the
// address the peer advertises) lead to this host's link to that peer:
//
//	host a: 127.0.0.1:p ─► proxy a→b (toxiproxy, here) ─► host b: 127.0.0.1:p
//
// so Cut, Partition, Isolate and Slow act on server↔server traffic per
// pair, as on client links. TCP ports go through toxiproxy; UDP ports (for
// Consul's gossip) go through a relay that drops or delays each datagram as
// the same cuts and slow links say. Close undoes it.
func (n *Network) ConnectPeers(hosts []netns.Host) error {
	for _, h := range hosts {
		if h.NS == nil {
			return fmt.Errorf("faults: peer %s has no namespace of its own", h.Name)
		}
	}
	for _, to := range hosts {
		for _, port := range to.TCP {
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			// One way in from the host namespace to `to`'s port: the
			// upstream of every link into `to`.
			in, err := netns.Forward(nil, "127.0.0.1:0", to.NS, addr)
			if err != nil {
				return fmt.Errorf("faults: peer %s port %d: %w", to.Name, port, err)
			}
			n.keep(in)
			for _, from := range hosts {
				if from.Name == to.Name {
					continue
				}
				l, err := n.AddLink(from.Name, to.Name, in.Addr())
				if err != nil {
					return err
				}
				entry, err := netns.Forward(from.NS, addr, nil, l.Addr())
				if err != nil {
					return fmt.Errorf("faults: %s's way to %s: %w", from.Name, addr, err)
				}
				n.keep(entry)
			}
		}
		for _, port := range to.UDP {
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			for _, from := range hosts {
				if from.Name == to.Name {
					continue
				}
				if err := n.relay(from, to, addr); err != nil {
					return fmt.Errorf("faults: %s's UDP way to %s: %w", from.Name, addr, err)
				}
			}
		}
	}
	return nil
}

func (n *Network) keep(f *netns.Forwarder) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.fwds = append(n.fwds, f)
}

// passes says whether a datagram from a to b goes through, and after how
// long.
func (n *Network) passes(a, b string) (time.Duration, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cut[pair{a, b}] != 0 {
		return 0, false
	}
	s := n.slow[pair{a, b}]
	d := s.mean
	if s.jitter > 0 {
		d += time.Duration(rand.Int64N(int64(2*s.jitter))) - s.jitter
	}
	return max(d, 0), true
}

// udpRelay carries the datagrams that from sends to addr inside its
// namespace to addr inside to's namespace, and the answers back.
type udpRelay struct {
	n        *Network
	from, to string
	in       *net.UDPConn // in from's namespace, bound to addr
	out      *net.UDPConn // in to's namespace, sending to addr

	mu     sync.Mutex
	sender *net.UDPAddr // who last sent on in: where answers go
	wg     sync.WaitGroup
}

// relay starts a udpRelay from from to addr in to, kept until Close.
func (n *Network) relay(from, to netns.Host, addr string) error {
	in, err := from.NS.ListenUDP(addr)
	if err != nil {
		return err
	}
	out, err := to.NS.DialUDP(addr)
	if err != nil {
		in.Close()
		return err
	}
	r := &udpRelay{n: n, from: from.Name, to: to.Name, in: in, out: out}
	r.wg.Add(2)
	go r.forward()
	go r.backward()
	n.mu.Lock()
	n.relays = append(n.relays, r)
	n.mu.Unlock()
	return nil
}

func (r *udpRelay) forward() {
	defer r.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		k, src, err := r.in.ReadFromUDP(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		r.mu.Lock()
		r.sender = src
		r.mu.Unlock()
		if d, ok := r.n.passes(r.from, r.to); ok {
			send(d, buf[:k], func(b []byte) { _, _ = r.out.Write(b) })
		}
	}
}

func (r *udpRelay) backward() {
	defer r.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		k, err := r.out.Read(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// ECONNREFUSED: the server is down; it may come back.
			continue
		}
		r.mu.Lock()
		to := r.sender
		r.mu.Unlock()
		if to == nil {
			continue
		}
		if d, ok := r.n.passes(r.to, r.from); ok {
			send(d, buf[:k], func(b []byte) { _, _ = r.in.WriteToUDP(b, to) })
		}
	}
}

// send sends b now, or a copy of it after d.
func send(d time.Duration, b []byte, write func([]byte)) {
	if d <= 0 {
		write(b)
		return
	}
	c := append([]byte(nil), b...)
	time.AfterFunc(d, func() { write(c) })
}

func (r *udpRelay) close() {
	r.in.Close()
	r.out.Close()
	r.wg.Wait()
}
