package workload

import (
	"strconv"
	"time"

	"github.com/locksim/locksim/history"
)

// ListConfig is one client's list workload (memcache's distinct list,
// seed 004): inserts of items drawn at random, so that many inserts race
// on the same item, with no lock.
type ListConfig struct {
	// Keys are the lists; each insert draws one.
	Keys []string
	// Items is how many distinct items there are (at least 1).
	Items int
}

// List is one client's list workload.
type List struct {
	cfg  ListConfig
	open history.Event // the insert in progress; F "" if none
}

// NewList returns the list workload of one client, idle until Begin.
func NewList(cfg ListConfig) *List {
	cfg.Items = max(1, cfg.Items)
	return &List{cfg: cfg}
}

// Begin is the next insert: draw a list and an item.
func (l *List) Begin(r Rand, out []Output) []Output {
	if l.open.F != "" {
		return out
	}
	key := l.cfg.Keys[0]
	if len(l.cfg.Keys) > 1 {
		key = l.cfg.Keys[r.Int64N(int64(len(l.cfg.Keys)))]
	}
	item := strconv.FormatInt(r.Int64N(int64(l.cfg.Items)), 10)
	l.open = history.Event{Type: history.Invoke, F: history.FInsert, Key: key, Value: strconv.AppendQuote(nil, item)}
	return append(out, Output{Kind: OutEmit, Event: l.open}, Output{Kind: OutInsert, Key: key, Item: item})
}

// Inserted is the insert's end: Done (inserted), Refused (already
// present) or Unknown. Then a pause of up to 10 ms before the next.
func (l *List) Inserted(o Outcome, r Rand, out []Output) []Output {
	if l.open.F == "" {
		return out
	}
	e := l.open
	e.Type = [...]history.Type{Done: history.OK, Refused: history.Fail, Unknown: history.Info}[o]
	l.open = history.Event{}
	out = append(out, Output{Kind: OutEmit, Event: e})
	return append(out, Output{Kind: OutTimer, D: time.Duration(r.Int64N(int64(10 * time.Millisecond)))})
}

// Fire is the pause's end: the next insert.
func (l *List) Fire(r Rand, out []Output) []Output { return l.Begin(r, out) }
