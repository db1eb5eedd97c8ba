package memcache

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/bradfitz/gomemcache/memcache"
)

// List is seed 004's second mode, a distinct list built on memcached: a
// named set whose members can be enumerated. Inserting item k is
//
//	add  <set>_key_<k>         (NOT_STORED: k is already in the set)
//	add  <set>_items = 0       (initialise the count; NOT_STORED is fine)
//	incr <set>_items           (returns n)
//	set  <set>_item_<n> = k
//
// Every key is placed by hashing over the servers like the lock's. The
// recipe's weak points are kept: the incr and the set are two steps (an
// inserter that dies between them leaves a hole), and any of the keys can
// be evicted or lost with a restart, which lets an item in twice or makes
// an acknowledged insert vanish. CheckList judges what a list held.
type List struct {
	srv  *servers
	name string
	exp  int32
}

// List returns the distinct list called name on l's servers. Its keys
// expire after ttl (seed 004's distinct_list_set_up duration); 0 never.
func (l *Locker) List(name string, ttl int32) *List {
	return &List{srv: l.srv, name: name, exp: ttl}
}

func (s *List) keyKey(item string) string { return storageKey(s.name + "_key_" + item) }
func (s *List) countKey() string          { return storageKey(s.name + "_items") }
func (s *List) itemKey(n uint64) string {
	return storageKey(s.name + "_item_" + strconv.FormatUint(n, 10))
}

// Insert adds item to the set. It reports whether item was new and, if so,
// its position n (1-based). An error after the first add leaves the item
// marked present but maybe not listed, as the recipe does.
func (s *List) Insert(ctx context.Context, item string) (n uint64, inserted bool, err error) {
	_, err = s.srv.do(ctx, "list insert", s.keyKey(item), func(c *memcache.Client) error {
		return c.Add(&memcache.Item{Key: s.keyKey(item), Expiration: s.exp})
	})
	switch {
	case errors.Is(err, memcache.ErrNotStored):
		return 0, false, nil
	case err != nil:
		return 0, false, wrap("list insert", err)
	}
	ck := s.countKey()
	for range 3 {
		_, err = s.srv.do(ctx, "list count", ck, func(c *memcache.Client) error {
			err := c.Add(&memcache.Item{Key: ck, Value: []byte("0"), Expiration: s.exp})
			if err != nil && !errors.Is(err, memcache.ErrNotStored) {
				return err
			}
			n, err = c.Increment(ck, 1)
			return err
		})
		if !errors.Is(err, memcache.ErrCacheMiss) {
			break
		}
	}
	if err != nil {
		return 0, false, wrap("list count", err)
	}
	_, err = s.srv.do(ctx, "list set", s.itemKey(n), func(c *memcache.Client) error {
		return c.Set(&memcache.Item{Key: s.itemKey(n), Value: []byte(item), Expiration: s.exp})
	})
	if err != nil {
		return 0, false, wrap("list set", err)
	}
	return n, true, nil
}

// ListContents is what a List held when it was read.
type ListContents struct {
	// Count is the value of <set>_items (0 if it is missing).
	Count uint64
	// Items are the listed items in position order, holes left out.
	Items []string
	// Holes are the positions 1..Count with no <set>_item_<n>.
	Holes []uint64
}

// Contents reads the list: the count, then every item up to it.
func (s *List) Contents(ctx context.Context) (ListContents, error) {
	var out ListContents
	ck := s.countKey()
	var raw []byte
	_, err := s.srv.do(ctx, "list read", ck, func(c *memcache.Client) error {
		it, err := c.Get(ck)
		if err == nil {
			raw = it.Value
		}
		return err
	})
	switch {
	case errors.Is(err, memcache.ErrCacheMiss):
		return out, nil
	case err != nil:
		return out, wrap("list read", err)
	}
	if out.Count, err = strconv.ParseUint(string(raw), 10, 64); err != nil {
		return out, backendErr("list read", fmt.Errorf("%s holds %q", ck, raw))
	}
	for n := uint64(1); n <= out.Count; n++ {
		var v []byte
		_, err := s.srv.do(ctx, "list read", s.itemKey(n), func(c *memcache.Client) error {
			it, err := c.Get(s.itemKey(n))
			if err == nil {
				v = it.Value
			}
			return err
		})
		switch {
		case errors.Is(err, memcache.ErrCacheMiss):
			out.Holes = append(out.Holes, n)
		case err != nil:
			return out, wrap("list read", err)
		default:
			out.Items = append(out.Items, string(v))
		}
	}
	return out, nil
}

// ListVerdict is CheckList's judgement of a distinct list.
type ListVerdict struct {
	// Duplicates are items listed more than once.
	Duplicates []string
	// Missing are items whose insert was acknowledged (Insert returned
	// inserted) but that the list does not hold.
	Missing []string
	// Holes are positions with no item (reported, not a violation: an
	// insert that failed half-way leaves one).
	Holes []uint64
}

// OK reports whether no item is listed twice and no acknowledged insert is
// missing.
func (v ListVerdict) OK() bool { return len(v.Duplicates) == 0 && len(v.Missing) == 0 }

// CheckList judges a distinct list: acked are the items whose Insert
// reported inserted, got is what the list held afterwards. Results are
// sorted.
func CheckList(acked []string, got ListContents) ListVerdict {
	v := ListVerdict{Holes: got.Holes}
	seen := make(map[string]int, len(got.Items))
	for _, it := range got.Items {
		seen[it]++
		if seen[it] == 2 {
			v.Duplicates = append(v.Duplicates, it)
		}
	}
	for _, it := range acked {
		if seen[it] == 0 {
			v.Missing = append(v.Missing, it)
			seen[it] = -1 // report once
		}
	}
	sort.Strings(v.Duplicates)
	sort.Strings(v.Missing)
	return v
}
