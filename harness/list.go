package harness

import (
	"context"
	"encoding/json"
	"time"

	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/locks"
	memcachelock "github.com/locksim/locksim/locks/memcache"
	"github.com/locksim/locksim/workload"
)

// listTTL is the expiry of the list's keys: far beyond any run.
const listTTL = 3600

// newList opens the distinct list named key on the servers of b.
func newList(b BackendClient, key string, opts ...locks.Option) (*memcachelock.List, error) {
	l, err := newMemcache(b, opts...)
	if err != nil {
		return nil, err
	}
	return l.List(key, listTTL), nil
}

// runList is the list workload (package workload's List, a machine the
// simulator could drive alike): inserts of items drawn at random, so that
// many inserts race on the same item; ok means inserted, fail refused as
// already present, info unknown.
func (c *client) runList(ctx context.Context, opts []locks.Option) error {
	lists := map[string]*memcachelock.List{}
	for _, k := range c.cfg.Keys {
		l, err := newList(c.cfg.Backend, k, opts...)
		if err != nil {
			return err
		}
		lists[k] = l
	}
	m := workload.NewList(workload.ListConfig{Keys: c.cfg.Keys, Items: c.cfg.Items})
	if ctx.Err() != nil {
		return nil
	}
	// The outputs of each input are carried out in full (an insert's
	// outcome is always recorded); the run's end is heeded at the pause.
	out := m.Begin(c.rng, nil)
	for len(out) > 0 {
		var next []workload.Output
		for _, o := range out {
			switch o.Kind {
			case workload.OutEmit:
				e := &o.Event
				c.emit(e.Type, e.F, e.Key, e.Token, e.HasToken, e.Value)
			case workload.OutInsert:
				octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
				_, inserted, err := lists[o.Key].Insert(octx, o.Item)
				cancel()
				res := workload.Refused
				switch {
				case err != nil:
					res = workload.Unknown
				case inserted:
					res = workload.Done
				}
				next = m.Inserted(res, c.rng, next)
			case workload.OutTimer:
				c.sleep(ctx, o.D)
				if ctx.Err() != nil {
					return nil
				}
				next = m.Fire(c.rng, next)
			}
		}
		out = next
	}
	return nil
}

// readLists reads every list once the clients have stopped and records it
// as the final state, by the proc "reader".
func (r *runState) readLists() {
	log, err := CreateProcLog(r.procPath("reader"))
	if err != nil {
		r.logf("reader: %v", err)
		return
	}
	defer log.Close()
	b := BackendClient{Kind: "memcache", Endpoints: r.dep.upstreams}
	for _, key := range r.keys {
		inv := history.Event{T: r.clock.Now(), Proc: "reader", Type: history.Invoke, F: history.FRead, Key: key}
		_ = log.Write(&inv)
		done := history.Event{Proc: "reader", Type: history.Fail, F: history.FRead, Key: key}
		l, err := newList(b, key)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			var got memcachelock.ListContents
			got, err = l.Contents(ctx)
			cancel()
			if err == nil {
				items := got.Items
				if items == nil {
					items = []string{}
				}
				done.Type = history.OK
				done.Value, _ = json.Marshal(items)
			}
		}
		if err != nil {
			r.logf("reader: %s: %v", key, err)
		}
		done.T = r.clock.Now()
		_ = log.Write(&done)
	}
}
