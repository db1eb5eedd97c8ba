package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/locksim/locksim/checker"
)

// Baseline is the expected verdict of every cell, per mode: the committed
// reports/baseline.json that CI compares a comparison against.
type Baseline struct {
	// Note says what the baseline is and how to update it.
	Note string `json:"note,omitempty"`
	// Sim and Real are the expectations of each mode.
	Sim  *ModeBaseline `json:"sim,omitempty"`
	Real *ModeBaseline `json:"real,omitempty"`
}

// ModeBaseline is the expected verdicts of one mode.
type ModeBaseline struct {
	// Note says, for instance, which cells a real baseline leaves out.
	Note string `json:"note,omitempty"`
	// Seeds is the number of seeds per cell the simulator verdicts hold
	// for (a kind counts as present if any seed 1..Seeds shows it).
	Seeds uint64 `json:"seeds,omitempty"`
	// Cells maps SCENARIO/BACKEND to the expected kinds; empty is safe.
	Cells map[string][]checker.Kind `json:"cells"`
}

// Change is a cell whose verdict is not the baseline's.
type Change struct {
	Cell string
	// Want is the baseline's verdict (nil with NoBaseline), Got the run's.
	Want, Got []checker.Kind
	// NoBaseline: the baseline has no entry for a cell it should have.
	NoBaseline bool
	// Err is the cell's error, if it could not run.
	Err string
}

// String names the cell and what changed.
func (c Change) String() string {
	switch {
	case c.Err != "":
		return fmt.Sprintf("%s: could not run (%s); baseline: %s", c.Cell, c.Err, kindsText(c.Want))
	case c.NoBaseline:
		return fmt.Sprintf("%s: not in the baseline; now: %s", c.Cell, kindsText(c.Got))
	}
	var parts []string
	for _, k := range c.Got {
		if !slices.Contains(c.Want, k) {
			parts = append(parts, "new "+string(k))
		}
	}
	for _, k := range c.Want {
		if !slices.Contains(c.Got, k) {
			parts = append(parts, string(k)+" disappeared")
		}
	}
	return fmt.Sprintf("%s: %s (baseline: %s; now: %s)", c.Cell, strings.Join(parts, ", "), kindsText(c.Want), kindsText(c.Got))
}

// LoadBaseline reads a baseline file.
func LoadBaseline(path string) (*Baseline, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var b Baseline
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, jsonError(path, data, err)
	}
	return &b, nil
}

// jsonError names the file, the line and, where the decoder knows it, the
// field of a JSON error.
func jsonError(path string, data []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("%s:%d: bad JSON: %v", path, lineAt(data, se.Offset), se)
	case errors.As(err, &te):
		return fmt.Errorf("%s:%d: field %q: want %v, got %s", path, lineAt(data, te.Offset), te.Field, te.Type, te.Value)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// lineAt is the 1-based line of byte offset off in data.
func lineAt(data []byte, off int64) int {
	off = min(max(off, 0), int64(len(data)))
	return 1 + bytes.Count(data[:off], []byte("\n"))
}

// Save writes b to path as indented JSON, cells sorted.
func (b *Baseline) Save(path string) error {
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// Mode returns the expectations of mode (ModeSim or ModeReal), nil if the
// baseline has none.
func (b *Baseline) Mode(mode string) *ModeBaseline {
	if mode == ModeReal {
		return b.Real
	}
	return b.Sim
}

// Check compares s with the baseline of its mode and returns the cells
// whose verdict changed, in matrix order. A cell the baseline lists but s
// did not run is not checked (a comparison may run part of the
// catalogue). A simulator cell missing from the baseline is a change; a
// real cell missing from it is not checked, since a real baseline lists
// only the cells whose verdict is stable from run to run. It is an error
// if the baseline has no entry for the mode, or was made with another
// number of seeds.
func (b *Baseline) Check(s *Summary) ([]Change, error) {
	mb := b.Mode(s.Mode)
	if mb == nil {
		return nil, fmt.Errorf("the baseline has no %q section", s.Mode)
	}
	if s.Mode == ModeSim && mb.Seeds != s.Seeds {
		return nil, fmt.Errorf("the baseline's sim verdicts are for %d seeds per cell, this comparison ran %d", mb.Seeds, s.Seeds)
	}
	var out []Change
	for i := range s.Cells {
		c := &s.Cells[i]
		want, ok := mb.Cells[c.Name()]
		switch {
		case !ok && s.Mode == ModeReal:
			continue
		case !ok:
			out = append(out, Change{Cell: c.Name(), Got: c.Kinds, NoBaseline: true, Err: c.Error})
		case c.Error != "":
			out = append(out, Change{Cell: c.Name(), Want: want, Err: c.Error})
		case !sameKinds(want, c.Kinds):
			out = append(out, Change{Cell: c.Name(), Want: want, Got: c.Kinds})
		}
	}
	return out, nil
}

// Record sets the expectations of s's mode to the verdicts of every cell
// of s that ran (cells of other scenarios are kept).
func (b *Baseline) Record(s *Summary) {
	mb := b.Mode(s.Mode)
	if mb == nil {
		mb = &ModeBaseline{}
		if s.Mode == ModeReal {
			b.Real = mb
		} else {
			b.Sim = mb
		}
	}
	if mb.Cells == nil {
		mb.Cells = map[string][]checker.Kind{}
	}
	if s.Mode == ModeSim {
		if mb.Seeds != s.Seeds {
			mb.Cells = map[string][]checker.Kind{}
		}
		mb.Seeds = s.Seeds
	}
	for _, c := range s.Cells {
		if c.Error == "" {
			mb.Cells[c.Name()] = append([]checker.Kind{}, c.Kinds...)
		}
	}
}

func sameKinds(a, b []checker.Kind) bool {
	x := append([]checker.Kind{}, a...)
	y := append([]checker.Kind{}, b...)
	sort.Slice(x, func(i, j int) bool { return x[i] < x[j] })
	sort.Slice(y, func(i, j int) bool { return y[i] < y[j] })
	return slices.Equal(x, y)
}
