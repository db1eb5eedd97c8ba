// Package cluster starts and stops the real servers locksim tests against
// (etcd members, PostgreSQL, memcached, Consul): on loopback, on free ports,
// with data in temporary directories removed on stop. Every server is a
// Node that can be stopped, killed, paused, resumed and restarted by name,
// which is what the fault layer builds on.
//
// No server outlives locksim: each runs in its own process group and gets
// SIGKILL when the locksim thread that started it dies (Pdeathsig).
package cluster
