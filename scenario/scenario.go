// Package scenario reads scenario files: YAML that says which backends to
// run, with how many servers and clients, for how long, with which lock
// options and workload, under which fault schedule. The same file drives a
// run on real servers (locksim run) and in the simulator (locksim sim).
//
// A bad file is rejected before anything starts, with one error naming the
// file, the line and the field.
package scenario

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/locksim/locksim/backend"
	"github.com/locksim/locksim/faults/kinds"
)

// Scenario is one parsed and validated scenario file.
type Scenario struct {
	Name        string        `yaml:"name"`
	Description string        `yaml:"description"`
	Backends    []string      `yaml:"backends"`
	Cluster     Cluster       `yaml:"cluster"`
	Clients     int           `yaml:"clients"`
	Duration    time.Duration `yaml:"duration"`
	Lock        Lock          `yaml:"lock"`
	Workload    Workload      `yaml:"workload"`
	Faults      []Fault       `yaml:"faults"`
	// StartWindow is the span over which the clients' start offsets are
	// drawn (see Timing); unset (StartWindowSet false), DefaultStartWindow.
	StartWindow    time.Duration `yaml:"start_window"`
	StartWindowSet bool          `yaml:"-"`
}

// MaxDuration is the longest run a scenario may ask for. A run on real
// servers lasts that long in wall time; the simulator's cost grows with it
// too (from about a second to a minute and a half of CPU per simulated
// hour and seed, as the workload is busy), and a sweep runs it for every
// seed.
const MaxDuration = 24 * time.Hour

// FieldLine is the line of field (named as in errors: "duration",
// "lock.ttl", "faults[0].at", "backends[1]") in the scenario file at
// path, or 1 if the file does not give it or cannot be read. It is for
// errors found after Load, by what runs the scenario.
func FieldLine(path, field string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 1
	}
	p, _, _ := parse(path, data)
	if n, ok := p.nodes[field]; ok {
		return n.Line
	}
	return 1
}

// Cluster sizes the servers.
type Cluster struct {
	// Size is the number of servers: etcd members, Consul servers,
	// memcached instances (MegaMutex's server list). PostgreSQL has one.
	Size int `yaml:"size"`
}

// Lock holds the lock options every backend honours where it can.
type Lock struct {
	TTL         time.Duration `yaml:"ttl"`
	RenewEvery  time.Duration `yaml:"renew_every"`
	Poll        time.Duration `yaml:"poll"`
	WaitTimeout time.Duration `yaml:"wait_timeout"`
	// LockDelay is Consul's session lock-delay. Unset (LockDelaySet
	// false), Consul's own default applies (15 s); "lock_delay: 0s" turns
	// it off.
	LockDelay    time.Duration `yaml:"lock_delay"`
	LockDelaySet bool          `yaml:"-"`
	// Clock is the PostgreSQL lease table's clock: db or client.
	Clock string `yaml:"clock"`
	// RenewErrors is what the PostgreSQL lease table's lease does after a
	// renewal that fails with a database error (RenewErrorModes): retry
	// (unset: locksim's default, the next renewal tries again) or stop
	// (the gem's renewer thread dies: the lease renews no more and the
	// holder runs on unrenewed). Other backends ignore it.
	RenewErrors string `yaml:"renew_errors"`
	// Failover is memcache's and megamutex's failover to another server
	// when the key's server cannot be reached (Failovers): on (unset) or
	// off (locks/memcache's and locks/megamutex's Config.NoFailover,
	// memcache-client's :failover), in real runs and the simulator alike.
	Failover string `yaml:"failover"`
	// Connection is where the mysql backend runs GET_LOCK (Connections):
	// pinned (unset: a connection of the lease's own) or pooled (the
	// database/sql pitfall, locks/mysql's Config.Pooled: the lock goes
	// with the pool's connection). Other backends ignore it.
	Connection string `yaml:"connection"`
}

// Renewal is the renew interval the clients of a run use, in real runs
// and in the simulator alike (one rule for both): renew_every if set; else
// a third of ttl if ttl is set — etcd's keepalive interval, and what every
// backend's clients get when the scenario gives a TTL alone, rather than
// the backend's default renew_every, which may not be shorter than the
// TTL (locks.Apply refuses such a pair); else 0, the backend's default.
func (l Lock) Renewal() time.Duration {
	switch {
	case l.RenewEvery > 0:
		return l.RenewEvery
	case l.TTL > 0:
		return l.TTL / 3
	}
	return 0
}

// Pooled reports whether the scenario runs the mysql backend's pool
// pitfall.
func (l Lock) Pooled() bool { return l.Connection == "pooled" }

// NoFailover reports whether the scenario turns memcache's failover off.
func (l Lock) NoFailover() bool { return l.Failover == "off" }

// Workload is what each client does in its critical section.
type Workload struct {
	// Kind is counter (read, hold, write read+1), rotation (Locker's
	// pattern: run, release, sleep 1 s plus a random fraction) or list
	// (memcache only: seed 004's distinct list, inserts of items drawn
	// from Items, no lock).
	Kind string `yaml:"kind"`
	// Hold is how long a client holds the lock, drawn uniformly between
	// its bounds.
	HoldMin time.Duration `yaml:"hold_min"`
	HoldMax time.Duration `yaml:"hold_max"`
	// Fencing is what protects the resource (FencingModes): none, writes
	// (true in older files), all or guarded. Unset (""), none: read it
	// with Fencing.Mode.
	Fencing Fencing `yaml:"fencing"`
	// Keys is the number of lock keys (default 1).
	Keys int `yaml:"keys"`
	// Items is how many distinct items the list workload draws from
	// (default 100).
	Items int `yaml:"items"`
}

// Fault is one entry of the fault schedule.
type Fault struct {
	At     time.Duration `yaml:"at"`
	Fault  string        `yaml:"fault"`
	Target string        `yaml:"target"`
	For    time.Duration `yaml:"for"` // 0: until the end or a heal
	// Offset and Drift shape clock faults: a step or constant offset, and a
	// rate (0.1 = 10% fast, -0.1 = 10% slow).
	Offset time.Duration `yaml:"offset"`
	Drift  float64       `yaml:"drift"`
	// Latency and LatencyJitter shape slow links: the extra one-way delay
	// of every message and the most a uniform draw adds to it.
	Latency       time.Duration `yaml:"latency"`
	LatencyJitter time.Duration `yaml:"latency_jitter"`
	// Jitter is how far either side of At the fault's start is drawn (see
	// Timing); unset (JitterSet false), DefaultJitter; 0 keeps At exact.
	Jitter    time.Duration `yaml:"jitter"`
	JitterSet bool          `yaml:"-"`
}

// Known names.
var (
	// Backends are the backends' names, from the registry (package backend).
	Backends = backend.Names()
	// FaultKinds are the fault kinds' names, from the registry (package
	// faults/kinds).
	FaultKinds    = kinds.Names()
	WorkloadKinds = []string{"counter", "rotation", "list"}
	Clocks        = []string{"db", "client"}
	// RenewErrorModes are the values of lock.renew_errors: those of
	// locks/postgres.RenewErrors.
	RenewErrorModes = []string{"retry", "stop"}
	Failovers       = []string{"on", "off"}
	// Connections are the values of lock.connection (mysql).
	Connections = []string{"pinned", "pooled"}
	// FencingModes are the values of workload.fencing, weakest first.
	FencingModes = []Fencing{FenceNone, FenceWrites, FenceAll, FenceGuarded}
	// GuardedBackends are the backends whose lock service can make a write
	// conditional on the lock (workload.fencing: guarded). memcached has no
	// such operation: a guarded write cannot exist there.
	GuardedBackends = backend.NamesWhere(func(b *backend.Backend) bool { return b.Guarded })
	// TokenlessBackends are the backends whose grants carry no fencing
	// token (MegaMutex has none): their holders' reads and writes reach
	// the resource without one.
	TokenlessBackends = backend.NamesWhere(func(b *backend.Backend) bool { return b.Tokenless })
)

// Fencing is a fencing mode: what the protected resource checks.
type Fencing string

// The fencing modes.
const (
	// FenceNone: the resource accepts every request (fencing: false).
	FenceNone Fencing = "none"
	// FenceWrites: the resource rejects a write whose token is lower than
	// one it accepted for the key (fencing: true). A read is not checked,
	// so a holder that read before a newer holder wrote can still write
	// a value based on its stale read.
	FenceWrites Fencing = "writes"
	// FenceAll: the resource remembers the highest token of any request it
	// served, reads included, and refuses a lower one (Kleppmann's fenced
	// storage, Chubby's sequencers): read-modify-write is safe.
	FenceAll Fencing = "all"
	// FenceGuarded: the data lives in the lock service's own store and
	// every read and write is made conditional on still holding the lock,
	// in one atomic step with the lock check (locks.Guarded).
	FenceGuarded Fencing = "guarded"
)

// Mode is f with the zero value read as FenceNone.
func (f Fencing) Mode() Fencing {
	if f == "" {
		return FenceNone
	}
	return f
}

// Checked reports whether the resource checks tokens on writes (every
// mode but none).
func (f Fencing) Checked() bool { return f.Mode() != FenceNone }

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

var targetPattern = regexp.MustCompile(`^(holder|leader|clients|servers|minority|majority|resource|[a-z][a-z-]*[0-9]*)$`)

// Error is a bad scenario file: file, line and field.
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
}

// Error formats as "file:line: field "f": msg".
func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: field %q: %s", e.File, e.Line, e.Field, e.Msg)
}

// Load reads and validates the scenario file at path.
func Load(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse validates data, read from the file named name.
func Parse(name string, data []byte) (*Scenario, error) {
	_, s, err := parse(name, data)
	return s, err
}

// parse returns the parser too: the nodes of the fields read, up to an
// error if there is one.
func parse(name string, data []byte) (*parser, *Scenario, error) {
	p := &parser{file: name, nodes: map[string]*yaml.Node{}}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		return p, nil, yamlError(name, err)
	}
	if len(root.Content) == 0 {
		return p, nil, &Error{File: name, Line: 1, Msg: "empty scenario file"}
	}
	s := &Scenario{}
	if err := p.scenario(root.Content[0], s); err != nil {
		return p, nil, err
	}
	return p, s, nil
}

var yamlLine = regexp.MustCompile(`line (\d+): (.*)`)

func yamlError(name string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: name, Line: line, Msg: "bad YAML: " + m[2]}
	}
	return &Error{File: name, Line: 1, Msg: "bad YAML: " + msg}
}

type parser struct {
	file        string
	fencingNode *yaml.Node            // workload.fencing's value, if given
	nodes       map[string]*yaml.Node // the value of each field given, by name
}

// errAt is errf at the node of field if the file gives it, else at n.
func (p *parser) errAt(n *yaml.Node, field, format string, args ...any) error {
	if v, ok := p.nodes[field]; ok {
		n = v
	}
	return p.errf(n, field, format, args...)
}

func (p *parser) errf(n *yaml.Node, field, format string, args ...any) error {
	return &Error{File: p.file, Line: n.Line, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// fields walks a mapping node, calling set for each key; unknown keys and
// duplicate keys are errors.
func (p *parser) fields(n *yaml.Node, path string, set func(key string, v *yaml.Node, field string) (bool, error)) error {
	if n.Kind != yaml.MappingNode {
		return p.errf(n, strings.TrimSuffix(path, "."), "want a mapping of fields, got %s", kindName(n))
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		field := path + k.Value
		if seen[k.Value] {
			return p.errf(k, field, "given twice")
		}
		seen[k.Value] = true
		p.nodes[field] = v
		known, err := set(k.Value, v, field)
		if err != nil {
			return err
		}
		if !known {
			return p.errf(k, field, "unknown field")
		}
	}
	return nil
}

func (p *parser) scenario(n *yaml.Node, s *Scenario) error {
	err := p.fields(n, "", func(key string, v *yaml.Node, field string) (bool, error) {
		switch key {
		case "name":
			if err := p.str(v, field, &s.Name); err != nil {
				return true, err
			}
			if s.Name != "" && !namePattern.MatchString(s.Name) {
				return true, p.errf(v, field, "%q is not a name: letters, digits, '.', '_' and '-', starting with a letter or digit (it names the directories a run is written to)", s.Name)
			}
			return true, nil
		case "description":
			return true, p.str(v, field, &s.Description)
		case "backends":
			return true, p.backends(v, field, &s.Backends)
		case "cluster":
			return true, p.fields(v, "cluster.", func(key string, v *yaml.Node, field string) (bool, error) {
				if key == "size" {
					return true, p.intIn(v, field, &s.Cluster.Size, 1, 7)
				}
				return false, nil
			})
		case "clients":
			return true, p.intIn(v, field, &s.Clients, 1, 256)
		case "duration":
			if err := p.duration(v, field, &s.Duration); err != nil {
				return true, err
			}
			if s.Duration > MaxDuration {
				return true, p.errf(v, field, "%v is longer than the longest run allowed, %s", s.Duration, strings.TrimSuffix(MaxDuration.String(), "0m0s"))
			}
			return true, nil
		case "lock":
			return true, p.lock(v, &s.Lock)
		case "workload":
			return true, p.workload(v, &s.Workload)
		case "faults":
			return true, p.faults(v, &s.Faults)
		case "start_window":
			s.StartWindowSet = true
			return true, p.duration(v, field, &s.StartWindow)
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	// Required fields and defaults.
	switch {
	case s.Name == "":
		return p.errAt(n, "name", "missing")
	case len(s.Backends) == 0:
		return p.errAt(n, "backends", "missing: list one or more of %s", strings.Join(Backends, ", "))
	case s.Clients == 0:
		return p.errAt(n, "clients", "missing (want 1 to 256)")
	case s.Duration == 0 && p.nodes["duration"] != nil:
		return p.errAt(n, "duration", "must be above 0 (want a duration such as 20s)")
	case s.Duration == 0:
		return p.errf(n, "duration", "missing (want a duration such as 20s)")
	}
	if s.Cluster.Size == 0 {
		s.Cluster.Size = 1
	}
	if s.Workload.Kind == "" {
		s.Workload.Kind = "counter"
	}
	if s.Workload.Keys == 0 {
		s.Workload.Keys = 1
	}
	if s.Workload.Kind == "list" {
		if s.Workload.Items == 0 {
			s.Workload.Items = 100
		}
		for i, b := range s.Backends {
			if !backend.Lookup(b).List {
				return p.errAt(n, fmt.Sprintf("backends[%d]", i), "the list workload (seed 004's distinct list) runs on %s only, not %s",
					strings.Join(backend.NamesWhere(func(b *backend.Backend) bool { return b.List }), ", "), b)
			}
		}
	}
	// Checks across fields name the line of the field they blame.
	if s.Lock.TTL > 0 && s.Lock.RenewEvery >= s.Lock.TTL {
		return p.errAt(n, "lock.renew_every", "%v must be shorter than lock.ttl (%v)", s.Lock.RenewEvery, s.Lock.TTL)
	}
	if _, ok := p.nodes["workload.hold_max"]; !ok {
		// hold_min alone is a fixed hold, as the clients read it.
		s.Workload.HoldMax = s.Workload.HoldMin
	}
	if s.Workload.HoldMax < s.Workload.HoldMin {
		return p.errAt(n, "workload.hold_max", "%v must not be below workload.hold_min (%v)", s.Workload.HoldMax, s.Workload.HoldMin)
	}
	if err := p.checkFencing(s); err != nil {
		return err
	}
	for i, f := range s.Faults {
		if f.At >= s.Duration {
			return p.errAt(n, fmt.Sprintf("faults[%d].at", i), "%v is not before the end of the run (%v)", f.At, s.Duration)
		}
	}
	return nil
}

// MinLockTiming is the shortest lock.ttl, renew_every, poll or
// wait_timeout a scenario may give (0 is the backend's default). No lock
// service keeps time finer than that, and below it the clients would
// retry or renew in a tight loop (the simulator then barely advances).
const MinLockTiming = time.Millisecond

func (p *parser) lock(n *yaml.Node, l *Lock) error {
	timing := func(v *yaml.Node, field string, out *time.Duration) error {
		if err := p.duration(v, field, out); err != nil {
			return err
		}
		if *out != 0 && *out < MinLockTiming {
			return p.errf(v, field, "%v is below %v, the shortest lock timing allowed (0 or unset: the backend's default)", *out, MinLockTiming)
		}
		return nil
	}
	return p.fields(n, "lock.", func(key string, v *yaml.Node, field string) (bool, error) {
		switch key {
		case "ttl":
			return true, timing(v, field, &l.TTL)
		case "renew_every":
			return true, timing(v, field, &l.RenewEvery)
		case "poll":
			return true, timing(v, field, &l.Poll)
		case "wait_timeout":
			return true, timing(v, field, &l.WaitTimeout)
		case "lock_delay":
			l.LockDelaySet = true
			return true, p.duration(v, field, &l.LockDelay)
		case "clock":
			return true, p.oneOf(v, field, &l.Clock, Clocks)
		case "renew_errors":
			return true, p.oneOf(v, field, &l.RenewErrors, RenewErrorModes)
		case "failover":
			return true, p.oneOf(v, field, &l.Failover, Failovers)
		case "connection":
			return true, p.oneOf(v, field, &l.Connection, Connections)
		}
		return false, nil
	})
}

func (p *parser) workload(n *yaml.Node, w *Workload) error {
	return p.fields(n, "workload.", func(key string, v *yaml.Node, field string) (bool, error) {
		switch key {
		case "kind":
			return true, p.oneOf(v, field, &w.Kind, WorkloadKinds)
		case "hold_min":
			return true, p.duration(v, field, &w.HoldMin)
		case "hold_max":
			return true, p.duration(v, field, &w.HoldMax)
		case "fencing":
			p.fencingNode = v
			return true, p.fencing(v, field, &w.Fencing)
		case "keys":
			return true, p.intIn(v, field, &w.Keys, 1, 64)
		case "items":
			return true, p.intIn(v, field, &w.Items, 1, 1_000_000)
		}
		return false, nil
	})
}

// fencing reads workload.fencing: a mode, or true (writes) and false (none)
// as older files say.
func (p *parser) fencing(n *yaml.Node, field string, out *Fencing) error {
	modes := make([]string, len(FencingModes))
	for i, m := range FencingModes {
		modes[i] = string(m)
	}
	want := "one of " + strings.Join(modes, ", ") + " (or true for writes, false for none)"
	s, err := p.scalar(n, field, want)
	if err != nil {
		return err
	}
	switch {
	case n.Tag == "!!bool" && s == "true":
		*out = FenceWrites
	case n.Tag == "!!bool":
		*out = FenceNone
	case n.Tag == "!!str" && slices.Contains(modes, s):
		*out = Fencing(s)
	default:
		return p.errf(n, field, "%q is not %s", s, want)
	}
	return nil
}

// checkFencing refuses a mode that a listed backend cannot provide.
func (p *parser) checkFencing(s *Scenario) error {
	if s.Workload.Fencing != FenceGuarded {
		return nil
	}
	for i, b := range s.Backends {
		if !slices.Contains(GuardedBackends, b) {
			return p.errf(p.fencingNode, "workload.fencing", "guarded needs a lock service that can make a write conditional on holding the lock, and %s has none (backends[%d]): use all or writes there, or list only %s",
				b, i, strings.Join(GuardedBackends, ", "))
		}
	}
	return nil
}

func (p *parser) faults(n *yaml.Node, out *[]Fault) error {
	if n.Kind != yaml.SequenceNode {
		return p.errf(n, "faults", "want a list of faults, got %s", kindName(n))
	}
	for i, fn := range n.Content {
		var f Fault
		prefix := fmt.Sprintf("faults[%d].", i)
		err := p.fields(fn, prefix, func(key string, v *yaml.Node, field string) (bool, error) {
			switch key {
			case "at":
				return true, p.duration(v, field, &f.At)
			case "fault":
				return true, p.oneOf(v, field, &f.Fault, FaultKinds)
			case "target":
				if err := p.str(v, field, &f.Target); err != nil {
					return true, err
				}
				if !targetPattern.MatchString(f.Target) {
					return true, p.errf(v, field, "%q is not a target (holder, leader, clients, servers, minority, majority, resource, or a node or client name such as etcd1 or c2)", f.Target)
				}
				return true, nil
			case "for":
				return true, p.duration(v, field, &f.For)
			case "offset":
				return true, p.signedDuration(v, field, &f.Offset)
			case "drift":
				return true, p.float(v, field, &f.Drift)
			case "latency":
				return true, p.duration(v, field, &f.Latency)
			case "latency_jitter":
				return true, p.duration(v, field, &f.LatencyJitter)
			case "jitter":
				f.JitterSet = true
				return true, p.duration(v, field, &f.Jitter)
			}
			return false, nil
		})
		if err != nil {
			return err
		}
		if f.Fault == "" {
			return p.errf(fn, prefix+"fault", "missing: one of %s", strings.Join(FaultKinds, ", "))
		}
		if f.Target == "" && f.Fault != "heal" {
			return p.errf(fn, prefix+"target", "missing")
		}
		if err := p.faultParams(fn, prefix, &f); err != nil {
			return err
		}
		*out = append(*out, f)
	}
	return nil
}

// faultParams checks the shape of a fault against its kind: the fields
// that shape it are given where they are needed (a clock-drift without a
// drift would do nothing) and only where the kind uses them (a drift on a
// pause would be silently ignored), and a clock never runs backwards.
func (p *parser) faultParams(fn *yaml.Node, prefix string, f *Fault) error {
	k, _ := kinds.Lookup(f.Fault)
	uses := k.Fields
	given := map[string]bool{
		"offset": f.Offset != 0, "drift": f.Drift != 0,
		"latency": f.Latency != 0, "latency_jitter": f.LatencyJitter != 0,
	}
	// jitter (the window of the start) is every fault's.
	for _, param := range kinds.ShapeFields {
		if given[param] && !slices.Contains(uses, param) {
			what := "no " + param
			if len(uses) > 0 {
				what = "only " + strings.Join(uses, " and ")
			}
			return p.errAt(fn, prefix+param, "a %s fault takes %s", f.Fault, what)
		}
	}
	if len(uses) > 0 && !slices.ContainsFunc(uses, func(u string) bool { return given[u] }) {
		return p.errAt(fn, prefix+uses[0], "missing: a %s fault without a non-zero %s does nothing", f.Fault, strings.Join(uses, " or "))
	}
	if f.Drift <= -1 {
		return p.errAt(fn, prefix+"drift", "%g would stop the clock or run it backwards: want a rate above -1 (-0.5 runs at half speed, 1 at twice the speed)", f.Drift)
	}
	return nil
}

func (p *parser) backends(n *yaml.Node, field string, out *[]string) error {
	if n.Kind == yaml.ScalarNode {
		var b string
		if err := p.oneOf(n, field, &b, Backends); err != nil {
			return err
		}
		*out = []string{b}
		p.nodes[field+"[0]"] = n
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return p.errf(n, field, "want a backend name or a list of them, got %s", kindName(n))
	}
	for i, bn := range n.Content {
		var b string
		f := fmt.Sprintf("%s[%d]", field, i)
		p.nodes[f] = bn
		if err := p.oneOf(bn, f, &b, Backends); err != nil {
			return err
		}
		if j := slices.Index(*out, b); j >= 0 {
			return p.errf(bn, f, "%s is listed twice (also %s[%d])", b, field, j)
		}
		*out = append(*out, b)
	}
	return nil
}

func (p *parser) scalar(n *yaml.Node, field, want string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", p.errf(n, field, "want %s, got %s", want, kindName(n))
	}
	return n.Value, nil
}

func (p *parser) str(n *yaml.Node, field string, out *string) error {
	s, err := p.scalar(n, field, "a string")
	*out = s
	return err
}

func (p *parser) oneOf(n *yaml.Node, field string, out *string, allowed []string) error {
	s, err := p.scalar(n, field, "one of "+strings.Join(allowed, ", "))
	if err != nil {
		return err
	}
	if !slices.Contains(allowed, s) {
		return p.errf(n, field, "%q is not one of %s", s, strings.Join(allowed, ", "))
	}
	*out = s
	return nil
}

func (p *parser) intIn(n *yaml.Node, field string, out *int, lo, hi int) error {
	s, err := p.scalar(n, field, "an integer")
	if err != nil {
		return err
	}
	v, err := strconv.Atoi(s)
	if err != nil || n.Tag != "!!int" {
		return p.errf(n, field, "want an integer, got %q", s)
	}
	if v < lo || v > hi {
		return p.errf(n, field, "%d is out of range %d..%d", v, lo, hi)
	}
	*out = v
	return nil
}

func (p *parser) float(n *yaml.Node, field string, out *float64) error {
	s, err := p.scalar(n, field, "a number")
	if err != nil {
		return err
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || (n.Tag != "!!float" && n.Tag != "!!int") {
		return p.errf(n, field, "want a number, got %q", s)
	}
	*out = v
	return nil
}

func (p *parser) duration(n *yaml.Node, field string, out *time.Duration) error {
	if err := p.signedDuration(n, field, out); err != nil {
		return err
	}
	if *out < 0 {
		return p.errf(n, field, "must not be negative, got %v", *out)
	}
	return nil
}

func (p *parser) signedDuration(n *yaml.Node, field string, out *time.Duration) error {
	s, err := p.scalar(n, field, "a duration such as 1.5s or 200ms")
	if err != nil {
		return err
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		if s == "0" {
			*out = 0
			return nil
		}
		return p.errf(n, field, "want a duration such as 1.5s or 200ms, got %q", s)
	}
	*out = d
	return nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if n.Tag == "!!null" {
		return "nothing"
	}
	return fmt.Sprintf("%q", n.Value)
}

// Notes are what a verdict of s on the backend named b must say: the lock
// settings that have no effect on it (backend.Backend.Notes), the same in
// real runs and the simulator.
func (s *Scenario) Notes(b string) []string {
	be := backend.Lookup(b)
	if be == nil {
		return nil
	}
	st := backend.Settings{TTL: s.Lock.TTL, RenewEvery: s.Lock.RenewEvery, LockDelaySet: s.Lock.LockDelaySet, RenewErrors: s.Lock.RenewErrors}
	for _, f := range s.Faults {
		st.Faults = append(st.Faults, f.Fault)
	}
	return be.Notes(st)
}
