package harness_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/locksim/locksim/harness"
)

// One short run per backend: while it runs, every listening socket of this
// process and of every process it started is on loopback; after it, no
// file descriptor, temporary directory or child process is left, and no
// output file holds a connection string with credentials. (Goroutines are
// checked by goleak in TestMain.)
func TestRunLoopbackOnlyNoLeaks(t *testing.T) {
	for _, b := range append(slices.Clone(allBackends), "consul") { // consul: its client agents too
		t.Run(b, func(t *testing.T) {
			fdsBefore := openFDs(t)
			tmpBefore := tempDirs(t)
			kidsBefore := children(t)
			dir := t.TempDir()

			var (
				mu     sync.Mutex
				listen = map[string]string{} // address → process
			)
			ctx, cancel := context.WithCancel(context.Background())
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				for ctx.Err() == nil {
					for addr, who := range listeners(t) {
						mu.Lock()
						listen[addr] = who
						mu.Unlock()
					}
					select {
					case <-ctx.Done():
					case <-time.After(200 * time.Millisecond):
					}
				}
			}()
			sc := scen("hygiene", 2*time.Second, true)
			sc.Backends = append(sc.Backends, "consul")
			v, err := harness.Run(context.Background(), harness.Options{Scenario: sc, Backend: b, Seed: 1, OutDir: dir})
			cancel()
			<-sampled
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if !v.OK {
				t.Fatalf("control run not clean: %+v", v.Violations)
			}

			// Loopback only, and something did listen: the servers, the
			// proxies, the resource.
			if len(listen) < 3 {
				t.Fatalf("only %d listening sockets seen: %v", len(listen), listen)
			}
			for addr, who := range listen {
				host, _, _ := net.SplitHostPort(strings.TrimPrefix(addr, "udp "))
				if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
					t.Errorf("%s listens on %s, not loopback", who, addr)
				}
			}
			t.Logf("%d listening sockets, all on loopback", len(listen))

			// Nothing left behind.
			if after := children(t); len(after) > len(kidsBefore) {
				t.Errorf("child processes left: %v (before: %v)", after, kidsBefore)
			}
			if left := leftTempDirs(tmpBefore, tempDirs(t)); len(left) > 0 {
				t.Errorf("temp dirs left: %v (before: %v)", left, tmpBefore)
			}
			if after := openFDs(t); len(after) > len(fdsBefore) {
				t.Errorf("file descriptors left open: %d before, %d after: %v", len(fdsBefore), len(after), newFDs(fdsBefore, after))
			}

			// No credentials in what the run wrote.
			secret := regexp.MustCompile(`(?i)postgres(ql)?://[^\s"]*@|password|passwd|secret`)
			_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				b, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				if m := secret.Find(b); m != nil {
					t.Errorf("%s holds %q: a connection string or a credential", path, m)
				}
				return nil
			})
		})
	}
}

// openFDs lists this process's open file descriptors as "fd → target",
// without the runtime's own (the network poller's epoll and eventfd, made
// once and kept).
func openFDs(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			continue // the directory's own fd, closed by now
		}
		if target == "anon_inode:[eventpoll]" || target == "anon_inode:[eventfd]" {
			continue
		}
		out = append(out, e.Name()+" → "+target)
	}
	return out
}

func newFDs(before, after []string) []string {
	var out []string
	for _, f := range after {
		if !slices.Contains(before, f) {
			out = append(out, f)
		}
	}
	return out
}

// listeners maps each TCP socket in LISTEN state, and each bound UDP
// socket (Consul's gossip), that belongs to this process or one of its
// descendants to "pid command"; UDP addresses are prefixed "udp ".
func listeners(t *testing.T) map[string]string {
	t.Helper()
	owner := map[string]string{} // socket inode → process
	for _, pid := range descendants(os.Getpid()) {
		fds, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
		comm, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "fd", fd.Name()))
			if err == nil && strings.HasPrefix(target, "socket:[") {
				owner[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] = strconv.Itoa(pid) + " " + strings.TrimSpace(string(comm))
			}
		}
	}
	out := map[string]string{}
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6", "/proc/net/udp", "/proc/net/udp6"} {
		udp := strings.HasPrefix(file, "/proc/net/udp")
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || !udp && fields[3] != "0A" || udp && fields[3] != "07" { // 0A: LISTEN, 07: unconnected
				continue
			}
			who, ok := owner[fields[9]]
			if !ok {
				continue
			}
			addr, err := parseProcAddr(fields[1])
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if udp {
				addr = "udp " + addr
			}
			out[addr] = who
		}
		f.Close()
	}
	return out
}

// parseProcAddr decodes /proc/net/tcp's "0100007F:1F90" (the address in
// host byte order, 32-bit words) into "127.0.0.1:8080".
func parseProcAddr(s string) (string, error) {
	h, p, _ := strings.Cut(s, ":")
	raw, err := hex.DecodeString(h)
	if err != nil {
		return "", err
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return "", err
	}
	ip := make(net.IP, len(raw))
	for i := 0; i+4 <= len(raw); i += 4 { // each 32-bit word is little-endian
		ip[i], ip[i+1], ip[i+2], ip[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	return net.JoinHostPort(ip.String(), strconv.FormatUint(port, 10)), nil
}

// descendants is pid and every live process below it.
func descendants(pid int) []int {
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 {
			if pp, err := strconv.Atoi(f[1]); err == nil {
				parent[p] = pp
			}
		}
	}
	out := []int{pid}
	for changed := true; changed; {
		changed = false
		for p, pp := range parent {
			if slices.Contains(out, pp) && !slices.Contains(out, p) {
				out = append(out, p)
				changed = true
			}
		}
	}
	return out
}

func TestParseProcAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"00000000:0016":                         "0.0.0.0:22",
		"00000000000000000000000001000000:0050": "[::1]:80",
		"00000000000000000000000000000000:0050": "[::]:80",
	} {
		if got, err := parseProcAddr(in); err != nil || got != want {
			t.Errorf("parseProcAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
