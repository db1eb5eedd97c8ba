// Package checker judges a history (package history) for the violations
// DESIGN.md defines: mutual exclusion, fencing at the lock service, fencing
// at the resource, and damage to the resource's state; and, with
// porcupine, linearizability of the lock (a mutex that knows its owner, with
// lease expiry) and of the fenced resource (a register), key by key.
//
// The four rule checks stream: a Checker takes one event at a time and keeps
// only per-key and per-proc state, so a history of millions of events is
// checked in memory far smaller than the file. Linearizability needs the
// operations of a key in memory and is optional.
package checker
