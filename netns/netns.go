// Package netns runs servers in network namespaces of their own, so that
// the traffic between them can be routed through proxies that locksim
// controls.
//
// A server advertises the address it binds to its peers, so on one shared
// loopback interface a proxy cannot sit between two servers: every peer
// would dial the server itself. In a namespace of its own each server has a
// loopback interface of its own; it binds 127.0.0.1 as usual, and inside
// its namespace the addresses of its peers lead to proxies, one for every
// ordered pair of servers, that locksim can cut or slow (see faults).
//
// Every socket locksim opens in a namespace binds 127.0.0.1. A namespace
// has no name in the file system (nothing under /run/netns): it lives as
// long as a file descriptor, a socket or a process holds it, so nothing is
// left behind when locksim exits, whatever way it exits. Making a namespace
// needs CAP_SYS_ADMIN (root); Supported says whether this process can.
package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// Namespace is a network namespace with only a loopback interface, up. A
// nil *Namespace stands for the namespace locksim itself runs in: its
// methods then act there.
type Namespace struct {
	name string

	mu sync.Mutex
	fd int // open on the namespace; -1 once closed
}

// New makes a namespace and brings its loopback interface up. name is for
// messages only.
func New(name string) (*Namespace, error) {
	var fd int
	err := onThread(func() error { return unix.Unshare(unix.CLONE_NEWNET) }, func() error {
		var err error
		if fd, err = unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
			return err
		}
		if err := loopbackUp(); err != nil {
			unix.Close(fd)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("netns: new namespace %s: %w", name, err)
	}
	return &Namespace{name: name, fd: fd}, nil
}

var (
	supportedOnce sync.Once
	supportedErr  error
)

// Supported returns nil if this process can make network namespaces, else
// why not (typically: not root).
func Supported() error {
	supportedOnce.Do(func() {
		ns, err := New("probe")
		if err != nil {
			supportedErr = err
			return
		}
		supportedErr = ns.Close()
	})
	return supportedErr
}

// Name is the name New was given ("host" for the nil Namespace).
func (ns *Namespace) Name() string {
	if ns == nil {
		return "host"
	}
	return ns.name
}

// Do runs fn on an OS thread that is inside ns. What fn creates there —
// sockets, child processes — belongs to ns for its whole life; fn must not
// start goroutines that expect to be in ns.
func (ns *Namespace) Do(fn func() error) error {
	if ns == nil {
		return fn()
	}
	ns.mu.Lock()
	fd := ns.fd
	ns.mu.Unlock()
	if fd < 0 {
		return fmt.Errorf("netns: %s is closed", ns.name)
	}
	return onThread(func() error { return unix.Setns(fd, unix.CLONE_NEWNET) }, fn)
}

// Listen listens on a TCP address inside ns.
func (ns *Namespace) Listen(addr string) (net.Listener, error) {
	var l net.Listener
	err := ns.Do(func() (err error) {
		l, err = net.Listen("tcp", addr)
		return err
	})
	return l, err
}

// ListenUDP opens a UDP socket bound to addr inside ns.
func (ns *Namespace) ListenUDP(addr string) (*net.UDPConn, error) {
	a, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	var c *net.UDPConn
	err = ns.Do(func() (err error) {
		c, err = net.ListenUDP("udp", a)
		return err
	})
	return c, err
}

// DialUDP opens a UDP socket inside ns that sends to addr.
func (ns *Namespace) DialUDP(addr string) (*net.UDPConn, error) {
	a, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	var c *net.UDPConn
	err = ns.Do(func() (err error) {
		c, err = net.DialUDP("udp", nil, a)
		return err
	})
	return c, err
}

// DialContext opens a TCP connection to addr from inside ns.
func (ns *Namespace) DialContext(ctx context.Context, addr string) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	return c, err
}

// Start starts cmd inside ns: the process and everything it starts see
// only ns's network.
func (ns *Namespace) Start(cmd *exec.Cmd) error {
	return ns.Do(cmd.Start)
}

// Close lets go of the namespace. It disappears once no process or socket
// is left in it.
func (ns *Namespace) Close() error {
	if ns == nil {
		return nil
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.fd < 0 {
		return nil
	}
	err := unix.Close(ns.fd)
	ns.fd = -1
	return err
}

// onThread runs enter and then fn on one locked OS thread, and then moves
// the thread back to the namespace it started in. If it cannot, the thread
// stays locked and ends with its goroutine, so that no other goroutine
// ever runs in the wrong namespace.
func onThread(enter, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(orig)
		if err := enter(); err != nil {
			if errors.Is(err, unix.EPERM) {
				err = fmt.Errorf("%w (network namespaces need root)", err)
			}
			// enter may have half happened: do not reuse the thread.
			if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
				runtime.UnlockOSThread()
			}
			errc <- err
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("netns: back to the original namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// loopbackUp brings up the loopback interface of the current thread's
// namespace (a new namespace has it down).
func loopbackUp() error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	return nil
}

// Host is a server that runs in a namespace of its own, with the ports on
// 127.0.0.1 where its peers reach it.
type Host struct {
	// Name names the server (etcd1, consul2, …): the endpoint name that
	// faults cut and slow.
	Name string
	// NS is the server's namespace.
	NS *Namespace
	// TCP and UDP are the ports its peers connect or send to.
	TCP, UDP []int
}
