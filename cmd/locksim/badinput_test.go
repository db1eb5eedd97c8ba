package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every command rejects malformed input — histories, run directories,
// scenario files, flags — with exit status 2 and exactly one line on
// stderr that names what is wrong (file, line and field where there are
// some), never a panic or a stack trace.
func TestBadInputOneLine(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	inv := `{"t":1,"proc":"c1","type":"invoke","f":"acquire","key":"k"}` + "\n"
	notJSON := write("notjson.jsonl", inv+"{\"t\":2,\n")
	noProc := write("noproc.jsonl", `{"t":1,"type":"invoke","f":"acquire"}`+"\n")
	badType := write("badtype.jsonl", `{"t":1,"proc":"c1","type":"maybe","f":"acquire"}`+"\n")
	backwards := write("backwards.jsonl", `{"t":5,"proc":"c1","type":"invoke","f":"acquire"}`+"\n"+`{"t":4,"proc":"c1","type":"ok","f":"acquire"}`+"\n")
	orphan := write("orphan.jsonl", `{"t":1,"proc":"c1","type":"ok","f":"release","key":"k"}`+"\n")
	tFloat := write("tfloat.jsonl", `{"t":1.5,"proc":"c1","type":"invoke","f":"acquire"}`+"\n")
	binary := write("binary.jsonl", "\x00\xff\xfe garbage\n")
	array := write("array.jsonl", "[1,2,3]\n")
	huge := write("huge.jsonl", `{"t":1,"proc":"`+strings.Repeat("x", 1<<20)+`","type":"invoke","f":"acquire","token":"x"}`+"\n")
	// A run directory whose proc file is broken in the middle (not a torn
	// last line, which a crash leaves and check tolerates).
	write("rundir/procs/c1.jsonl", inv+"{oops\n"+`{"t":3,"proc":"c1","type":"ok","f":"acquire","key":"k","token":1}`+"\n")
	runDir := filepath.Join(dir, "rundir")
	notRunDir := filepath.Join(dir, "empty")
	if err := os.Mkdir(notRunDir, 0o755); err != nil {
		t.Fatal(err)
	}

	scen := func(name, body string) string {
		return write(name, "name: x\nbackends: [etcd]\nclients: 2\nduration: 1s\n"+body)
	}
	yamlSyntax := write("syntax.yaml", "name: x\nbackends: [etcd\n")
	clientsStr := write("clients.yaml", "name: x\nbackends: [etcd]\nclients: two\nduration: 1s\n")
	badFault := scen("fault.yaml", "faults:\n  - at: 1s\n    fault: meteor\n    target: holder\n")
	badDur := scen("dur.yaml", "lock:\n  ttl: soon\n")
	unknownField := scen("unknown.yaml", "colour: blue\n")
	badBackend := write("backend.yaml", "name: x\nbackends: [zookeeper]\nclients: 2\nduration: 1s\n")
	emptyScen := write("emptyscen.yaml", "")
	good := scenarios + "control.yaml"
	badBase := write("base.json", `{"sim": {"seeds": "many"}}`)
	notJSONBase := write("notjson.json", "{\"sim\": \n")
	cmpOut := filepath.Join(dir, "cmp")

	tests := []badInput{
		// check: histories
		{[]string{"check", notJSON}, []string{"notjson.jsonl:2"}},
		{[]string{"check", noProc}, []string{"noproc.jsonl:1", `"proc"`}},
		{[]string{"check", badType}, []string{"badtype.jsonl:1", `"type"`}},
		{[]string{"check", backwards}, []string{"backwards.jsonl:2", `"t"`}},
		{[]string{"check", orphan}, []string{"orphan.jsonl:1"}},
		{[]string{"check", tFloat}, []string{"tfloat.jsonl:1", `"t"`}},
		{[]string{"check", binary}, []string{"binary.jsonl:1"}},
		{[]string{"check", array}, []string{"array.jsonl:1"}},
		{[]string{"check", huge}, []string{"huge.jsonl:1"}},
		{[]string{"check", runDir}, []string{"c1.jsonl:2"}},
		{[]string{"check", notRunDir}, []string{"empty", "procs"}},
		{[]string{"check", filepath.Join(dir, "missing.jsonl")}, []string{"missing.jsonl"}},
		// check: flags
		{[]string{"check"}, nil},
		{[]string{"check", "--nope", histories + "clean.jsonl"}, []string{"-nope"}},
		{[]string{"check", "--lin-timeout", "soon", histories + "clean.jsonl"}, []string{"-lin-timeout"}},
		{[]string{"check", "--json=maybe", histories + "clean.jsonl"}, []string{"-json"}},
		// run: scenario files and flags, all rejected before anything starts
		{[]string{"run"}, nil},
		{[]string{"run", yamlSyntax}, []string{"syntax.yaml:"}},
		{[]string{"run", clientsStr}, []string{"clients.yaml:3", `"clients"`}},
		{[]string{"run", badFault}, []string{"fault.yaml:7", `"faults[0].fault"`}},
		{[]string{"run", badDur}, []string{"dur.yaml:6", `"lock.ttl"`}},
		{[]string{"run", unknownField}, []string{"unknown.yaml:5", `"colour"`}},
		{[]string{"run", badBackend}, []string{"backend.yaml:2", `"backends`}},
		{[]string{"run", emptyScen}, []string{"emptyscen.yaml"}},
		{[]string{"run", filepath.Join(dir, "missing.yaml")}, []string{"missing.yaml"}},
		{[]string{"run", "--backend", "zookeeper", good}, []string{"control.yaml", `"backends"`, "zookeeper"}},
		{[]string{"run", "--seed", "abc", good}, []string{"-seed"}},
		{[]string{"run", "--seed", "-1", good}, []string{"-seed"}},
		{[]string{"run", "--nope", good}, []string{"-nope"}},
		// A good file then a bad one: nothing starts.
		{[]string{"run", "--out", filepath.Join(dir, "runs"), good, badFault}, []string{"fault.yaml:7"}},
		// sim
		{[]string{"sim", yamlSyntax}, []string{"syntax.yaml:"}},
		{[]string{"sim", badFault}, []string{"fault.yaml:7"}},
		{[]string{"sim", good, "--parallel", "0"}, []string{"--parallel"}},
		{[]string{"sim", good, "--seeds", "many"}, []string{"-seeds"}},
		{[]string{"sim", good, "--seeds", "0"}, []string{"--seeds"}},
		{[]string{"sim", good, good}, nil},
		// compare: flags, scenario files, baseline files
		{[]string{"compare", "--nope"}, []string{"-nope"}},
		{[]string{"compare", "--sim", "--real"}, []string{"exclude"}},
		{[]string{"compare", "--out", cmpOut, "--scenarios", badFault}, []string{"fault.yaml:7", `"faults[0].fault"`}},
		{[]string{"compare", "--out", cmpOut, "--scenarios", filepath.Join(dir, "nowhere")}, []string{"nowhere"}},
		{[]string{"compare", "--out", cmpOut, "--scenarios", good, "--check-baseline", "--baseline", badBase}, []string{"base.json", "sim.seeds"}},
		{[]string{"compare", "--out", cmpOut, "--scenarios", good, "--check-baseline", "--baseline", notJSONBase}, []string{"notjson.json"}},
		{[]string{"compare", "--out", cmpOut, "--scenarios", good, "--check-baseline", "--baseline", filepath.Join(dir, "nobase.json")}, []string{"nobase.json"}},
		{[]string{"gen-history", "--nope"}, []string{"-nope"}},
		// no command, unknown command: the usage
		{nil, nil},
		{[]string{"nope"}, nil},
	}
	checkBadInputs(t, tests)
	if _, err := os.Stat(filepath.Join(dir, "runs")); err == nil {
		t.Errorf("a run started although a later scenario file was bad")
	}
}

// short abbreviates arguments for messages (a temp dir path is long).
func short(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = filepath.Base(a)
		if len(out[i]) > 40 {
			out[i] = out[i][:40] + "…"
		}
	}
	return strings.Join(out, " ")
}

// A run killed mid-way leaves its per-proc histories, the last line of one
// perhaps torn mid-write: check takes the run directory, merges them and
// judges everything before the crash.
func TestCheckRunDirTornLine(t *testing.T) {
	dir := t.TempDir()
	procs := filepath.Join(dir, "procs")
	if err := os.Mkdir(procs, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"c1.jsonl": `{"t":1,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":3,"proc":"c1","type":"ok","f":"acquire","key":"k","token":1}
{"t":6,"proc":"c1","type":"invoke","f":"release","key":"k","token":1}
{"t":7,"proc":"c1","type":"ok","f":"rel`,
		"c2.jsonl": `{"t":2,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":8,"proc":"c2","type":"ok","f":"acquire","key":"k","token":2}
`,
		"resource.jsonl": "",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(procs, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, stdout, stderr := runCLI("check", "--json", dir)
	if code != exitOK || !strings.HasPrefix(stdout, `{"ok":true,"events":5,`) {
		t.Fatalf("exit %d, stdout %s, stderr %s", code, stdout, stderr)
	}
	// c2 granted while c1 still held it: found across the two files.
	os.WriteFile(filepath.Join(procs, "c2.jsonl"), []byte(`{"t":2,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":4,"proc":"c2","type":"ok","f":"acquire","key":"k","token":2}
`), 0o644)
	code, stdout, _ = runCLI("check", dir)
	if code != exitViolations || !strings.Contains(stdout, "mutual-exclusion") {
		t.Fatalf("exit %d, stdout %s", code, stdout)
	}
}

// badInput is a command line that must fail as bad input.
type badInput struct {
	args []string
	want []string // each in the one line of stderr; nil: the usage text
}

// checkBadInputs runs each command line: exit 2, no stack trace, and one
// line on stderr holding every wanted string (or the usage text).
func checkBadInputs(t *testing.T, tests []badInput) {
	t.Helper()
	for _, tc := range tests {
		code, stdout, stderr := runCLI(tc.args...)
		if code != exitUsage {
			t.Errorf("locksim %s: exit %d, want %d (stderr %q)", short(tc.args), code, exitUsage, stderr)
		}
		if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
			t.Errorf("locksim %s: stack trace on stderr: %s", short(tc.args), stderr)
		}
		if tc.want == nil {
			continue // usage text
		}
		if strings.Count(strings.TrimSpace(stderr), "\n") != 0 || stdout != "" {
			t.Errorf("locksim %s: want one line on stderr and nothing on stdout, got stderr %q stdout %q", short(tc.args), stderr, stdout)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("locksim %s: stderr %q lacks %q", short(tc.args), stderr, w)
			}
		}
	}
}
