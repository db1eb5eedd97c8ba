package checker

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"github.com/locksim/locksim/history"
)

// listState judges a key used as a distinct list: the last read of the
// list (a JSON array of strings) must hold every item whose insert
// completed ok, no item twice, and nothing never inserted.
type listState struct {
	acked    map[string]int  // item → line of its ok insert
	tried    map[string]bool // every item whose insert was invoked
	final    []string        // the last read's contents
	hasFinal bool
	readLine int
	readT    int64
}

func (l *listState) insert(inv, e *history.Event) {
	var item string
	raw := inv.Value
	if len(raw) == 0 {
		raw = e.Value
	}
	if json.Unmarshal(raw, &item) != nil {
		return
	}
	if l.tried == nil {
		l.tried, l.acked = map[string]bool{}, map[string]int{}
	}
	l.tried[item] = true
	if e.Type == history.OK {
		if _, dup := l.acked[item]; !dup {
			l.acked[item] = e.Line
		}
	}
}

// read records a read of the list; only reads of a list (a JSON array)
// count, and the last one is the final state.
func (l *listState) read(e *history.Event) {
	if l.tried == nil {
		return // no insert yet: not a list (a counter's reads come here)
	}
	var items []string
	if json.Unmarshal(e.Value, &items) != nil {
		return
	}
	l.final, l.hasFinal, l.readLine, l.readT = items, true, e.Line, e.T
}

// verdict returns the damage violation of the list key, if any.
func (l *listState) verdict(key string) (Violation, bool) {
	if !l.hasFinal {
		return Violation{}, false
	}
	count := map[string]int{}
	for _, it := range l.final {
		count[it]++
	}
	var dups, missing, phantom []string
	for it, n := range count {
		if n > 1 {
			dups = append(dups, it)
		}
		if !l.tried[it] {
			phantom = append(phantom, it)
		}
	}
	lines := []int{l.readLine}
	for it, line := range l.acked {
		if count[it] == 0 {
			missing = append(missing, it)
			if len(lines) <= maxStaleLines {
				lines = append(lines, line)
			}
		}
	}
	if len(dups)+len(missing)+len(phantom) == 0 {
		return Violation{}, false
	}
	sort.Strings(dups)
	sort.Strings(missing)
	sort.Strings(phantom)
	slices.Sort(lines)
	return Violation{
		Kind: Damage, Key: key, Procs: []string{}, Tokens: []int64{},
		From: l.readT, To: l.readT, Lines: lines,
		Detail: fmt.Sprintf("list %q read at line %d: %d items listed twice %v, %d acknowledged inserts missing %v, %d never inserted %v",
			key, l.readLine, len(dups), clip(dups), len(missing), clip(missing), len(phantom), clip(phantom)),
	}, true
}

// clip shortens a list for a message.
func clip(s []string) []string {
	if len(s) > 10 {
		return append(slices.Clone(s[:10]), "...")
	}
	return s
}
