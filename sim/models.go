package sim

import (
	"github.com/locksim/locksim/backend"
	lockPostgres "github.com/locksim/locksim/locks/postgres"
)

// modelSpec is the simulator's part of one backend of the registry
// (package backend): how a run builds its model, and the options of the
// model that are not locks.Options.
type modelSpec struct {
	new func(r *run) model
	// extra sets the options beyond the backend's locks.Options defaults
	// (the lease table's clock and renew_errors mode).
	extra func(o *options)
}

// models are the simulator's backends, one line each, by their names in
// the registry; TestModelsMatchRegistry fails on a backend without one.
var models = map[string]modelSpec{
	"etcd":     {new: func(r *run) model { return newEtcd(r, r.clusterSize()) }},
	"consul":   {new: func(r *run) model { return newConsul(r, r.clusterSize(), false) }},
	"memcache": {new: func(r *run) model { return newMemcache(r, r.clusterSize()) }},
	"postgres": {new: func(r *run) model { return newPostgres(r, false) }, extra: func(o *options) {
		// Locker's default clock (db), which is not a locks.Option.
		o.clock = string(lockPostgres.ClockDB)
		o.renewErrors = string(lockPostgres.RenewRetry)
	}},
	"postgres-advisory": {new: func(r *run) model { return newPostgres(r, true) }},
	"consul-ttl":        {new: func(r *run) model { return newConsul(r, r.clusterSize(), true) }},
	"megamutex":         {new: func(r *run) model { return newMegamutex(r, r.clusterSize()) }},
	"mysql":             {new: func(r *run) model { return newMySQL(r) }},
}

// Backends lists the backends the simulator has models of, in the names
// scenario files use: every backend of the registry.
var Backends = backend.Names()

// clusterSize is the scenario's server count, at least one.
func (r *run) clusterSize() int { return max(r.sc.Cluster.Size, 1) }
