package report

import (
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/locksim/locksim/checker"
	"github.com/locksim/locksim/history"
)

// maxTimelines bounds the counterexamples drawn per cell: the first
// violation of each kind, up to this many.
const maxTimelines = 3

// maxEmbed is the largest porcupine visualization embedded in the page;
// a larger one is linked.
const maxEmbed = 2 << 20

// WriteHTML writes index.html: one self-contained page (styles inline,
// pictures as inline SVG, nothing fetched when it is viewed) with the
// matrix, and per cell its verdict, the timeline of each counterexample,
// porcupine's visualization where linearizability failed, and acquire
// latency over time. Histories are read from dir.
func WriteHTML(w io.Writer, dir string, s *Summary) error {
	page := htmlPage{S: s, Meaning: map[string]string{}}
	for _, k := range checker.Kinds {
		page.Kinds = append(page.Kinds, string(k))
		page.Meaning[string(k)] = kindMeaning[k]
	}
	for _, sc := range s.Scenarios {
		row := htmlRow{Scenario: sc}
		for _, be := range s.Backends {
			c := s.Cell(sc.Name, be)
			if c == nil {
				row.Cells = append(row.Cells, htmlMatrixCell{})
				continue
			}
			class := "safe"
			if c.Error != "" {
				class = "error"
			} else if len(c.Kinds) > 0 {
				class = "bad"
			}
			row.Cells = append(row.Cells, htmlMatrixCell{Ran: true, Lines: strings.Split(cellText(s, c), ", "), Live: livenessText(s, c), Anchor: c.Anchor(), Class: class})
			if len(c.Liveness) > 0 {
				page.LivenessIntro = strings.ReplaceAll(livenessIntro, "`", "")
			}
		}
		page.Rows = append(page.Rows, row)
	}
	page.Protections = Protections(s)
	page.ProtectionIntro = strings.ReplaceAll(protectionIntro, "`", "")
	for i := range s.Cells {
		hc, err := htmlCellOf(dir, s, &s.Cells[i])
		if err != nil {
			return err
		}
		page.Cells = append(page.Cells, hc)
	}
	return pageTemplate.Execute(w, page)
}

type htmlPage struct {
	S               *Summary
	Kinds           []string
	Meaning         map[string]string
	Rows            []htmlRow
	Protections     []Protection
	ProtectionIntro string
	LivenessIntro   string // "" if no cell has liveness figures
	Cells           []htmlCell
}

type htmlRow struct {
	Scenario ScenarioInfo
	Cells    []htmlMatrixCell
}

type htmlMatrixCell struct {
	Ran           bool
	Lines         []string // the verdict, one kind a line
	Live          string   // the liveness figures, "" if none
	Anchor, Class string
}

type htmlCell struct {
	C               *Cell
	Verdict, Class  string
	Counterexamples []htmlCounterexample
	Porcupine       []htmlPorcupine
	Latency         template.HTML
	Missing         string
	Liveness        []string // one line per key
}

type htmlCounterexample struct {
	V   checker.Violation
	SVG template.HTML
}

type htmlPorcupine struct {
	L      checker.LinResult
	Srcdoc string // the page, embedded; "" if too large or missing
	Link   string
}

func htmlCellOf(dir string, s *Summary, c *Cell) (htmlCell, error) {
	hc := htmlCell{C: c, Verdict: cellText(s, c), Class: "safe"}
	for i := range c.Liveness {
		hc.Liveness = append(hc.Liveness, keyLivenessText(s, &c.Liveness[i]))
	}
	if c.Error != "" {
		hc.Class = "error"
	} else if len(c.Kinds) > 0 {
		hc.Class = "bad"
	}
	if c.Shown == nil {
		return hc, nil
	}
	events, err := readHistory(filepath.Join(dir, c.Shown.Dir, HistoryFile))
	if err != nil {
		return hc, err
	}
	if events == nil {
		hc.Missing = filepath.Join(c.Shown.Dir, HistoryFile)
		return hc, nil
	}
	seen := map[checker.Kind]bool{}
	for _, v := range c.Shown.Violations {
		if seen[v.Kind] || len(hc.Counterexamples) == maxTimelines {
			continue
		}
		seen[v.Kind] = true
		hc.Counterexamples = append(hc.Counterexamples, htmlCounterexample{V: v, SVG: template.HTML(counterexampleSVG(events, v, c.Shown.TTL))})
	}
	for _, l := range c.Shown.Linearizability {
		if l.Result == checker.LinOK {
			continue
		}
		p := htmlPorcupine{L: l}
		if l.HTML != "" {
			p.Link = filepath.ToSlash(l.HTML)
			if data, err := os.ReadFile(filepath.Join(dir, l.HTML)); err == nil && len(data) <= maxEmbed {
				p.Srcdoc = string(data)
			}
		}
		hc.Porcupine = append(hc.Porcupine, p)
	}
	lp := &LatencyPlot{Points: Latencies(events), Faults: Faults(events)}
	if n := len(events); n > 0 {
		lp.End = events[n-1].T
	}
	hc.Latency = template.HTML(lp.SVG())
	return hc, nil
}

// counterexampleSVG draws v's key over the whole history with v's window
// highlighted.
func counterexampleSVG(events []history.Event, v checker.Violation, ttl int64) string {
	tl := BuildTimeline(events, v.Key, ttl)
	tl.Highlight = &v
	return tl.SVG(DefaultFrame(tl.Start, tl.End))
}

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"ns": func(ns int64) string { return fmtNs(ns) },
	"ints": func(xs any) string {
		return fmt.Sprint(xs)
	},
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>locksim safety report</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
div.matrix-box { max-width: 100%; overflow-x: auto; }
table.matrix { border-collapse: collapse; }
table.matrix th, table.matrix td { border: 1px solid #bbb; padding: 4px 8px; text-align: left; vertical-align: top; }
table.matrix tbody th { position: sticky; left: 0; background: #fff; }
table.matrix td.safe, section.safe h3 { background: #e3f4e1; }
table.matrix td.bad, section.bad h3 { background: #fbe0dc; }
table.matrix td.error, section.error h3 { background: #eee; }
table.matrix a { color: inherit; }
table.matrix span.live { display: inline-block; color: #666; font-size: 12px; }
p.live, ul.live, p.live-intro { color: #555; font-size: 13px; }
section.cell { margin: 2em 0; border-top: 1px solid #ccc; }
section.cell h3 { padding: 4px 8px; }
code { background: #f3f3f3; padding: 1px 3px; }
svg { display: block; margin: 6px 0; background: #fff; border: 1px solid #ddd; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
.hold { fill: #4a7fc1; }
.hold-expired { fill: #4a7fc1; fill-opacity: 0.35; stroke: #4a7fc1; stroke-dasharray: 3 2; }
.expiry { stroke: #c47f00; stroke-width: 2; }
text.token { fill: #fff; font-size: 10px; }
.fault { fill: #f2c200; fill-opacity: 0.22; }
.fault-instant { stroke: #c49a00; stroke-width: 2; }
text.fault-label { fill: #8a6d00; font-size: 10px; }
.overlap { fill: #e0301e; fill-opacity: 0.35; stroke: #b00; stroke-width: 1.5; }
.accept { stroke: #2a9d3a; stroke-width: 1.5; }
.reject { stroke: #d00; stroke-width: 2.5; }
.axis, .tick { stroke: #555; }
.grid { stroke: #ddd; }
.pt-ok { fill: #2a6fb8; }
.pt-fail { fill: #d00; }
.pt-info { fill: #f08c00; }
iframe { width: 100%; height: 480px; border: 1px solid #ccc; }
.legend span { display: inline-block; margin-right: 1.2em; }
.legend i { display: inline-block; width: 14px; height: 10px; margin-right: 4px; vertical-align: middle; }
</style>
</head>
<body>
<h1>locksim safety report</h1>
{{if eq .S.Mode "sim"}}<p>Simulator, seeds 1..{{.S.Seeds}} per cell: a kind is listed if any seed showed it, with the seeds that showed it and the violations counted over all seeds. Each violating cell draws its first violating seed.</p>
{{else}}<p>Real servers, one run per cell with seed {{.S.Seed}}.</p>
{{end}}
<div class="matrix-box">
<table class="matrix">
<thead><tr><th>scenario</th>{{range .S.Backends}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>
{{range .Rows}}<tr><th title="{{.Scenario.Description}}">{{.Scenario.Name}}</th>{{range .Cells}}{{if .Ran}}<td class="{{.Class}}"><a href="#{{.Anchor}}">{{range $i, $l := .Lines}}{{if $i}},<br>{{end}}{{$l}}{{end}}{{if .Live}}<br><span class="live">{{.Live}}</span>{{end}}</a></td>{{else}}<td></td>{{end}}{{end}}</tr>
{{end}}</tbody>
</table>
</div>
{{if .LivenessIntro}}<p class="live-intro">The grey line of a cell is its liveness. {{.LivenessIntro}}</p>
{{end}}{{if .Protections}}<h2 id="protection">What protected the resource</h2>
<p>{{.ProtectionIntro}}</p>
{{range .Protections}}<h3>{{.Family}}</h3>
<div class="matrix-box">
<table class="matrix">
<thead><tr><th>backend</th><th>the lock</th>{{range .Modes}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>
{{range .Rows}}<tr><th>{{.Backend}}</th><td>{{.Lock}}</td>{{range .Cells}}<td class="{{.Class}}">{{if .Cell}}<a href="#{{.Cell.Anchor}}">{{.Text}}</a>{{else}}{{.Text}}{{end}}</td>{{end}}</tr>
{{end}}</tbody>
</table>
</div>
{{end}}{{end}}{{range .S.Skipped}}<p class="skipped">Not run: {{.Scenario}} on {{.Backend}}: {{.Reason}}</p>
{{end}}<h2>Reading a timeline</h2>
<p class="legend"><span><i style="background:#4a7fc1"></i>a hold: from the acquire's ok to the release's invoke, the lost notice or the end; the number is its fencing token</span>
<span><i style="background:#4a7fc1;opacity:.35"></i>still believed held after the lease ran out, unless renewed (the orange mark: the acquire's or last recorded renewal's ok + the scenario's TTL; locks.Run's renewals are not recorded, so a pale bar means no renewal could have happened only where a fault stopped the holder)</span>
<span><i style="background:#f2c200;opacity:.4"></i>a fault (nemesis), labelled with its target</span>
<span><i style="background:#e0301e;opacity:.5"></i>the violation's window</span>
<span><i style="background:#2a9d3a"></i>/<i style="background:#d00"></i> a write the resource accepted / rejected</span></p>
<ul>{{range .Kinds}}<li><code>{{.}}</code>: {{index $.Meaning .}}</li>{{end}}</ul>
{{range .Cells}}
<section class="cell {{.Class}}" id="{{.C.Anchor}}">
<h3>{{.C.Scenario}} on {{.C.Backend}}: {{.Verdict}}</h3>
{{if .C.Error}}<p>Could not run: {{.C.Error}}</p>{{end}}
{{if eq $.S.Mode "sim"}}<p>{{.C.Violating}} of {{.C.Seeds}} seeds violated.{{if .C.Shown}} Drawn: seed {{.C.Shown.Seed}}.{{end}}</p>{{else if gt .C.Seeds 1}}<p>{{.C.Violating}} of {{.C.Seeds}} runs violated.{{if .C.Shown}} Drawn: the run of seed {{.C.Shown.Seed}}.{{end}}</p>{{end}}
{{with .C.Shown}}<p>Replay: <code>{{.Replay}}</code></p>{{end}}
{{range .C.Notes}}<p>Note: {{.}}</p>{{end}}
{{if .Liveness}}<p class="live">Liveness (not part of the verdict):</p>
<ul class="live">{{range .Liveness}}<li>{{.}}</li>{{end}}</ul>
{{end}}{{if .Missing}}<p>No history at {{.Missing}}: nothing to draw.</p>{{end}}
{{range .Counterexamples}}<div class="counterexample">
<h4><code>{{.V.Kind}}</code> on key {{.V.Key}}: procs {{ints .V.Procs}}, tokens {{ints .V.Tokens}}, {{ns .V.From}}..{{ns .V.To}}</h4>
<p>{{.V.Detail}}</p>
{{.SVG}}
</div>{{end}}
{{range .Porcupine}}<div class="porcupine">
<h4>Linearizability of key {{.L.Key}}, model {{.L.Model}}: {{.L.Result}} ({{.L.Ops}} ops)</h4>
{{if .Srcdoc}}<iframe title="porcupine visualization" srcdoc="{{.Srcdoc}}" sandbox="allow-scripts"></iframe>{{else if .Link}}<p><a href="{{.Link}}">porcupine's visualization</a></p>{{end}}
</div>{{end}}
{{if .Latency}}<h4>Acquire latency over time (faults shaded; blue ok, red fail, orange unknown)</h4>
{{.Latency}}{{end}}
</section>
{{end}}
</body>
</html>
`))
