// Package faults injects real faults into a run: client clock skew through
// the locks.Clock option, server clock skew through libfaketime, network
// partitions and slow links through toxiproxy proxies that locksim owns,
// and pauses and crashes of processes through package cluster's nodes.
package faults
