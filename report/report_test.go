package report

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/locksim/locksim/checker"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (go test -update rewrites it); got:\n%s", path, got)
	}
}

// handSummary is a comparison with every kind of cell: safe, violating
// with figures, an error, notes, a linearizability failure.
func handSummary(mode string) *Summary {
	s := &Summary{
		Mode:     mode,
		Backends: []string{"etcd", "postgres", "memcache"},
		Scenarios: []ScenarioInfo{
			{Name: "control", File: "scenarios/control.yaml", Description: "no faults"},
			{Name: "holder-paused-past-lease", File: "scenarios/holder-paused-past-lease.yaml"},
		},
	}
	if mode == ModeSim {
		s.Seeds = 100
		s.Skipped = []Skip{{Scenario: "memcache-list", Backend: "memcache", Reason: "sim: the list workload is not simulated"}}
	} else {
		s.Seed = 1
	}
	v := checker.Violation{Kind: checker.MutualExclusion, Key: "locksim-0", Procs: []string{"c1", "c2"}, Tokens: []int64{7, 9},
		From: 5_000_000_000, To: 5_300_000_000, Lines: []int{12, 40, 44}, Detail: "c1 (acquired at line 12, token 7) and c2 (acquired at line 40, token 9) both held \"locksim-0\" for 300ms"}
	s.Cells = []Cell{
		{Scenario: "control", Backend: "etcd", Kinds: []checker.Kind{}, Seeds: 100,
			Shown: &Run{Seed: 1, Dir: "runs/control/etcd", Replay: "locksim sim scenarios/control.yaml --backend etcd --seed 1", Violations: []checker.Violation{}}},
		{Scenario: "control", Backend: "postgres", Kinds: []checker.Kind{}, Seeds: 100, Notes: []string{"server clock skew not applied"}},
		{Scenario: "control", Backend: "memcache", Kinds: []checker.Kind{}, Error: "start memcache: no such file"},
		{Scenario: "holder-paused-past-lease", Backend: "etcd", Kinds: []checker.Kind{checker.MutualExclusion, checker.Damage},
			Counts: map[checker.Kind]int{checker.MutualExclusion: 120, checker.Damage: 3}, SeedsWithKind: map[checker.Kind]int{checker.MutualExclusion: 100, checker.Damage: 3},
			Seeds: 100, Violating: 100,
			Shown: &Run{Seed: 1, Dir: "runs/holder-paused-past-lease/etcd", Replay: "locksim sim scenarios/holder-paused-past-lease.yaml --backend etcd --seed 1",
				TTL: 2_000_000_000, Violations: []checker.Violation{v},
				Linearizability: []checker.LinResult{{Key: "locksim-0", Model: "lock", Result: checker.LinIllegal, Ops: 40, HTML: "runs/holder-paused-past-lease/etcd/linearizability/lock.html"}}}},
	}
	// Liveness on the drawn cells: a quick hand-over, and a wait through a
	// lease on the paused holder's key.
	s.Cells[0].Liveness = []KeyLiveness{{Key: "locksim-0", Runs: 100, HeldNs: 870_000_000_000, SpanNs: 1_000_000_000_000,
		LowestHeldShare: 0.81, LowestSeed: 17, LongestIdleWaitNs: 6_000_000, IdleSeed: 4, From: 8_339_000_000, To: 8_345_000_000, Procs: []string{"c2"}}}
	s.Cells[3].Liveness = []KeyLiveness{{Key: "locksim-0", Runs: 100, HeldNs: 620_000_000_000, SpanNs: 1_000_000_000_000,
		LowestHeldShare: 0.55, LowestSeed: 3, LongestIdleWaitNs: 15_200_000_000, IdleSeed: 9, From: 3_000_000_000, To: 18_200_000_000, Procs: []string{"c2", "c3"}, UntilEnd: true}}
	if mode == ModeReal {
		for i := range s.Cells {
			s.Cells[i].SeedsWithKind = nil
			s.Cells[i].Seeds = 1
			for j := range s.Cells[i].Liveness {
				l := &s.Cells[i].Liveness[j]
				l.Runs, l.HeldNs, l.SpanNs, l.LowestHeldShare, l.LowestSeed, l.IdleSeed = 1, l.HeldNs/100, l.SpanNs/100, float64(l.HeldNs)/float64(l.SpanNs), 1, 1
			}
			if len(s.Cells[i].Kinds) > 0 {
				s.Cells[i].Violating = 1
			}
		}
	}
	return s
}

func TestMarkdownGolden(t *testing.T) {
	for _, mode := range []string{ModeSim, ModeReal} {
		var b strings.Builder
		WriteMarkdown(&b, handSummary(mode))
		golden(t, "README-"+mode+".md.golden", []byte(b.String()))
	}
}

func TestJSONGolden(t *testing.T) {
	for _, mode := range []string{ModeSim, ModeReal} {
		js, err := WriteJSON(handSummary(mode))
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "summary-"+mode+".json.golden", js)
	}
}

// copyDir copies the fixture comparison into a temporary directory.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestRenderSaved renders the saved comparison under testdata/compare
// (made by locksim compare --sim) and checks what the pages hold.
func TestRenderSaved(t *testing.T) {
	dir := copyDir(t, filepath.Join("testdata", "compare"))
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := Render(dir, s); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, MarkdownFile))
	golden(t, "compare-README.md.golden", md)
	page, _ := os.ReadFile(filepath.Join(dir, HTMLFile))
	html := string(page)
	for _, want := range []string{
		`<table class="matrix">`,
		`id="cell-holder-paused-past-lease-unfenced--etcd"`,
		`<svg class="timeline"`,
		`<rect class="overlap"`,
		`<rect class="hold-expired"`,
		`<rect class="fault"`,
		`<svg class="latency"`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("index.html has no %s", want)
		}
	}
	for _, bad := range []string{"<script src", "<link ", "http://", "https://"} {
		if strings.Contains(strings.ReplaceAll(html, `xmlns="http://www.w3.org/2000/svg"`, ""), bad) {
			t.Errorf("index.html fetches something at view time: %s", bad)
		}
	}
	// Rendering again gives the same bytes.
	if err := Render(dir, s); err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(filepath.Join(dir, HTMLFile))
	if !bytes.Equal(page, again) {
		t.Error("index.html differs between two renderings")
	}
}

// TestPorcupineEmbedded: where linearizability fails, porcupine's page is
// embedded in index.html.
func TestPorcupineEmbedded(t *testing.T) {
	dir := t.TempDir()
	s := handSummary(ModeSim)
	run := filepath.Join(dir, "runs", "holder-paused-past-lease", "etcd")
	if err := os.MkdirAll(filepath.Join(run, "linearizability"), 0o755); err != nil {
		t.Fatal(err)
	}
	hist := `{"t":1000,"proc":"c1","type":"invoke","f":"acquire","key":"locksim-0"}
{"t":2000,"proc":"c1","type":"ok","f":"acquire","key":"locksim-0","token":7}
{"t":3000,"proc":"c2","type":"invoke","f":"acquire","key":"locksim-0"}
{"t":4000,"proc":"c2","type":"ok","f":"acquire","key":"locksim-0","token":9}
`
	if err := os.WriteFile(filepath.Join(run, HistoryFile), []byte(hist), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(run, "linearizability", "lock.html"), []byte(`<html><body>porcupine & "co"</body></html>`), 0o644); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteHTML(&b, dir, s); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `srcdoc="&lt;html&gt;&lt;body&gt;porcupine &amp; &#34;co&#34;&lt;/body&gt;&lt;/html&gt;"`) {
		t.Errorf("porcupine's page is not embedded:\n%s", b.String())
	}
}

func TestLoadRejectsBadMode(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, SummaryFile), []byte(`{"mode":"x"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), `field "mode"`) {
		t.Errorf("Load: %v, want an error naming the field", err)
	}
}
