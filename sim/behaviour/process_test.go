package behaviour_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/locksim/locksim/sim/behaviour"
)

// wakeEnv, set in the environment of this test binary, makes it a woken
// process (runWaker) instead of running the tests: its value is the
// address to read the message from, then the timers' dues in ms.
const wakeEnv = "LOCKSIM_BEHAVIOUR_WAKER"

func init() {
	if v := os.Getenv(wakeEnv); v != "" {
		os.Exit(runWaker(strings.Fields(v)))
	}
}

// runWaker is the woken process: a goroutine blocked on a timer for each
// due, one reading the connection; each prints its name and the wall
// clock (ns) when it runs, "m" for the reader.
func runWaker(args []string) int {
	c, err := net.Dial("tcp", args[0])
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	type ran struct {
		name string
		at   int64
	}
	ch := make(chan ran, len(args))
	go func() {
		b := make([]byte, 1)
		_, _ = c.Read(b)
		ch <- ran{"m", time.Now().UnixNano()}
	}()
	for i, a := range args[1:] {
		ms, _ := strconv.Atoi(a)
		go func() {
			t := time.NewTimer(time.Duration(ms) * time.Millisecond)
			<-t.C
			ch <- ran{strconv.Itoa(i), time.Now().UnixNano()}
		}()
	}
	fmt.Println("ready")
	for range args {
		r := <-ch
		fmt.Println(r.name, r.at)
	}
	return 0
}

// realProcess wakes child processes of this test binary.
type realProcess struct {
	t  *testing.T
	ln net.Listener
	// per wake: how late after its SIGCONT the first goroutine ran, the
	// gap from the message's read to the first timer (when read first),
	// the gaps between timers
	late, readToTimers, timerGaps []time.Duration
}

// logFigures logs the quantiles of the wakes' figures, as sim's
// wakeLateness, wakeReadToTimers and wakeTimerGap keep them.
func (p *realProcess) logFigures() {
	for _, f := range []struct {
		name string
		v    []time.Duration
	}{{"wake lateness", p.late}, {"read to timers", p.readToTimers}, {"timer gap", p.timerGaps}} {
		if len(f.v) == 0 {
			continue
		}
		slices.Sort(f.v)
		var q []string
		for _, x := range []float64{0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1} {
			q = append(q, fmt.Sprintf("%.1f", float64(f.v[int(x*float64(len(f.v)-1))].Nanoseconds())/1e3))
		}
		p.t.Logf("%s (us, %d values; quantiles 0 .1 .25 .5 .75 .9 .95 .99 .999 1): %s", f.name, len(f.v), strings.Join(q, " "))
	}
}

// errLateStop is a wake whose SIGSTOP came after a timer fired (the
// machine's load delayed the test): not the behaviour under test, so the
// wake is tried again.
var errLateStop = errors.New("a timer fired before the SIGSTOP")

func (p *realProcess) Wake(dues []time.Duration, stopAt, msgAt, contAt time.Duration) ([]string, []time.Duration, error) {
	for try := 0; ; try++ {
		ran, at, err := p.wake(dues, stopAt, msgAt, contAt)
		if !errors.Is(err, errLateStop) || try == 4 {
			return ran, at, err
		}
	}
}

func (p *realProcess) wake(dues []time.Duration, stopAt, msgAt, contAt time.Duration) ([]string, []time.Duration, error) {
	args := []string{p.ln.Addr().String()}
	for _, d := range dues {
		args = append(args, strconv.FormatInt(d.Milliseconds(), 10))
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), wakeEnv+"="+strings.Join(args, " "))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	conn, err := p.ln.Accept()
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "ready" {
		return nil, nil, fmt.Errorf("woken process: %q", sc.Text())
	}
	start := time.Now() // its timers were set just before "ready"
	time.Sleep(time.Until(start.Add(stopAt)))
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return nil, nil, err
	}
	time.Sleep(time.Until(start.Add(msgAt)))
	if _, err := conn.Write([]byte{1}); err != nil {
		return nil, nil, err
	}
	time.Sleep(time.Until(start.Add(contAt)))
	cont := time.Now().UnixNano()
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		return nil, nil, err
	}
	var ran []string
	var wall []int64
	for range len(dues) + 1 {
		if !sc.Scan() {
			return nil, nil, fmt.Errorf("woken process ended after %v", ran)
		}
		name, ns, _ := strings.Cut(sc.Text(), " ")
		t, err := strconv.ParseInt(ns, 10, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("woken process: %q", sc.Text())
		}
		ran, wall = append(ran, name), append(wall, t)
	}
	// The lines come in the order the goroutines got to the channel;
	// order them by when each ran.
	idx := make([]int, len(ran))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return int(wall[a] - wall[b]) })
	sorted := make([]string, len(ran))
	at := make([]time.Duration, len(ran))
	for i, j := range idx {
		sorted[i], at[i] = ran[j], time.Duration(wall[j]-wall[idx[0]])
	}
	if wall[idx[0]] < cont {
		return nil, nil, fmt.Errorf("woken process ran %s before its SIGCONT: %w", sorted[0], errLateStop)
	}
	p.late = append(p.late, time.Duration(wall[idx[0]]-cont))
	prev := time.Duration(-1)
	for i, r := range sorted {
		switch {
		case r == "m":
		case prev >= 0:
			p.timerGaps = append(p.timerGaps, at[i]-prev)
			prev = at[i]
		default:
			if sorted[0] == "m" {
				p.readToTimers = append(p.readToTimers, at[i])
			}
			prev = at[i]
		}
	}
	return sorted, at, nil
}

func newRealProcess(t *testing.T) *realProcess {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &realProcess{t: t, ln: ln}
}

// The behaviour cases on real child processes of this binary, woken by
// SIGCONT.
func TestProcessReal(t *testing.T) {
	for _, c := range behaviour.ProcessCases {
		t.Run(c.Name, func(t *testing.T) {
			p := newRealProcess(t)
			if err := c.Run(p); err != nil {
				t.Error(err)
			}
			p.logFigures()
		})
	}
}
