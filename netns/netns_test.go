package netns_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/locksim/locksim/netns"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newNS(t *testing.T, name string) *netns.Namespace {
	t.Helper()
	ns, err := netns.New(name)
	if err != nil {
		t.Fatalf("new namespace: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

// A server in a namespace is out of reach from the host and from another
// namespace on the same address, and reachable from inside its own.
func TestNamespacesAreSeparate(t *testing.T) {
	a, b := newNS(t, "a"), newNS(t, "b")
	ln, err := a.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello from a"))
			c.Close()
		}
	}()
	addr := ln.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()

	c, err := a.DialContext(ctx, addr)
	if err != nil {
		t.Fatalf("dial inside a: %v", err)
	}
	got, _ := io.ReadAll(c)
	c.Close()
	if string(got) != "hello from a" {
		t.Fatalf("inside a read %q", got)
	}
	if c, err := b.DialContext(ctx, addr); err == nil {
		c.Close()
		t.Fatalf("namespace b reached a's listener at %s", addr)
	}
	// The host may have something of its own on that port; it must not be
	// a's listener.
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		got, _ := io.ReadAll(c)
		c.Close()
		if string(got) == "hello from a" {
			t.Fatalf("the host reached a's listener at %s", addr)
		}
	}
	// After all that, this goroutine's sockets are on the host again.
	host, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host.Close()
}

// Forward joins a listener on the host to a server inside a namespace,
// and Close ends the connections it carries.
func TestForward(t *testing.T) {
	ns := newNS(t, "srv")
	ln, err := ns.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	f, err := netns.Forward(nil, "127.0.0.1:0", ns, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", f.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo through the forwarder: %q, %v", buf, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(buf); err == nil {
		t.Fatal("connection still open after the forwarder closed")
	}
	// Nothing listens on the upstream's address: a connection is closed.
	g, err := netns.Forward(nil, "127.0.0.1:0", ns, "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	d, err := net.Dial("tcp", g.Addr())
	if err != nil {
		t.Fatal(err)
	}
	d.SetDeadline(time.Now().Add(5 * time.Second))
	if n, err := d.Read(buf); err == nil {
		t.Fatalf("read %d bytes from a forwarder with no upstream", n)
	}
	d.Close()
}

// A process started in a namespace sees only its loopback interface, up.
func TestStartSeesOnlyLoopback(t *testing.T) {
	ns := newNS(t, "proc")
	var out bytes.Buffer
	cmd := exec.Command("cat", "/proc/net/dev")
	cmd.Stdout = &out
	if err := ns.Start(cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	var ifaces []string
	for _, line := range strings.Split(out.String(), "\n")[2:] {
		if name, _, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			ifaces = append(ifaces, name)
		}
	}
	if len(ifaces) != 1 || ifaces[0] != "lo" {
		t.Fatalf("interfaces in the namespace: %v\n%s", ifaces, out.String())
	}
	// The host has more than a loopback interface, or this test proves
	// nothing.
	var host bytes.Buffer
	hc := exec.Command("cat", "/proc/net/dev")
	hc.Stdout = &host
	if err := hc.Run(); err != nil {
		t.Fatal(err)
	}
	if strings.Count(host.String(), ":") < 2 {
		t.Logf("the host has only loopback too:\n%s", host.String())
	}
}

func TestClosedNamespace(t *testing.T) {
	ns, err := netns.New("gone")
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ns.Listen("127.0.0.1:0"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("listen in a closed namespace: %v", err)
	}
	if err := ns.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// A server in a namespace of its own, reached from the host through a
// Forwarder.
func Example() {
	if err := netns.Supported(); err != nil {
		fmt.Println("no namespaces here:", err)
		return
	}
	ns, err := netns.New("server")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ns.Close()
	ln, err := ns.Listen("127.0.0.1:0") // 127.0.0.1 of the namespace
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("hello from inside"))
			c.Close()
		}
	}()
	f, err := netns.Forward(nil, "127.0.0.1:0", ns, ln.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	c, err := net.Dial("tcp", f.Addr())
	if err != nil {
		fmt.Println(err)
		return
	}
	b, _ := io.ReadAll(c)
	c.Close()
	fmt.Println(string(b))
	// Output: hello from inside
}
