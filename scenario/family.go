package scenario

// FamilyKey is what s is without its name, description, backends and
// fencing mode: two scenarios with the same key are the same scenario
// under different fencing modes (a guarded variant may list fewer
// backends), which a report shows side by side.
func FamilyKey(s *Scenario) string {
	c := *s
	c.Name, c.Description, c.Backends = "", "", nil
	c.Workload.Fencing = ""
	return string(Marshal(&c))
}

// Families groups scenarios by FamilyKey: for each scenario of a family of
// two or more with distinct fencing modes, the family's name (the shortest
// of its members' names, the first in order among equals); "" for a
// scenario alone.
func Families(ss []*Scenario) []string {
	byKey := map[string][]int{}
	for i, s := range ss {
		k := FamilyKey(s)
		byKey[k] = append(byKey[k], i)
	}
	out := make([]string, len(ss))
	for _, idx := range byKey {
		modes := map[Fencing]bool{}
		name := ""
		for _, i := range idx {
			modes[ss[i].Workload.Fencing.Mode()] = true
			if n := ss[i].Name; name == "" || len(n) < len(name) || (len(n) == len(name) && n < name) {
				name = n
			}
		}
		if len(modes) < 2 {
			continue
		}
		for _, i := range idx {
			out[i] = name
		}
	}
	return out
}
