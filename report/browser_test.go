package report

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/locksim/locksim/checker"
)

// probePage loads index.html in a frame of the same origin and, once it is
// laid out, writes what it finds into <pre id="probe"> as JSON: the
// matrix's rows and their height, the timelines drawn with a size, their
// hold bars and highlighted overlaps, and the latency plots.
const probePage = `<!DOCTYPE html><html><body>
<iframe id="f" src="index.html" style="width:1200px;height:900px"></iframe>
<pre id="probe">pending</pre>
<script>
document.getElementById("f").addEventListener("load", function () {
  var d = this.contentDocument, out = {};
  var m = d.querySelector("table.matrix");
  out.matrixRows = m ? m.querySelectorAll("tbody tr").length : 0;
  out.matrixHeight = m ? m.getBoundingClientRect().height : 0;
  out.matrixLinks = m ? m.querySelectorAll("td a").length : 0;
  var tl = d.querySelectorAll("svg.timeline"), drawn = 0;
  for (var i = 0; i < tl.length; i++) {
    var r = tl[i].getBoundingClientRect();
    if (r.width > 100 && r.height > 50) drawn++;
  }
  out.timelines = drawn;
  var hold = d.querySelector("svg.timeline rect.hold");
  out.holdWidth = hold ? hold.getBoundingClientRect().width : 0;
  out.holds = d.querySelectorAll("svg.timeline rect.hold").length;
  out.overlaps = d.querySelectorAll("svg.timeline rect.overlap").length;
  out.latencyPlots = d.querySelectorAll("svg.latency").length;
  document.getElementById("probe").textContent = JSON.stringify(out);
});
</script></body></html>`

// chromium finds Debian's chromium; the test fails without it (make setup
// installs it), it never skips.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed: run make setup (apt-get install -y chromium)")
	return ""
}

// runChromium runs headless chromium with args and returns its stdout.
func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Chromium's helpers share its process group: end them all with it.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // helpers left behind, if any
	}
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.b)
	}
	return out
}

// limitedBuffer keeps the first 64 KB written to it.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 64<<10 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(len(p), room)]...)
	}
	return len(p), nil
}

// TestBrowserRendersReport renders the saved comparison under
// testdata/compare, serves it on loopback and opens it in headless
// Chromium: the matrix and the counterexample's timeline must be laid out
// with a size. A screenshot is saved in the test's artifact directory
// (go test -artifacts keeps it).
func TestBrowserRendersReport(t *testing.T) {
	bin := chromium(t)
	dir := copyDir(t, filepath.Join("testdata", "compare"))
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := Render(dir, s); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "probe.html"), []byte(probePage), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir))}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	base := "http://" + ln.Addr().String() + "/"

	dom := runChromium(t, bin, "--virtual-time-budget=10000", "--dump-dom", base+"probe.html")
	m := regexp.MustCompile(`<pre id="probe">([^<]*)</pre>`).FindSubmatch(dom)
	if m == nil {
		t.Fatalf("no probe result in the DOM:\n%.2000s", dom)
	}
	var got struct {
		MatrixRows, MatrixLinks, Timelines, Holds, Overlaps, LatencyPlots int
		MatrixHeight, HoldWidth                                           float64
	}
	if err := json.Unmarshal([]byte(htmlUnescape(string(m[1]))), &got); err != nil {
		t.Fatalf("probe %q: %v", m[1], err)
	}
	t.Logf("rendered: %+v", got)
	if got.MatrixRows != len(s.Scenarios) || got.MatrixLinks != len(s.Cells) || got.MatrixHeight < 20 {
		t.Errorf("matrix: %d rows, %d links, %.0f px high; want %d rows, %d links", got.MatrixRows, got.MatrixLinks, got.MatrixHeight, len(s.Scenarios), len(s.Cells))
	}
	if got.Timelines < 1 || got.Holds < 1 || got.HoldWidth <= 0 || got.Overlaps < 1 {
		t.Errorf("no timeline rendered: %+v", got)
	}
	if got.LatencyPlots != len(s.Cells) {
		t.Errorf("%d latency plots, want %d", got.LatencyPlots, len(s.Cells))
	}

	shot := filepath.Join(t.ArtifactDir(), "index.png")
	runChromium(t, bin, "--window-size=1200,2600", "--virtual-time-budget=5000", "--screenshot="+shot, base+"index.html")
	st, err := os.Stat(shot)
	if err != nil || st.Size() < 10_000 {
		t.Fatalf("screenshot %s: %v (size %d)", shot, err, sizeOf(st))
	}
	t.Logf("screenshot: %s", shot)
}

func sizeOf(st os.FileInfo) int64 {
	if st == nil {
		return 0
	}
	return st.Size()
}

var unescaper = regexp.MustCompile(`&(quot|amp|lt|gt|#34);`)

func htmlUnescape(s string) string {
	return unescaper.ReplaceAllStringFunc(s, func(e string) string {
		switch e {
		case "&quot;", "&#34;":
			return `"`
		case "&amp;":
			return "&"
		case "&lt;":
			return "<"
		}
		return ">"
	})
}

// matrixProbe loads ?page=NAME/index.html in a frame 1400 px wide (a
// window of that width, its scroll bar included) and writes into <pre
// id="probe">: how wide the page is against its viewport, the matrix
// box's width against its content's, and where the last column's header
// ends once the box is scrolled all the way right.
const matrixProbe = `<!DOCTYPE html><html><body style="margin:0">
<iframe id="f" style="width:1400px;height:900px;border:0"></iframe>
<pre id="probe">pending</pre>
<script>
var f = document.getElementById("f");
f.addEventListener("load", function () {
  var d = f.contentDocument, out = {};
  out.pageWidth = d.documentElement.scrollWidth;
  out.viewport = d.documentElement.clientWidth;
  var box = d.querySelector("div.matrix-box") || d.querySelector("table.matrix").parentElement;
  out.boxClient = box.clientWidth;
  out.boxScroll = box.scrollWidth;
  out.boxRight = box.getBoundingClientRect().right;
  out.overflowX = getComputedStyle(box).overflowX;
  var hs = d.querySelectorAll("table.matrix thead th");
  out.columns = hs.length;
  out.lastRightUnscrolled = hs[hs.length - 1].getBoundingClientRect().right;
  box.scrollLeft = box.scrollWidth;
  out.lastRight = hs[hs.length - 1].getBoundingClientRect().right;
  document.getElementById("probe").textContent = JSON.stringify(out);
});
f.src = location.search.slice("?page=".length) + "/index.html";
</script></body></html>`

// wideSummary is a simulator comparison of backends × scenarios in which
// every cell shows every kind, with the largest figures of a 500-seed
// sweep, and the longest liveness line: the widest matrix a comparison
// can make.
func wideSummary(backends []string, scenarios int) *Summary {
	s := &Summary{Mode: ModeSim, Seeds: 500, Backends: backends}
	all := checker.Kinds
	for i := range scenarios {
		name := fmt.Sprintf("holder-paused-past-lease-unfenced-%d", i)
		s.Scenarios = append(s.Scenarios, ScenarioInfo{Name: name, File: "scenarios/" + name + ".yaml"})
		for _, b := range backends {
			c := Cell{Scenario: name, Backend: b, Kinds: all, Seeds: 500, Violating: 500,
				Counts: map[checker.Kind]int{}, SeedsWithKind: map[checker.Kind]int{}}
			for _, k := range all {
				c.Counts[k], c.SeedsWithKind[k] = 12345, 500
			}
			c.Liveness = []KeyLiveness{{Key: "locksim-0", Runs: 500, HeldNs: 999, SpanNs: 1000, LowestHeldShare: 0.5, LowestSeed: 499,
				LongestIdleWaitNs: 3_599_999_000_000, IdleSeed: 500, From: 1, To: 3_600_000_000_000, Procs: []string{"c1", "c2", "c3"}, UntilEnd: true}}
			s.Cells = append(s.Cells, c)
		}
	}
	return s
}

// TestBrowserMatrixFits renders a five-backend and a thirty-backend
// comparison and opens each in headless Chromium, 1400 px wide: the page
// is never wider than the window; the five-backend matrix shows whole,
// its last column inside the window; the thirty-backend one, too wide for
// any window, scrolls inside its own box, which brings its last column
// into view. Screenshots of both are saved in the test's artifact
// directory.
func TestBrowserMatrixFits(t *testing.T) {
	bin := chromium(t)
	dir := t.TempDir()
	pages := map[string][]string{"five": {"etcd", "postgres", "postgres-advisory", "memcache", "consul"}}
	for i := range 30 {
		pages["thirty"] = append(pages["thirty"], fmt.Sprintf("backend-%02d", i+1))
	}
	for name, backends := range pages {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := Render(filepath.Join(dir, name), wideSummary(backends, 4)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "probe.html"), []byte(matrixProbe), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir))}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	base := "http://" + ln.Addr().String() + "/"

	type probe struct {
		PageWidth, Viewport, BoxClient, BoxScroll, BoxRight, LastRightUnscrolled, LastRight float64
		Columns                                                                             int
		OverflowX                                                                           string
	}
	measure := func(page string) probe {
		dom := runChromium(t, bin, "--virtual-time-budget=10000", "--dump-dom", base+"probe.html?page="+page)
		m := regexp.MustCompile(`<pre id="probe">([^<]*)</pre>`).FindSubmatch(dom)
		if m == nil {
			t.Fatalf("%s: no probe result in the DOM:\n%.2000s", page, dom)
		}
		var p probe
		if err := json.Unmarshal([]byte(htmlUnescape(string(m[1]))), &p); err != nil {
			t.Fatalf("%s: probe %q: %v", page, m[1], err)
		}
		t.Logf("%s: %+v", page, p)
		return p
	}
	got := map[string]probe{}
	for name, backends := range pages {
		p := measure(name)
		got[name] = p
		if p.Columns != len(backends)+1 || p.Viewport < 1300 || p.Viewport > 1400 {
			t.Fatalf("%s: %d columns in a %.0f px viewport: the probe did not measure the page", name, p.Columns, p.Viewport)
		}
		if p.PageWidth > p.Viewport {
			t.Errorf("%s: the page is %.0f px wide in a %.0f px window: it scrolls sideways", name, p.PageWidth, p.Viewport)
		}
		if p.BoxRight > p.Viewport {
			t.Errorf("%s: the matrix box ends at %.0f px, past the window's %.0f", name, p.BoxRight, p.Viewport)
		}
		if p.LastRight > p.BoxRight+1 {
			t.Errorf("%s: the last column ends at %.0f px, past its box (%.0f) even scrolled: it is cut", name, p.LastRight, p.BoxRight)
		}
	}
	if p := got["five"]; p.BoxScroll > p.BoxClient || p.LastRightUnscrolled > p.Viewport {
		t.Errorf("five backends: the matrix (%.0f px) does not fit its box (%.0f px) in a 1400 px window", p.BoxScroll, p.BoxClient)
	}
	if p := got["thirty"]; p.BoxScroll <= p.BoxClient || (p.OverflowX != "auto" && p.OverflowX != "scroll") {
		t.Errorf("thirty backends: want the matrix to scroll inside its box, got content %.0f px in a %.0f px box, overflow-x %s", p.BoxScroll, p.BoxClient, p.OverflowX)
	}

	for name := range pages {
		shot := filepath.Join(t.ArtifactDir(), "matrix-1400-"+name+".png")
		runChromium(t, bin, "--window-size=1400,1000", "--virtual-time-budget=5000", "--screenshot="+shot, base+name+"/index.html")
		if st, err := os.Stat(shot); err != nil || st.Size() < 10_000 {
			t.Fatalf("screenshot %s: %v (size %d)", shot, err, sizeOf(st))
		}
		t.Logf("screenshot: %s", shot)
	}
}
