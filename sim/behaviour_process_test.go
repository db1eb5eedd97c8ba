package sim

import (
	"strconv"
	"testing"
	"time"

	"github.com/locksim/locksim/sim/behaviour"
)

// processModel is a simulated client node woken from a pause, for the
// process behaviour cases: its timers (afterTrue, as a client's) and a
// message from a server node, run in virtual time.
type processModel struct {
	seed uint64
}

func (p *processModel) Wake(dues []time.Duration, stopAt, msgAt, contAt time.Duration) ([]string, []time.Duration, error) {
	p.seed++
	w := newWorld(p.seed, time.Minute)
	c, s := w.addNode("c1"), w.addNode("s1")
	c.late = timerLateness
	var ran []string
	var at []int64
	record := func(name string) func() {
		return func() { ran, at = append(ran, name), append(at, w.now) }
	}
	for i, d := range dues {
		c.afterTrue(int64(d), record(strconv.Itoa(i)))
	}
	w.at(int64(stopAt), c.pause)
	w.at(int64(msgAt), func() { w.sendEv(s, c, evFn, nil, record("m")) })
	w.at(int64(contAt), c.resume)
	w.runUntil(int64(contAt) + int64(time.Second))
	rel := make([]time.Duration, len(at))
	for i := range at {
		rel[i] = time.Duration(at[i] - at[0])
	}
	return ran, rel, nil
}

// The process behaviour cases on the model, each from several seeds.
func TestProcessModel(t *testing.T) {
	for _, c := range behaviour.ProcessCases {
		t.Run(c.Name, func(t *testing.T) {
			for seed := uint64(1); seed <= 3; seed++ {
				if err := c.Run(&processModel{seed: seed * 1000}); err != nil {
					t.Errorf("seed %d: %v", seed, err)
				}
			}
		})
	}
}
