// Package scripttest reads the arguments of the machines' datadriven test
// scripts (locks/*/machine testdata): key=value pairs and bare flags, with
// typed readers that fail the script's command on a bad value. Tests only.
package scripttest

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// Args are one command's arguments.
type Args struct {
	t *testing.T
	d *datadriven.TestData
	// Vals are the key=value arguments (several values joined by ",").
	Vals map[string]string
	// Flags are the arguments without a value.
	Flags []string
}

// Parse reads d's arguments.
func Parse(t *testing.T, d *datadriven.TestData) *Args {
	a := &Args{t: t, d: d, Vals: map[string]string{}}
	for _, c := range d.CmdArgs {
		if len(c.Vals) == 0 {
			a.Flags = append(a.Flags, c.Key)
		} else {
			a.Vals[c.Key] = strings.Join(c.Vals, ",")
		}
	}
	return a
}

// Flag reports whether flag f is given.
func (a *Args) Flag(f string) bool { return slices.Contains(a.Flags, f) }

// Dur is k's value as a duration, def when k is not given.
func (a *Args) Dur(k string, def time.Duration) time.Duration {
	v, ok := a.Vals[k]
	if !ok {
		return def
	}
	x, err := time.ParseDuration(v)
	if err != nil {
		a.d.Fatalf(a.t, "%s: %v", k, err)
	}
	return x
}

// Int is k's value as an int64, def when k is not given.
func (a *Args) Int(k string, def int64) int64 {
	v, ok := a.Vals[k]
	if !ok {
		return def
	}
	return a.MustInt(k, v)
}

// MustInt is k's value v as an int64; a missing or bad value fails.
func (a *Args) MustInt(k, v string) int64 {
	x, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		a.d.Fatalf(a.t, "%s: %v", k, err)
	}
	return x
}

// Uint is k's value as a uint64, def when k is not given.
func (a *Args) Uint(k string, def uint64) uint64 {
	v, ok := a.Vals[k]
	if !ok {
		return def
	}
	x, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		a.d.Fatalf(a.t, "%s: %v", k, err)
	}
	return x
}
