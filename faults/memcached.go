package faults

import (
	"fmt"
	"sync"

	"github.com/bradfitz/gomemcache/memcache"
)

// FloodMemcached is memory pressure on memcached servers: junk items of
// about a lock item's size, written by eight writers per server, until the
// LRU of their slab class has dropped what was there (60,000 items fill a
// 2 MB server several times over, in well under a second). Keys start
// with prefix so that two floods do not overwrite each other's junk.
// Errors are ignored: a server that is down is not flooded.
func FloodMemcached(addrs []string, prefix uint32) {
	junk := []byte("evict-junk")
	var wg sync.WaitGroup
	for _, a := range addrs {
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				mc := memcache.New(a)
				defer mc.Close()
				for i := w; i < 60_000; i += 8 {
					_ = mc.Set(&memcache.Item{Key: fmt.Sprintf("e%x-%x", prefix, i), Value: junk})
				}
			}()
		}
	}
	wg.Wait()
}
