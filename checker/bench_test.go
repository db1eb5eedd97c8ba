package checker_test

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/locksim/locksim/checker"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/internal/histgen"
)

// benchHistory is a generated correct history of about n events as JSONL.
func benchHistory(b *testing.B, n int) []byte {
	b.Helper()
	events, _ := histgen.Generate(rand.New(rand.NewPCG(1, 2)), histgen.Config{
		Keys: 8, ClientsPerKey: 4, Grants: n / 80, TryFailRate: 0.2, RenewRate: 0.3,
	})
	var buf bytes.Buffer
	w := history.NewWriter(&buf)
	for i := range events {
		_ = w.Write(&events[i])
	}
	_ = w.Flush()
	return buf.Bytes()
}

// BenchmarkCheck: read and check (the four rules) a 100k-event history.
func BenchmarkCheck(b *testing.B) {
	data := benchHistory(b, 100_000)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		res, err := checker.Check(history.NewReader(bytes.NewReader(data), "bench"), checker.Options{})
		if err != nil || len(res.Violations) != 0 {
			b.Fatalf("err %v, violations %d", err, len(res.Violations))
		}
	}
}

// BenchmarkRead: the reader alone, the floor under BenchmarkCheck.
func BenchmarkRead(b *testing.B) {
	data := benchHistory(b, 100_000)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := history.ReadAll(history.NewReader(bytes.NewReader(data), "bench")); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckLinearizability: the rules plus linearizability on the
// 100k-event history of BenchmarkCheck, beside which it reads as the cost of
// linearizability.
func BenchmarkCheckLinearizability(b *testing.B) {
	data := benchHistory(b, 100_000)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		res, err := checker.Check(history.NewReader(bytes.NewReader(data), "bench"), checker.Options{Linearizability: true})
		if err != nil || !res.OK() {
			b.Fatalf("err %v, result %+v", err, res.Linearizability)
		}
	}
}
