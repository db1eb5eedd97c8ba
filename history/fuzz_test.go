package history_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/locksim/locksim/history"
)

// FuzzReader: any input gives events or one *history.Error, never a panic;
// and what was read writes back to something that reads the same.
func FuzzReader(f *testing.F) {
	f.Add([]byte(`{"t": 1500000000, "proc": "c1", "type": "invoke", "f": "acquire", "key": "widgets"}
{"t": 1500200000, "proc": "c1", "type": "ok", "f": "acquire", "key": "widgets", "token": 7}`))
	f.Add([]byte(`{"t":1,"proc":"nemesis","type":"info","f":"pause","value":{"target":"c1"}}`))
	f.Add([]byte(`{"t":1,"proc":"c1","type":"ok","f":"acquire"}`))
	f.Add([]byte("{\"t\":1}\n\n[1]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := history.NewReader(bytes.NewReader(data), "fuzz")
		var events []history.Event
		for {
			e, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				var he *history.Error
				if !errors.As(err, &he) {
					t.Fatalf("error is not a *history.Error: %v", err)
				}
				if he.Line < 1 {
					t.Fatalf("error without a line: %v", err)
				}
				return
			}
			events = append(events, e)
		}
		var buf bytes.Buffer
		w := history.NewWriter(&buf)
		for i := range events {
			if err := w.Write(&events[i]); err != nil {
				t.Fatal(err)
			}
		}
		_ = w.Flush()
		again, err := history.ReadAll(history.NewReader(&buf, "again"))
		if err != nil {
			t.Fatalf("rewritten history does not read: %v\n%s", err, buf.String())
		}
		if len(again) != len(events) {
			t.Fatalf("rewritten history has %d events, want %d", len(again), len(events))
		}
		for i := range events {
			a, b := events[i], again[i]
			if a.T != b.T || a.Proc != b.Proc || a.Type != b.Type || a.F != b.F || a.Token != b.Token || a.HasToken != b.HasToken {
				t.Fatalf("event %d changed: %+v vs %+v", i, a, b)
			}
		}
	})
}
