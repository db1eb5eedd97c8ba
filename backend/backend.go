// Package backend is locksim's one registry of backends: each lock client
// it runs, named after the published design (its seed) it reproduces, with
// what every layer needs to know of it — its defaults, the service its
// servers run, what its lock service can do (guarded writes, fencing
// tokens, the list workload), which of a scenario's lock fields it reads,
// and what a verdict must say of the fields it ignores.
//
// Scenario validation, the harness, the simulator, compare and the report
// take their lists from here (Names, Lookup). The layers' own parts of a
// backend — how harness/ deploys its real servers and builds its client,
// the model sim/ runs — live in those packages, one file per backend that
// registers itself by this name, and each layer's tests fail if a backend
// listed here has no part there. CONTRIBUTING.md has the steps to add one.
package backend

import (
	"fmt"
	"slices"
	"time"

	"github.com/locksim/locksim/locks"
)

// Service is the kind of server a backend's clients talk to, as package
// cluster starts it.
type Service string

// The services locksim starts.
const (
	Etcd      Service = "etcd"
	Postgres  Service = "postgres"
	Memcached Service = "memcached"
	Consul    Service = "consul"
	MariaDB   Service = "mariadb"
)

// Backend describes one backend.
type Backend struct {
	// Name is the backend's name in scenario files, reports and flags.
	Name string
	// Seed is the published design the backend reproduces, in a few words.
	Seed string
	// Package is the Go package of its client in locks/.
	Package string
	// Service is the servers it runs on.
	Service Service
	// Defaults are its package's lock options (TTL, renew interval, poll
	// interval) before a scenario's settings.
	Defaults func() locks.Options
	// Guarded: its lock service can make a write conditional on the lock
	// (locks.Guarded; workload.fencing: guarded).
	Guarded bool
	// Tokenless: its grants carry no fencing token.
	Tokenless bool
	// List: it runs the list workload (seed 004's distinct list).
	List bool
	// Reads are the backend-specific lock fields of a scenario it reads
	// (the Lock* constants); a scenario that sets another is told so by
	// Notes where a note is written for it.
	Reads []string
	// IgnoresTTL, if set, is the note a verdict carries when a scenario
	// sets lock.ttl: why the TTL does not expire this backend's lock.
	IgnoresTTL func(ttl time.Duration) string
	// SeedSession, if set, is the note a verdict carries when a scenario
	// sets any of lock.ttl, lock.renew_every or lock.lock_delay: the
	// backend runs the seed's own session, which has none of them.
	SeedSession string
	// NoFaults are the fault kinds (package faults/kinds) that do nothing
	// on this backend, each with why: real runs and the simulator alike
	// record such a fault as skipped, and a verdict of a scenario with one
	// carries the why as a note.
	NoFaults map[string]string
}

// The backend-specific lock fields of a scenario (scenario.Lock).
const (
	LockClock       = "clock"
	LockRenewErrors = "renew_errors"
	LockFailover    = "failover"
	LockConnection  = "connection"
	LockDelay       = "lock_delay"
)

// ReadsField reports whether b reads the scenario's lock field.
func (b *Backend) ReadsField(field string) bool { return slices.Contains(b.Reads, field) }

// Settings are the lock settings of a scenario that a backend's notes look
// at (package scenario fills them from its Lock).
type Settings struct {
	TTL, RenewEvery time.Duration
	LockDelaySet    bool
	RenewErrors     string
	// Faults are the kinds of the scenario's faults, in its order.
	Faults []string
}

// Notes are what a verdict of a run with these settings on b must say: the
// settings that have no effect on it. Real runs and the simulator give the
// same.
func (b *Backend) Notes(s Settings) []string {
	var out []string
	if s.RenewErrors != "" && !b.ReadsField(LockRenewErrors) {
		out = append(out, fmt.Sprintf("lock.renew_errors (%s) not applied: it is the PostgreSQL lease table's (backend postgres); %s keeps its own renewal", s.RenewErrors, b.Name))
	}
	if s.TTL > 0 && b.IgnoresTTL != nil {
		out = append(out, b.IgnoresTTL(s.TTL))
	}
	if b.SeedSession != "" && (s.TTL > 0 || s.RenewEvery > 0 || s.LockDelaySet) {
		out = append(out, b.SeedSession)
	}
	for _, f := range s.Faults {
		if why, ok := b.NoFaults[f]; ok && !slices.Contains(out, why) {
			out = append(out, why)
		}
	}
	return out
}

// Lookup returns the backend named name, or nil.
func Lookup(name string) *Backend {
	for _, b := range all {
		if b.Name == name {
			return b
		}
	}
	return nil
}

// All returns every backend, in the order reports list them.
func All() []*Backend { return slices.Clone(all) }

// Names returns every backend's name, in the order reports list them.
func Names() []string {
	out := make([]string, len(all))
	for i, b := range all {
		out[i] = b.Name
	}
	return out
}

// NamesWhere returns the names of the backends for which keep is true, in
// order.
func NamesWhere(keep func(*Backend) bool) []string {
	var out []string
	for _, b := range all {
		if keep(b) {
			out = append(out, b.Name)
		}
	}
	return out
}
