package checker_test

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/locksim/locksim/checker"
	"github.com/locksim/locksim/scenario"
	"github.com/locksim/locksim/sim"
)

// Liveness on small hand-written histories: held share and the longest
// idle wait, per key; never a violation.
func TestLiveness(t *testing.T) {
	type want struct {
		key       string
		held      int64 // held_ns
		span      int64
		idle      int64 // longest_idle_wait_ns
		from, to  int64
		procs     []string
		untilEnd  bool
		heldShare float64
	}
	tests := []struct {
		name    string
		history string
		want    []want
		me      bool // the history breaks mutual exclusion (for the held share's sake)
	}{
		{
			name: "a wait while nobody holds is idle; the hand-over is its end",
			history: `{"t":0,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":10,"proc":"c1","type":"ok","f":"acquire","key":"k","token":1}
{"t":20,"proc":"c1","type":"invoke","f":"release","key":"k"}
{"t":25,"proc":"c1","type":"ok","f":"release","key":"k"}
{"t":30,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":70,"proc":"c2","type":"ok","f":"acquire","key":"k","token":2}
{"t":100,"proc":"c2","type":"invoke","f":"release","key":"k"}`,
			// c1 waited 0..10 idle, c2 30..70; held 10..20 and 70..100.
			want: []want{{key: "k", held: 40, span: 100, idle: 40, from: 30, to: 70, procs: []string{"c2"}, heldShare: 0.4}},
		},
		{
			name: "a wait that overlaps a hold is not idle until the hold ends",
			history: `{"t":0,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":0,"proc":"c1","type":"ok","f":"acquire","key":"k","token":1}
{"t":10,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":50,"proc":"c1","type":"invoke","f":"release","key":"k"}
{"t":55,"proc":"c3","type":"invoke","f":"acquire","key":"k"}
{"t":60,"proc":"c2","type":"ok","f":"acquire","key":"k","token":2}
{"t":70,"proc":"c1","type":"ok","f":"release","key":"k"}
{"t":100,"proc":"c2","type":"invoke","f":"release","key":"k"}
{"t":101,"proc":"c3","type":"ok","f":"acquire","key":"k","token":3}
{"t":110,"proc":"c3","type":"invoke","f":"release","key":"k"}`,
			// c2 waited 10..60 but the key was held until 50: idle 50..60,
			// c3 joining at 55. c3's wait 55..101 is idle only 100..101.
			want: []want{{key: "k", held: 99, span: 110, idle: 10, from: 50, to: 60, procs: []string{"c2", "c3"}, heldShare: 99.0 / 110}},
		},
		{
			name: "overlapping holds count once in the held share",
			history: `{"t":0,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":0,"proc":"c1","type":"ok","f":"acquire","key":"k","token":1}
{"t":5,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":10,"proc":"c2","type":"ok","f":"acquire","key":"k","token":2}
{"t":20,"proc":"c1","type":"invoke","f":"release","key":"k"}
{"t":30,"proc":"c2","type":"invoke","f":"release","key":"k"}
{"t":40,"proc":"c2","type":"ok","f":"release","key":"k"}`,
			want: []want{{key: "k", held: 30, span: 40, heldShare: 0.75}},
			me:   true,
		},
		{
			name: "a lost notice ends a hold: the wait after it is idle",
			history: `{"t":0,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":0,"proc":"c1","type":"ok","f":"acquire","key":"k","token":1}
{"t":10,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":20,"proc":"c1","type":"info","f":"lost","key":"k","token":1}
{"t":50,"proc":"c2","type":"ok","f":"acquire","key":"k","token":2}
{"t":60,"proc":"c2","type":"invoke","f":"release","key":"k"}`,
			want: []want{{key: "k", held: 30, span: 60, idle: 30, from: 20, to: 50, procs: []string{"c2"}, heldShare: 0.5}},
		},
		{
			name: "a lost notice of an older token leaves the hold",
			history: `{"t":0,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":0,"proc":"c1","type":"ok","f":"acquire","key":"k","token":2}
{"t":10,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":20,"proc":"c1","type":"info","f":"lost","key":"k","token":1}
{"t":40,"proc":"c1","type":"invoke","f":"release","key":"k"}
{"t":50,"proc":"c2","type":"ok","f":"acquire","key":"k","token":3}
{"t":60,"proc":"c2","type":"invoke","f":"release","key":"k"}`,
			want: []want{{key: "k", held: 50, span: 60, idle: 10, from: 40, to: 50, procs: []string{"c2"}, heldShare: 50.0 / 60}},
		},
		{
			name: "an info acquire ends the wait and begins no hold; a fail too",
			history: `{"t":0,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":30,"proc":"c1","type":"info","f":"acquire","key":"k"}
{"t":40,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":45,"proc":"c2","type":"fail","f":"acquire","key":"k"}
{"t":100,"proc":"nemesis","type":"info","f":"pause","value":"c3"}`,
			want: []want{{key: "k", span: 100, idle: 30, from: 0, to: 30, procs: []string{"c1"}}},
		},
		{
			name: "a wait still open at the end lasts until the end; a crash's lost without a key frees every key",
			history: `{"t":0,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":0,"proc":"c1","type":"ok","f":"acquire","key":"k","token":1}
{"t":1,"proc":"c1","type":"invoke","f":"acquire","key":"m"}
{"t":2,"proc":"c1","type":"ok","f":"acquire","key":"m","token":1}
{"t":5,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":10,"proc":"c1","type":"info","f":"lost","value":"killed"}
{"t":100,"proc":"nemesis","type":"info","f":"resume","value":"c1"}`,
			want: []want{
				{key: "k", held: 10, span: 100, idle: 90, from: 10, to: 100, procs: []string{"c2"}, untilEnd: true, heldShare: 0.1},
				{key: "m", held: 8, span: 100, idle: 1, from: 1, to: 2, procs: []string{"c1"}, heldShare: 0.08},
			},
		},
		{
			name: "a hold open at the end counts until the end",
			history: `{"t":10,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":20,"proc":"c1","type":"ok","f":"acquire","key":"k","token":1}
{"t":30,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":110,"proc":"nemesis","type":"info","f":"pause","value":"c1"}`,
			want: []want{{key: "k", held: 90, span: 100, idle: 10, from: 10, to: 20, procs: []string{"c1"}, heldShare: 0.9}},
		},
		{
			name: "several keys, each its own; the longest of equal idle intervals is the first",
			history: `{"t":0,"proc":"c1","type":"invoke","f":"acquire","key":"a"}
{"t":0,"proc":"c2","type":"invoke","f":"acquire","key":"b"}
{"t":10,"proc":"c1","type":"ok","f":"acquire","key":"a","token":1}
{"t":15,"proc":"c3","type":"invoke","f":"acquire","key":"b"}
{"t":20,"proc":"c1","type":"invoke","f":"release","key":"a"}
{"t":25,"proc":"c1","type":"ok","f":"release","key":"a"}
{"t":30,"proc":"c1","type":"invoke","f":"acquire","key":"a"}
{"t":40,"proc":"c1","type":"ok","f":"acquire","key":"a","token":2}
{"t":50,"proc":"c2","type":"ok","f":"acquire","key":"b","token":1}
{"t":60,"proc":"c1","type":"invoke","f":"release","key":"a"}
{"t":70,"proc":"c3","type":"fail","f":"acquire","key":"b"}
{"t":80,"proc":"c2","type":"invoke","f":"release","key":"b"}`,
			want: []want{
				{key: "a", held: 30, span: 80, idle: 10, from: 0, to: 10, procs: []string{"c1"}, heldShare: 30.0 / 80},
				{key: "b", held: 30, span: 80, idle: 50, from: 0, to: 50, procs: []string{"c2", "c3"}, heldShare: 30.0 / 80},
			},
		},
		{
			name:    "no acquire, no liveness",
			history: `{"t":0,"proc":"c1","type":"invoke","f":"write","key":"k","value":1}` + "\n" + `{"t":5,"proc":"c1","type":"ok","f":"write","key":"k","value":1}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := run(t, tt.history, false)
			if got := kinds(res); (tt.me && !slices.Equal(got, []string{"mutual-exclusion"})) || (!tt.me && len(got) != 0) {
				t.Fatalf("violations %v: liveness figures are never violations", got)
			}
			if len(res.Liveness) != len(tt.want) {
				t.Fatalf("liveness %+v, want %d keys", res.Liveness, len(tt.want))
			}
			for i, w := range tt.want {
				g := res.Liveness[i]
				if w.procs == nil {
					w.procs = []string{}
				}
				if g.Key != w.key || g.HeldNs != w.held || g.SpanNs != w.span || g.LongestIdleWaitNs != w.idle ||
					g.From != w.from || g.To != w.to || !slices.Equal(g.Procs, w.procs) || g.UntilEnd != w.untilEnd ||
					math.Abs(g.HeldShare-w.heldShare) > 1e-12 {
					t.Errorf("key %d: got %+v\nwant %+v", i, g, w)
				}
			}
		})
	}
}

// The figures reach `locksim check`'s text, labelled as liveness and not
// as violations, and its JSON as the field "liveness", per file when
// several are checked; the verdict stays OK.
func TestLivenessSummary(t *testing.T) {
	h := `{"t":0,"proc":"c1","type":"invoke","f":"acquire","key":"k"}
{"t":1000000,"proc":"c1","type":"ok","f":"acquire","key":"k","token":1}
{"t":2000000000,"proc":"c1","type":"invoke","f":"release","key":"k"}
{"t":2000000000,"proc":"c2","type":"invoke","f":"acquire","key":"k"}
{"t":17200000000,"proc":"c2","type":"ok","f":"acquire","key":"k","token":2}
{"t":20000000000,"proc":"c2","type":"invoke","f":"release","key":"k"}`
	res := run(t, h, false)
	s := checker.Summarize([]string{"a.jsonl", "b.jsonl"}, []checker.Result{res, res})
	if !s.OK || len(s.Liveness) != 2 || s.Liveness[0].File != "a.jsonl" || s.Liveness[1].File != "b.jsonl" {
		t.Fatalf("summary %+v", s)
	}
	var b strings.Builder
	if err := s.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := `a.jsonl: liveness (not a violation) key="k": held 24.0% of 20s, longest idle wait 15.2s (t=2s..17.2s, c2)`
	if !strings.Contains(b.String(), want+"\n") || !strings.HasSuffix(b.String(), "OK: no violation in 12 events\n") {
		t.Errorf("text:\n%s\nwant a line %q and the verdict OK last", b.String(), want)
	}
	data, _ := json.Marshal(checker.Summarize([]string{"a.jsonl"}, []checker.Result{res}))
	var got struct {
		OK       bool `json:"ok"`
		Liveness []struct {
			Key       string   `json:"key"`
			HeldShare float64  `json:"held_share"`
			Idle      int64    `json:"longest_idle_wait_ns"`
			From      int64    `json:"from"`
			To        int64    `json:"to"`
			Procs     []string `json:"procs"`
			File      *string  `json:"file"`
		} `json:"liveness"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if !got.OK || len(got.Liveness) != 1 || got.Liveness[0].Key != "k" || got.Liveness[0].Idle != 15_200_000_000 ||
		got.Liveness[0].From != 2e9 || got.Liveness[0].To != 17.2e9 || !slices.Equal(got.Liveness[0].Procs, []string{"c2"}) ||
		math.Abs(got.Liveness[0].HeldShare-(1.999e9+2.8e9)/20e9) > 1e-12 || got.Liveness[0].File != nil {
		t.Errorf("JSON %s", data)
	}
}

func TestPercent(t *testing.T) {
	for share, want := range map[float64]string{0: "0.0%", 1: "100.0%", 0.6234: "62.3%", 0.99999: ">99.9%", 0.00001: "<0.1%"} {
		if got := checker.Percent(share); got != want {
			t.Errorf("Percent(%v) = %q, want %q", share, got, want)
		}
	}
}

// On the simulator: Consul's lock-delay is a gap in grants at least the
// lock-delay long, with clients waiting through it (liveness, not a
// violation), which the same scenario without lock-delay does not have;
// the control, with no fault, has a holder most of the time
// and no idle wait anywhere near that long.
func TestLivenessSimulated(t *testing.T) {
	load := func(name string) *scenario.Scenario {
		sc, err := scenario.Load("../scenarios/" + name + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	delay := load("consul-lock-delay")
	if delay.Lock.LockDelay < time.Second {
		t.Fatalf("consul-lock-delay's lock_delay is %v: the test wants one of a second or more", delay.Lock.LockDelay)
	}
	noDelay := load("consul-session-invalidation")
	if noDelay.Lock.LockDelay != 0 || noDelay.Faults[0].Fault != delay.Faults[0].Fault {
		t.Fatalf("consul-session-invalidation is no longer consul-lock-delay without the lock-delay: pick another")
	}
	control := load("control")
	for seed := uint64(1); seed <= 5; seed++ {
		res, err := sim.Run(sim.Config{Scenario: delay, Backend: "consul-ttl", Seed: seed, NoHistory: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Verdict.Liveness) != 1 {
			t.Fatalf("consul-lock-delay seed %d: liveness %+v, want one key", seed, res.Verdict.Liveness)
		}
		l := res.Verdict.Liveness[0]
		// Clients that had just released wait again only after their
		// back-off (up to max(20 ms, 2 x poll)), so the idle wait may
		// start that much after the lock-delay began.
		backoff := max(20*time.Millisecond, 2*delay.Lock.Poll)
		if l.LongestIdleWaitNs < int64(delay.Lock.LockDelay-backoff) || len(l.Procs) == 0 {
			t.Errorf("consul-lock-delay seed %d: longest idle wait %s, want at least the lock-delay %v less the back-off %v: %+v", seed, checker.Round(l.LongestIdleWaitNs), delay.Lock.LockDelay, backoff, l)
		}
		res, err = sim.Run(sim.Config{Scenario: noDelay, Backend: "consul-ttl", Seed: seed, NoHistory: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Verdict.Liveness) != 1 || res.Verdict.Liveness[0].LongestIdleWaitNs >= int64(delay.Lock.LockDelay)/4 {
			t.Errorf("consul-session-invalidation seed %d: liveness %+v; want an idle wait under %v without the lock-delay", seed, res.Verdict.Liveness, delay.Lock.LockDelay/4)
		}
		for _, b := range control.Backends {
			res, err := sim.Run(sim.Config{Scenario: control, Backend: b, Seed: seed, NoHistory: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Verdict.Liveness) != 1 {
				t.Fatalf("control on %s seed %d: liveness %+v, want one key", b, seed, res.Verdict.Liveness)
			}
			l := res.Verdict.Liveness[0]
			// The workload thinks between cycles and the backends poll: a
			// holder about two thirds of the time or more.
			if l.HeldShare < 0.55 || l.LongestIdleWaitNs >= int64(delay.Lock.LockDelay)/4 {
				t.Errorf("control on %s seed %d: %s; want held over 55%% and no idle wait of %v", b, seed, checker.LivenessText(l), delay.Lock.LockDelay/4)
			}
		}
	}
}
