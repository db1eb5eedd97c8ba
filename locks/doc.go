// Package locks is locksim's reference distributed-lock package: one
// Locker/Lease interface, a Run helper that renews a lease while a function
// runs, and fencing tokens on every grant.
//
// Backends live in sub-packages (locks/etcd, locks/postgres, locks/memcache,
// locks/consul). Each reproduces the lock design it comes from, flaws
// included, and names every deviation in its doc comment. None of them is
// safe on its own under partitions, pauses and clock skew: only a protected
// resource that checks the fencing Token of every write is.
package locks
