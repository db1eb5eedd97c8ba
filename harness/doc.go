// Package harness runs one scenario on real servers: it starts the
// cluster, the proxies and the fenced resource, starts every client as a
// child process (so that pausing a client stops its renewals too, as a
// stop-the-world GC pause does), applies the fault schedule, stops
// everything, merges one history in the format of DESIGN.md, and judges it
// with the checker.
//
// Every event is timestamped from CLOCK_MONOTONIC, which all processes of
// the machine share, relative to the start of the run: never from a
// client's (possibly skewed) clock.
package harness
