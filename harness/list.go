package harness

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/locks"
	memcachelock "github.com/locksim/locksim/locks/memcache"
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

// runList is the list workload: insert items drawn at random, so that many
// inserts race on the same item; ok means inserted, fail refused as
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
	items := max(1, c.cfg.Items)
	for ctx.Err() == nil {
		key := c.cfg.Keys[c.rng.IntN(len(c.cfg.Keys))]
		item := strconv.Itoa(c.rng.IntN(items))
		v, _ := json.Marshal(item)
		c.emit(history.Invoke, history.FInsert, key, 0, false, v)
		octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		_, inserted, err := lists[key].Insert(octx, item)
		cancel()
		switch {
		case err != nil:
			c.emit(history.Info, history.FInsert, key, 0, false, v)
		case inserted:
			c.emit(history.OK, history.FInsert, key, 0, false, v)
		default:
			c.emit(history.Fail, history.FInsert, key, 0, false, v)
		}
		c.sleep(ctx, time.Duration(c.rng.Int64N(int64(10*time.Millisecond))))
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
