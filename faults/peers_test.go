package faults_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/netns"
)

// peer is a host in a namespace of its own with a TCP echo server and a UDP
// echo server on one port of 127.0.0.1 there.
type peer struct {
	host netns.Host
	addr string
}

func startPeer(t *testing.T, name string, port int) peer {
	t.Helper()
	ns, err := netns.New(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ln, err := ns.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(name + ":" + line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	uc, err := ns.ListenUDP(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { uc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			k, from, err := uc.ReadFromUDP(buf)
			if err != nil {
				return
			}
			uc.WriteToUDP(append([]byte(name+":"), buf[:k]...), from)
		}
	}()
	return peer{host: netns.Host{Name: name, NS: ns, TCP: []int{port}, UDP: []int{port}}, addr: addr}
}

// tcpAsk sends a line from inside p's namespace to addr and returns the
// answer, or "" if none came within wait.
func tcpAsk(t *testing.T, p peer, addr string, wait time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := p.host.NS.DialContext(ctx, addr)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return ""
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	return line
}

// udpAsk sends a datagram from p's own port inside its namespace (as
// gossip does) to addr and returns the answer, or "".
func udpAsk(t *testing.T, p peer, addr string, wait time.Duration) string {
	t.Helper()
	c, err := p.host.NS.ListenUDP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	to, _ := net.ResolveUDPAddr("udp", addr)
	if _, err := c.WriteToUDP([]byte("ping\n"), to); err != nil {
		return ""
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 1500)
	k, _, err := c.ReadFromUDP(buf)
	if err != nil {
		return ""
	}
	return string(buf[:k])
}

// Three servers, each in its namespace and on a port of its own: every
// ordered pair is a link of its own, so a cut between two of them leaves
// the third's links alone, and a one-way cut is one-way.
func TestConnectPeers(t *testing.T) {
	ports := make([]int, 3)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	a, b, c := startPeer(t, "a", ports[0]), startPeer(t, "b", ports[1]), startPeer(t, "c", ports[2])
	n := faults.NewNetwork()
	defer n.Close()
	if err := n.ConnectPeers([]netns.Host{a.host, b.host, c.host}); err != nil {
		t.Fatal(err)
	}
	ok, bad := 3*time.Second, 300*time.Millisecond
	if got := tcpAsk(t, a, b.addr, ok); got != "b:ping\n" {
		t.Fatalf("a→b over TCP: %q", got)
	}
	if got := udpAsk(t, a, b.addr, ok); got != "b:ping\n" {
		t.Fatalf("a→b over UDP: %q", got)
	}
	// a's own port inside a's namespace is a's server, not a link.
	if got := tcpAsk(t, a, a.addr, ok); got != "a:ping\n" {
		t.Fatalf("a→a: %q", got)
	}

	n.Cut("a", "b", faults.Both)
	if got := tcpAsk(t, a, b.addr, bad); got != "" {
		t.Fatalf("a→b answered through a cut: %q", got)
	}
	if got := udpAsk(t, b, a.addr, bad); got != "" {
		t.Fatalf("b→a UDP answered through a cut: %q", got)
	}
	if got := tcpAsk(t, a, c.addr, ok); got != "c:ping\n" {
		t.Fatalf("a→c cut by a cut between a and b: %q", got)
	}
	if got := tcpAsk(t, c, b.addr, ok); got != "b:ping\n" {
		t.Fatalf("c→b cut by a cut between a and b: %q", got)
	}
	n.Heal()
	if got := tcpAsk(t, a, b.addr, ok); got != "b:ping\n" {
		t.Fatalf("a→b after heal: %q", got)
	}

	// Halves: {a} against {b, c}; b and c still talk.
	n.Partition([]string{"a"}, []string{"b", "c"})
	if got := tcpAsk(t, b, c.addr, ok); got != "c:ping\n" {
		t.Fatalf("b→c inside the majority: %q", got)
	}
	if got := udpAsk(t, c, b.addr, ok); got != "b:ping\n" {
		t.Fatalf("c→b UDP inside the majority: %q", got)
	}
	if got := tcpAsk(t, c, a.addr, bad); got != "" {
		t.Fatalf("c→a across the partition: %q", got)
	}
	n.Heal()

	// One way: what c sends to a is lost; a's requests reach c, whose
	// answers are lost.
	n.Cut("c", "a", faults.Forward)
	if got := udpAsk(t, a, c.addr, bad); got != "" {
		t.Fatalf("c's UDP answer to a got through a one-way cut: %q", got)
	}
	if got := tcpAsk(t, c, a.addr, bad); got != "" {
		t.Fatalf("c→a got through a one-way cut: %q", got)
	}
	n.Heal()

	// Slow links delay datagrams as well as streams.
	if err := n.Slow("a", "b", 150*time.Millisecond, 0); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if got := udpAsk(t, a, b.addr, ok); got != "b:ping\n" {
		t.Fatalf("a→b UDP on a slow link: %q", got)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("UDP round trip on a 150ms link took %v", d)
	}
	n.Unslow()
}
