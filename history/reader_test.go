package history_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/locksim/locksim/history"
)

func readAll(s string) ([]history.Event, error) {
	return history.ReadAll(history.NewReader(strings.NewReader(s), "h.jsonl"))
}

// The example of DESIGN.md reads as written.
func TestReadDesignExample(t *testing.T) {
	events, err := readAll(`{"t": 1500000000, "proc": "c1", "type": "invoke", "f": "acquire", "key": "widgets"}
{"t": 1500200000, "proc": "c1", "type": "ok",     "f": "acquire", "key": "widgets", "token": 7}
{"t": 1600000000, "proc": "c1", "type": "invoke", "f": "write",   "key": "widgets", "token": 7, "value": 41}
{"t": 1600050000, "proc": "resource", "type": "info", "f": "accept", "key": "widgets", "token": 7, "value": 41}
{"t": 1600100000, "proc": "c1", "type": "ok",     "f": "write",   "key": "widgets", "token": 7, "value": 41}
{"t": 1900000000, "proc": "c1", "type": "invoke", "f": "release", "key": "widgets", "token": 7}
{"t": 1900300000, "proc": "c1", "type": "ok",     "f": "release", "key": "widgets", "token": 7}

{"t": 2500000000, "proc": "c2", "type": "info",   "f": "lost",    "key": "widgets", "token": 9}
{"t": 3000000000, "proc": "nemesis", "type": "info", "f": "pause", "value": {"target": "c1"}, "unknown": [1]}
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 9 {
		t.Fatalf("got %d events, want 9", len(events))
	}
	e := events[1]
	if e.T != 1500200000 || e.Proc != "c1" || e.Type != history.OK || e.F != "acquire" || e.Key != "widgets" || !e.HasToken || e.Token != 7 || e.Line != 2 {
		t.Fatalf("event 2 = %+v", e)
	}
	if events[0].HasToken {
		t.Fatal("event 1 has no token")
	}
	if got := string(events[8].Value); got != `{"target": "c1"}` {
		t.Fatalf("value = %s", got)
	}
	if events[7].Line != 9 {
		t.Fatalf("blank line not counted: line %d", events[7].Line)
	}
}

// Every kind of malformed input is an *Error naming file, line and field.
func TestReadErrors(t *testing.T) {
	const ok1 = `{"t":1,"proc":"c1","type":"invoke","f":"acquire","key":"k"}` + "\n"
	tests := []struct {
		name, input string
		line        int
		field       string
		msg         string
	}{
		{"bad JSON", ok1 + `{"t":2,"proc":"c1",` + "\n", 2, "", "bad JSON"},
		{"not an object", `[1,2]`, 1, "", "want a JSON object"},
		{"missing t", `{"proc":"c1","type":"invoke","f":"acquire"}`, 1, "t", "missing"},
		{"t not an integer", `{"t":"1","proc":"c1","type":"invoke","f":"acquire"}`, 1, "t", "want integer"},
		{"t a float", `{"t":1.5,"proc":"c1","type":"invoke","f":"acquire"}`, 1, "t", "want integer"},
		{"negative t", `{"t":-1,"proc":"c1","type":"invoke","f":"acquire"}`, 1, "t", "negative"},
		{"missing proc", `{"t":1,"type":"invoke","f":"acquire"}`, 1, "proc", "missing"},
		{"proc a number", `{"t":1,"proc":3,"type":"invoke","f":"acquire"}`, 1, "proc", "want string"},
		{"missing type", `{"t":1,"proc":"c1","f":"acquire"}`, 1, "type", "missing"},
		{"unknown type", `{"t":1,"proc":"c1","type":"done","f":"acquire"}`, 1, "type", "not one of"},
		{"missing f", `{"t":1,"proc":"c1","type":"invoke"}`, 1, "f", "missing"},
		{"token a string", `{"t":1,"proc":"c1","type":"invoke","f":"acquire","token":"7"}`, 1, "token", "want integer"},
		{"key a number", `{"t":1,"proc":"c1","type":"invoke","f":"acquire","key":1}`, 1, "key", "want string"},
		{"completion without invoke", `{"t":1,"proc":"c1","type":"ok","f":"acquire"}`, 1, "type", "no open invoke"},
		{"fail without invoke", `{"t":1,"proc":"c1","type":"fail","f":"write"}`, 1, "type", "no open invoke"},
		{"info of a client op without invoke", `{"t":1,"proc":"c1","type":"info","f":"acquire"}`, 1, "type", "no open invoke"},
		{"completion of another f", ok1 + `{"t":2,"proc":"c1","type":"ok","f":"release"}`, 2, "f", "does not match its open invoke"},
		{"second invoke while open", ok1 + `{"t":2,"proc":"c1","type":"invoke","f":"release"}`, 2, "type", "still open"},
		{"time going backwards", ok1 + `{"t":0,"proc":"c2","type":"invoke","f":"acquire"}`, 2, "t", "backwards"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readAll(tc.input)
			var he *history.Error
			if !errors.As(err, &he) {
				t.Fatalf("want *history.Error, got %v", err)
			}
			if he.File != "h.jsonl" || he.Line != tc.line || he.Field != tc.field || !strings.Contains(he.Msg, tc.msg) {
				t.Fatalf("got %+v (%v), want line %d field %q msg containing %q", he, err, tc.line, tc.field, tc.msg)
			}
			if !strings.HasPrefix(err.Error(), "h.jsonl:") {
				t.Fatalf("message does not start with the file: %v", err)
			}
		})
	}
}

// Notifications are lone infos; an info may also complete an invoke.
func TestReadNotifications(t *testing.T) {
	_, err := readAll(`{"t":1,"proc":"c1","type":"info","f":"lost","key":"k"}
{"t":2,"proc":"resource","type":"info","f":"accept","key":"k","token":1}
{"t":3,"proc":"c1","type":"invoke","f":"write"}
{"t":4,"proc":"c1","type":"info","f":"lost"}
{"t":5,"proc":"c1","type":"info","f":"write"}
{"t":6,"proc":"nemesis","type":"info","f":"heal"}`)
	if err != nil {
		t.Fatal(err)
	}
}

// What the writer writes, the reader reads back unchanged.
func TestWriterRoundTrip(t *testing.T) {
	in := []history.Event{
		{T: 1, Proc: "c1", Type: history.Invoke, F: "acquire", Key: "k \"quoted\" \n\t\x01 é"},
		{T: 2, Proc: "c1", Type: history.OK, F: "acquire", Key: "k \"quoted\" \n\t\x01 é", Token: -3, HasToken: true},
		{T: 2, Proc: "nemesis", Type: history.Info, F: "pause", Value: []byte(`{"target":"c1"}`)},
		{T: 9, Proc: "c1", Type: history.Invoke, F: "write", Key: "", Token: 0, HasToken: true, Value: []byte(`41`)},
	}
	var buf bytes.Buffer
	w := history.NewWriter(&buf)
	for i := range in {
		if err := w.Write(&in[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	out, err := history.ReadAll(history.NewReader(&buf, "buf"))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("read %d events, wrote %d", len(out), len(in))
	}
	for i := range in {
		in[i].Line = i + 1
		a, b := in[i], out[i]
		if a.T != b.T || a.Proc != b.Proc || a.Type != b.Type || a.F != b.F || a.Key != b.Key || a.Token != b.Token || a.HasToken != b.HasToken || string(a.Value) != string(b.Value) || a.Line != b.Line {
			t.Errorf("event %d: wrote %+v, read %+v", i, a, b)
		}
	}
}

// A line longer than the reader's buffer is read whole.
func TestReadLongLine(t *testing.T) {
	long := strings.Repeat("x", 1<<20)
	r := history.NewReader(strings.NewReader(`{"t":1,"proc":"c1","type":"info","f":"note","value":"`+long+`"}`+"\n"), "h")
	e, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Value) != len(long)+2 {
		t.Fatalf("value length %d", len(e.Value))
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("want EOF, got %v", err)
	}
}
