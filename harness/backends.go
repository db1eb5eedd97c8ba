package harness

import (
	"context"
	"io"

	"github.com/locksim/locksim/backend"
	"github.com/locksim/locksim/locks"
)

// backendParts is the harness's part of one backend of the registry
// (package backend): how a run deploys its real servers, and how a client
// process builds its locker on them.
type backendParts struct {
	deploy func(deployArgs) (*deployment, error)
	locker lockerFunc
}

// lockerFunc builds a client's locker for b, and what to close after.
type lockerFunc func(ctx context.Context, b BackendClient, proc string, opts ...locks.Option) (locks.Locker, io.Closer, error)

// parts are the harness's backends, one line each, by their names in the
// registry; TestPartsMatchRegistry fails on a backend without one.
var parts = map[string]backendParts{
	"etcd":              {deploy: deployEtcd, locker: newEtcdLocker},
	"postgres":          {deploy: deployPostgres, locker: newPostgresLocker},
	"postgres-advisory": {deploy: deployPostgres, locker: newAdvisoryLocker},
	"memcache":          {deploy: deployMemcached, locker: newMemcacheLocker},
	"consul":            {deploy: func(a deployArgs) (*deployment, error) { return deployConsul(a, true) }, locker: consulLocker(false)},
	"consul-ttl":        {deploy: func(a deployArgs) (*deployment, error) { return deployConsul(a, false) }, locker: consulLocker(true)},
	"megamutex":         {deploy: deployMemcached, locker: newMegamutexLocker},
	"mysql":             {deploy: deployMariaDB, locker: newMySQLLocker},
}

// registered is backend kind's entry in the registry, or the zero entry
// (no flags, no skipped faults) for a kind it does not know, as the
// harness's tests' fake deployments are.
func registered(kind string) backend.Backend {
	if b := backend.Lookup(kind); b != nil {
		return *b
	}
	return backend.Backend{}
}
