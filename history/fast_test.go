package history

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzFastPath: whatever line the fast decoder accepts, encoding/json
// accepts too and decodes to the same fields; what it refuses goes to
// encoding/json, so errors are encoding/json's.
func FuzzFastPath(f *testing.F) {
	for _, s := range []string{
		`{"t":1500000000,"proc":"c1","type":"invoke","f":"acquire","key":"widgets"}`,
		`{"t":1500200000,"proc":"c1","type":"ok","f":"acquire","key":"widgets","token":7}`,
		`{"t":3,"proc":"c1","type":"ok","f":"read","key":"k","value":12}`,
		`{"t":3,"proc":"c1","type":"invoke","f":"insert","key":"k","value":"x1"}`,
		`{"t":3,"proc":"c1","type":"ok","f":"read","key":"k","value":null}`,
		`{"t":3,"proc":"c1","type":"ok","f":"read","key":"k","value":[1,2]}`,
		`{"t":-0,"proc":"c1","type":"done","f":"x","token":-12}`,
		`{"t":01,"proc":"c1"}`,
		`{"t":1.5,"proc":"c1"}`,
		`{"t":1e3,"proc":"c1"}`,
		`{"T":1,"proc":"c1","t":2}`,
		`{"t":1,"t":2}`,
		`{"t":1,"proc":"c\u0031"}`,
		`{"t":1,"proc":"é"}`,
		`{"t":1,}`,
		`{"t":1}x`,
		`{}`,
		`{"t":123456789012345678,"token":1234567890123456789}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		r := NewReader(bytes.NewReader(nil), "fuzz")
		fw := wire{T: missingT}
		if !r.fast(line, &fw) {
			return
		}
		jw := wire{T: missingT}
		if err := json.Unmarshal(line, &jw); err != nil {
			t.Fatalf("fast path accepted %q, encoding/json refuses it: %v", line, err)
		}
		if fw.T != jw.T || fw.Proc != jw.Proc || fw.Type != jw.Type || fw.F != jw.F || fw.Key != jw.Key {
			t.Fatalf("%q: fast %+v, encoding/json %+v", line, fw, jw)
		}
		if (fw.Token == nil) != (jw.Token == nil) || (fw.Token != nil && *fw.Token != *jw.Token) {
			t.Fatalf("%q: token differs", line)
		}
		if !bytes.Equal(fw.Value, jw.Value) {
			t.Fatalf("%q: value %q, encoding/json %q", line, fw.Value, jw.Value)
		}
	})
}

// The fast path takes what locksim's writer writes, for every field.
func TestFastPathTakesWriterOutput(t *testing.T) {
	events := []Event{
		{T: 1, Proc: "c1", Type: Invoke, F: FAcquire, Key: "k"},
		{T: 2, Proc: "c1", Type: OK, F: FAcquire, Key: "k", Token: 7, HasToken: true},
		{T: 3, Proc: "resource", Type: Info, F: FAccept, Key: "k", Token: 7, HasToken: true, Value: json.RawMessage("12")},
		{T: 4, Proc: "c1", Type: Fail, F: FInsert, Key: "k", Value: json.RawMessage(`"x1"`)},
		{T: 5, Proc: "nemesis", Type: Info, F: "pause"},
	}
	r := NewReader(bytes.NewReader(nil), "t")
	for _, e := range events {
		line := e.AppendJSON(nil)
		w := wire{T: missingT}
		if !r.fast(line, &w) {
			t.Fatalf("fast path refused %s", line)
		}
		if w.T != e.T || w.Proc != e.Proc || w.Type != string(e.Type) || w.F != e.F || w.Key != e.Key ||
			(w.Token != nil) != e.HasToken || !bytes.Equal(w.Value, e.Value) {
			t.Fatalf("%s: decoded %+v", line, w)
		}
	}
}
