package report

import (
	"strings"
	"testing"

	"github.com/locksim/locksim/checker"
)

// protectionSummary: one family (cut, cut-all, cut-guarded) on etcd and
// memcache, and a scenario of its own.
func protectionSummary() *Summary {
	me, dmg := checker.MutualExclusion, checker.Damage
	cell := func(sc, be string, kinds ...checker.Kind) Cell {
		c := Cell{Scenario: sc, Backend: be, Kinds: kinds, Seeds: 10, SeedsWithKind: map[checker.Kind]int{}, Counts: map[checker.Kind]int{}}
		for _, k := range kinds {
			c.SeedsWithKind[k], c.Counts[k] = 10, 12
		}
		return c
	}
	return &Summary{
		Mode: ModeSim, Seeds: 10, Backends: []string{"etcd", "memcache"},
		Scenarios: []ScenarioInfo{
			{Name: "alone", Fencing: "writes"},
			{Name: "cut", Fencing: "writes", Family: "cut"},
			{Name: "cut-all", Fencing: "all", Family: "cut"},
			{Name: "cut-guarded", Fencing: "guarded", Family: "cut"},
		},
		Cells: []Cell{
			cell("alone", "etcd", dmg),
			cell("cut", "etcd", me), cell("cut", "memcache", me, dmg),
			cell("cut-all", "etcd", me), cell("cut-all", "memcache", me),
			cell("cut-guarded", "etcd", me),
		},
	}
}

func TestProtections(t *testing.T) {
	ps := Protections(protectionSummary())
	if len(ps) != 1 || ps[0].Family != "cut" || strings.Join(ps[0].Modes, ",") != "writes,all,guarded" || len(ps[0].Rows) != 2 {
		t.Fatalf("protections: %+v", ps)
	}
	var got []string
	for _, r := range ps[0].Rows {
		line := r.Backend + ": " + r.Lock
		for _, c := range r.Cells {
			line += " | " + c.Text
		}
		got = append(got, line)
	}
	want := []string{
		"etcd: failed: mutual-exclusion | protected | protected | protected",
		"memcache: failed: mutual-exclusion | damage 10/10 seeds | protected | not supported",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Both pages show the view.
	var md strings.Builder
	WriteMarkdown(&md, protectionSummary())
	if !strings.Contains(md.String(), "## What protected the resource") ||
		!strings.Contains(md.String(), "| memcache | failed: mutual-exclusion | [damage 10/10 seeds](index.html#cell-cut--memcache) | [protected](index.html#cell-cut-all--memcache) | not supported |") {
		t.Fatalf("README.md:\n%s", md.String())
	}
	var html strings.Builder
	if err := WriteHTML(&html, t.TempDir(), protectionSummary()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(html.String(), `<h2 id="protection">What protected the resource</h2>`) || !strings.Contains(html.String(), `<td class="error">not supported</td>`) {
		t.Fatal("index.html lacks the protection view")
	}
	// No family, no view.
	s := protectionSummary()
	for i := range s.Scenarios {
		s.Scenarios[i].Family = ""
	}
	if ps := Protections(s); len(ps) != 0 {
		t.Fatalf("protections without families: %+v", ps)
	}
}
