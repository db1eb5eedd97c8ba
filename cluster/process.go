package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/locksim/locksim/netns"
)

// Node is one server process that the fault layer can act on.
type Node interface {
	// Name is the node's name within its cluster ("etcd1", "pg", ...).
	Name() string
	// Stop asks the server to shut down (SIGTERM), then kills it.
	Stop() error
	// Kill sends SIGKILL to the server's process group and waits for it.
	Kill() error
	// Pause stops the server's process group (SIGSTOP).
	Pause() error
	// Resume continues a paused server (SIGCONT).
	Resume() error
	// Restart starts the server again after Stop or Kill, keeping its
	// data directory and ports.
	Restart() error
	// PID is the server's process id while it runs, else 0.
	PID() int
	// LogPath is the file the server's output goes to.
	LogPath() string
}

// Process runs one server command as a Node. The command is built afresh by
// a function for every start, so that Restart runs it again.
type Process struct {
	name    string
	command func() *exec.Cmd
	logPath string
	ns      *netns.Namespace // where it runs; nil: locksim's own network

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{} // closed when the current process has exited
	paused bool
}

// NewProcess returns a stopped Process named name; command builds the
// command line for each start, and the server's stdout and stderr are
// appended to logPath.
func NewProcess(name, logPath string, command func() *exec.Cmd) *Process {
	return &Process{name: name, command: command, logPath: logPath}
}

// NewProcessIn is NewProcess for a server that runs, every time it starts,
// in network namespace ns.
func NewProcessIn(ns *netns.Namespace, name, logPath string, command func() *exec.Cmd) *Process {
	return &Process{name: name, command: command, logPath: logPath, ns: ns}
}

// Namespace is the network namespace the process runs in; nil for
// locksim's own.
func (p *Process) Namespace() *netns.Namespace { return p.ns }

// Name implements Node.
func (p *Process) Name() string { return p.name }

// LogPath is the file the server's output goes to.
func (p *Process) LogPath() string { return p.logPath }

// Start starts the process if it is not running.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running() {
		return nil
	}
	cmd := p.command()
	log, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("cluster: %s: log: %w", p.name, err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	// Keep what the command set (e.g. Credential, to run a server that
	// refuses root as another user) and add the group and death signal.
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	// Pdeathsig fires when the forking OS thread dies; Go retires threads
	// only when a goroutine exits while locked to one, which locksim avoids.
	err = p.ns.Start(cmd)
	log.Close()
	if err != nil {
		return fmt.Errorf("cluster: start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	p.cmd, p.done, p.paused = cmd, done, false
	return nil
}

// running reports whether the current process is alive; p.mu is held.
func (p *Process) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Running reports whether the server process is alive (paused counts).
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running()
}

// Exited is closed when the current process exits; nil if never started.
func (p *Process) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// PID implements Node.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running() {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *Process) signalGroup(sig syscall.Signal) error {
	if !p.running() {
		return fmt.Errorf("cluster: %s is not running", p.name)
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("cluster: signal %v to %s: %w", sig, p.name, err)
	}
	return nil
}

// Pause implements Node.
func (p *Process) Pause() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.signalGroup(syscall.SIGSTOP); err != nil {
		return err
	}
	p.paused = true
	// SIGSTOP takes effect when the kernel next schedules each thread: wait
	// until it has, so that a paused server answers nothing after Pause
	// returns.
	WaitStopped(p.cmd.Process.Pid, time.Second)
	return nil
}

// WaitStopped waits until every thread of process pid is stopped (or gone),
// at most timeout; it reports whether they all are.
func WaitStopped(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if allStopped(pid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
}

// allStopped reads the state of every thread of pid from /proc.
func allStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return true // gone
	}
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, t.Name()))
		if err != nil {
			continue // the thread exited
		}
		// pid (comm) state ...: the comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) {
			continue
		}
		switch b[i+2] {
		case 'T', 't', 'Z', 'X':
		default:
			return false
		}
	}
	return true
}

// Resume implements Node.
func (p *Process) Resume() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.signalGroup(syscall.SIGCONT); err != nil {
		return err
	}
	p.paused = false
	return nil
}

// Paused reports whether the server is paused.
func (p *Process) Paused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused && p.running()
}

// Kill implements Node. Killing a stopped process is not an error.
func (p *Process) Kill() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running() {
		return nil
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	return nil
}

// StopTimeout is how long Stop waits after SIGTERM before SIGKILL.
const StopTimeout = 10 * time.Second

// Stop implements Node: SIGTERM (and SIGCONT, in case it is paused), then
// SIGKILL after StopTimeout. Stopping a stopped process is not an error.
func (p *Process) Stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running() {
		return nil
	}
	pid := p.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	_ = syscall.Kill(-pid, syscall.SIGCONT)
	select {
	case <-p.done:
	case <-time.After(StopTimeout):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-p.done
	}
	// Reap whatever else is left in the group.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	return nil
}

// Restart implements Node.
func (p *Process) Restart() error {
	if err := p.Stop(); err != nil {
		return err
	}
	return p.Start()
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// WaitTCP waits until addr accepts a TCP connection, the process exits, or
// timeout passes.
func WaitTCP(addr string, exited <-chan struct{}, timeout time.Duration) error {
	return WaitTCPIn(nil, addr, exited, timeout)
}

// WaitTCPIn is WaitTCP for a server inside network namespace ns.
func WaitTCPIn(ns *netns.Namespace, addr string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		c, err := ns.DialContext(ctx, addr)
		cancel()
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("cluster: process exited before %s accepted connections", addr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster: %s not accepting connections after %v: %w", addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
