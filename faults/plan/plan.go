// Package plan computes the shapes of the network faults — which servers
// fall on which side of a partition, which links a bridge or a ring cuts —
// once, for both sides of locksim: the harness cuts real links (package
// faults' toxiproxy network) by these plans, and the simulator (package
// sim) cuts its simulated links by the very same ones. It does no I/O and
// has no dependencies, so that the simulator can use it.
//
// The functions are generic in the node type: the harness passes node
// names, the simulator its nodes.
package plan

import (
	"math/rand/v2"
	"slices"
)

// Halves splits nodes into a minority and a majority at random (Jepsen's
// partition-random-halves): a shuffle drawn from rng, the first len/2 the
// minority. Only the nodes given are split: the harness and the simulator
// pass the servers, so that clients keep their links to every server.
func Halves[T any](rng *rand.Rand, nodes []T) [][]T {
	s := slices.Clone(nodes)
	rng.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	k := len(s) / 2
	return [][]T{s[:k], s[k:]}
}

// BridgeCuts returns the pairs to cut for a bridge: two halves that cannot
// see each other and one node in the middle that sees both. Fewer than
// three nodes have no bridge: nothing is cut.
func BridgeCuts[T any](nodes []T) [][2]T {
	if len(nodes) < 3 {
		return nil
	}
	mid := len(nodes) / 2
	var cuts [][2]T
	for _, a := range nodes[:mid] {
		for _, b := range nodes[mid+1:] {
			cuts = append(cuts, [2]T{a, b})
		}
	}
	return cuts
}

// RingCuts returns the pairs to cut for majorities ring: nodes in a ring,
// each keeping the links to its nearest neighbours so that it sees a
// majority, but no two nodes see the same majority. With fewer than five
// nodes no such ring exists and it is a bridge (on three nodes, the first
// and the last cannot see each other; the middle one sees both).
func RingCuts[T any](nodes []T) [][2]T {
	n := len(nodes)
	if n < 5 {
		return BridgeCuts(nodes)
	}
	keep := (n/2 + 1) / 2 // neighbours kept on each side
	var cuts [][2]T
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			d := min(j-i, n-(j-i))
			if d > keep {
				cuts = append(cuts, [2]T{nodes[i], nodes[j]})
			}
		}
	}
	return cuts
}
