package sim_test

import (
	"fmt"
	"log"

	"github.com/locksim/locksim/scenario"
	"github.com/locksim/locksim/sim"
)

// Run one seed of a scenario on a model, then replay it: the same seed
// gives the same history and the same verdict.
func Example() {
	sc, err := scenario.Load("../scenarios/holder-paused-past-lease.yaml")
	if err != nil {
		log.Fatal(err)
	}
	res, err := sim.Run(sim.Config{Scenario: sc, Backend: "etcd", Seed: 1})
	if err != nil {
		log.Fatal(err)
	}
	again, _ := sim.Run(sim.Config{Scenario: sc, Backend: "etcd", Seed: 1})
	fmt.Println("violations:", res.Kinds())
	fmt.Println("replayed:", len(again.Events) == len(res.Events), again.Kinds())
	// Output:
	// violations: [mutual-exclusion]
	// replayed: true [mutual-exclusion]
}

// Shrink a violating seed to the smallest scenario that still violates,
// and write it as a scenario file.
func ExampleShrink() {
	sc, err := scenario.Load("../scenarios/holder-paused-past-lease-unfenced.yaml")
	if err != nil {
		log.Fatal(err)
	}
	sr, err := sim.Shrink(sim.Config{Scenario: sc, Backend: "postgres", Seed: 1}, 0)
	if err != nil {
		log.Fatal(err)
	}
	s := sr.Scenario
	fmt.Println(s.Backends, len(s.Faults), "fault:", s.Faults[0].Fault, s.Faults[0].Target)
	fmt.Println("still:", sr.Result.Kinds())
	_ = scenario.Marshal(s) // what scenario.Write writes
	// Output:
	// [postgres] 1 fault: pause holder
	// still: [mutual-exclusion fencing-resource damage]
}
