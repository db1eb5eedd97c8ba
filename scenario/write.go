package scenario

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Marshal writes s as a scenario file that Parse accepts and reads back
// equal to s: fields in the order of the Scenario type, zero values left
// out, durations in Go's notation.
func Marshal(s *Scenario) []byte {
	var b bytes.Buffer
	str := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s: %s\n", k, strconv.Quote(v))
		}
	}
	str("name", s.Name)
	str("description", s.Description)
	quoted := make([]string, len(s.Backends))
	for i, be := range s.Backends {
		quoted[i] = strconv.Quote(be)
	}
	fmt.Fprintf(&b, "backends: [%s]\n", strings.Join(quoted, ", "))
	if s.Cluster.Size != 0 {
		fmt.Fprintf(&b, "cluster:\n  size: %d\n", s.Cluster.Size)
	}
	fmt.Fprintf(&b, "clients: %d\n", s.Clients)
	fmt.Fprintf(&b, "duration: %s\n", dur(s.Duration))
	if s.StartWindowSet {
		fmt.Fprintf(&b, "start_window: %s\n", dur(s.StartWindow))
	}
	section(&b, "lock", [][2]string{
		{"ttl", optDur(s.Lock.TTL)},
		{"renew_every", optDur(s.Lock.RenewEvery)},
		{"poll", optDur(s.Lock.Poll)},
		{"wait_timeout", optDur(s.Lock.WaitTimeout)},
		{"lock_delay", lockDelay(s.Lock)},
		{"clock", s.Lock.Clock},
		{"renew_errors", s.Lock.RenewErrors},
		{"failover", s.Lock.Failover},
		{"connection", s.Lock.Connection},
	})
	w := s.Workload
	fencing := string(w.Fencing) // unset stays unset
	keys := ""
	if w.Keys > 1 {
		keys = strconv.Itoa(w.Keys)
	}
	items := ""
	if w.Items != 0 {
		items = strconv.Itoa(w.Items)
	}
	section(&b, "workload", [][2]string{
		{"kind", w.Kind},
		{"hold_min", optDur(w.HoldMin)},
		{"hold_max", optDur(w.HoldMax)},
		{"fencing", fencing},
		{"keys", keys},
		{"items", items},
	})
	if len(s.Faults) == 0 {
		b.WriteString("faults: []\n")
		return b.Bytes()
	}
	b.WriteString("faults:\n")
	for _, f := range s.Faults {
		fmt.Fprintf(&b, "  - at: %s\n", dur(f.At))
		fmt.Fprintf(&b, "    fault: %s\n", f.Fault)
		if f.Target != "" {
			fmt.Fprintf(&b, "    target: %s\n", f.Target)
		}
		for _, kv := range [][2]string{
			{"for", optDur(f.For)},
			{"offset", optDur(f.Offset)},
			{"latency", optDur(f.Latency)},
			{"latency_jitter", optDur(f.LatencyJitter)},
			{"jitter", faultJitter(f)},
		} {
			if kv[1] != "" {
				fmt.Fprintf(&b, "    %s: %s\n", kv[0], kv[1])
			}
		}
		if f.Drift != 0 {
			fmt.Fprintf(&b, "    drift: %s\n", strconv.FormatFloat(f.Drift, 'f', -1, 64))
		}
	}
	return b.Bytes()
}

// Write writes s to path with Marshal.
func Write(path string, s *Scenario) error {
	return os.WriteFile(path, Marshal(s), 0o644)
}

func section(b *bytes.Buffer, name string, kvs [][2]string) {
	head := false
	for _, kv := range kvs {
		if kv[1] == "" {
			continue
		}
		if !head {
			fmt.Fprintf(b, "%s:\n", name)
			head = true
		}
		fmt.Fprintf(b, "  %s: %s\n", kv[0], kv[1])
	}
}

func dur(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	return d.String()
}

func optDur(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// lockDelay writes the lock-delay when the scenario set it, even to 0s.
func lockDelay(l Lock) string {
	if !l.LockDelaySet {
		return ""
	}
	return l.LockDelay.String()
}

// faultJitter writes a fault's start window only when the file gave one,
// so that a written scenario keeps the default where the original did.
func faultJitter(f Fault) string {
	if !f.JitterSet {
		return ""
	}
	return dur(f.Jitter)
}
