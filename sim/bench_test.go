package sim

import (
	"testing"
	"time"

	"github.com/locksim/locksim/scenario"
)

// benchRun runs seeds of sc on backend as a sweep does (NoHistory) and
// reports seeds/s and simulated seconds per wall second (per core: the
// benchmark runs one seed at a time).
func benchRun(b *testing.B, sc *scenario.Scenario, backend string) {
	b.ReportAllocs()
	events := 0
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		res, err := Run(Config{Scenario: sc, Backend: backend, Seed: uint64(i + 1), NoHistory: true})
		if err != nil {
			b.Fatal(err)
		}
		events += res.Verdict.Events
	}
	wall := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N)/wall, "seeds/s")
	b.ReportMetric(float64(b.N)*sc.Duration.Seconds()/wall, "sim-s/s")
	b.ReportMetric(float64(events)/float64(b.N), "events/seed")
}

// BenchmarkCatalogue runs every shipped scenario on every backend it
// lists, at its own duration.
func BenchmarkCatalogue(b *testing.B) {
	for _, name := range []string{"control", "holder-paused-past-lease", "holder-paused-past-lease-unfenced"} {
		sc := load(b, name)
		for _, be := range sc.Backends {
			b.Run(name+"/"+be, func(b *testing.B) { benchRun(b, sc, be) })
		}
	}
}

// BenchmarkSixtySeconds is the goal's shape: 3 clients, 60 simulated
// seconds, the holder paused past its lease.
func BenchmarkSixtySeconds(b *testing.B) {
	sc := load(b, "holder-paused-past-lease")
	sc.Duration = time.Minute
	for _, be := range Backends {
		b.Run(be, func(b *testing.B) { benchRun(b, sc, be) })
	}
}

// BenchmarkFindPausedHolderEtcd is the time from nothing to the first
// violating seed of holder-paused-past-lease on etcd.
func BenchmarkFindPausedHolderEtcd(b *testing.B) {
	sc := load(b, "holder-paused-past-lease")
	for b.Loop() {
		for seed := uint64(1); ; seed++ {
			res, err := Run(Config{Scenario: sc, Backend: "etcd", Seed: seed, NoHistory: true})
			if err != nil {
				b.Fatal(err)
			}
			if !res.OK() {
				break
			}
		}
	}
}
