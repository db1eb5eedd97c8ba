// Package checker judges a history (package history) for the violations
// DESIGN.md defines: mutual exclusion, fencing at the lock service, fencing
// at the resource, and damage to the resource's state; and linearizability
// of the lock (a mutex that knows its owner, with lease expiry) and of the
// fenced resource (a register), key by key.
//
// Every check streams: a Checker takes one event at a time and keeps only
// per-key and per-proc state, so a history of millions of events is checked
// in memory far smaller than the file. Linearizability keeps, per key and
// model, the operations open at once and a frontier of the states a
// linearization can be in (frontier.go); porcupine, which needs every
// operation of a key at once, serves only to draw a key found not
// linearizable, and as the reference in the tests.
package checker
