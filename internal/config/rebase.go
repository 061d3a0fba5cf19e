package config

import (
	"fmt"
	"reflect"
	"strings"
)

// Rebase returns the config to run when the file, last loaded as oldFile,
// now reads newFile, while the running config is running (oldFile plus the
// runtime changes made since). It carries every runtime change over to
// newFile, except where the file itself changed the same item since
// oldFile: there the file wins, and the item is listed in overridden (one
// readable line each, e.g. `target_groups[0] ("web"): target 10.0.0.5:80:
// weight 3 set at run time, the file now says 2`). HAProxy and NGINX Plus
// lose runtime changes on reload; latch keeps them.
//
// Runtime changes own two kinds of item, compared one by one:
//   - a target group's targets, by ID: whether each is registered, its
//     Weight and its Drain (and whether discovery registered it: a
//     target the file takes over is the file's, and loses the drain
//     discovery gave it). Where newFile's (registered, weight) differs
//     from oldFile's, newFile's is taken; otherwise running's (registered,
//     weight and drain). Drain is never in a file, so running's is kept
//     for every target that stays. The targets are newFile's in its order,
//     then those only running has, in running's order.
//   - a target group's attributes, by key, compared as Attributes renders
//     them: where newFile's value differs from oldFile's, newFile's;
//     otherwise running's.
//
// Everything else (listeners, rules, certificates, health checks, protocol
// versions, discovery settings, which groups exist, state_dir, cookie_keys, admin) is newFile's: a
// group newFile adds has no runtime changes, and one it removes is gone.
// With no runtime changes (running equal to oldFile), merged is a copy of
// newFile. merged shares nothing with the inputs, and it is not validated:
// a runtime change and the file's may not go together, so the caller
// validates merged as any config. A nil oldFile or running has no runtime
// changes.
func Rebase(oldFile, running, newFile *Config) (merged *Config, overridden []string) {
	merged = newFile.Clone()
	if oldFile == nil || running == nil {
		return merged, nil
	}
	for i := range merged.TargetGroups {
		g := &merged.TargetGroups[i]
		og, rg := oldFile.TargetGroup(g.Name), running.TargetGroup(g.Name)
		if og == nil || rg == nil {
			continue // a group the file adds: nothing changed it at run time
		}
		where := fmt.Sprintf("target_groups[%d] (%q)", i, g.Name)
		overridden = append(overridden, rebaseTargets(g, og, rg, where)...)
		overridden = append(overridden, rebaseAttributes(g, og, rg, where)...)
	}
	return merged, overridden
}

// slot is a target's state in one config: registered or not, and how.
type slot struct {
	registered bool
	Target
}

func slotOf(g *TargetGroup, id string) slot {
	if t := g.Target(id); t != nil {
		return slot{true, *t}
	}
	return slot{}
}

// rebaseTargets sets g's targets, newFile's so far, to the rebased ones.
func rebaseTargets(g, oldG, runG *TargetGroup, where string) (overridden []string) {
	var ids []string
	seen := map[string]bool{}
	for _, ts := range [][]Target{g.Targets, oldG.Targets, runG.Targets} {
		for _, t := range ts {
			if !seen[t.ID] {
				seen[t.ID] = true
				ids = append(ids, t.ID)
			}
		}
	}
	taken := make(map[string]slot, len(ids))
	for _, id := range ids {
		o, r, n := slotOf(oldG, id), slotOf(runG, id), slotOf(g, id) // oldFile's, running's, newFile's
		if n.registered == o.registered && (!n.registered || n.Weight == o.Weight) {
			taken[id] = r // the file did not change it
			continue
		}
		if n.registered && r.registered && (r.Drain == nil || !r.Drain.Discovery) {
			// An operator's drain stays; discovery's does not: the file now
			// lists the target, and discovery no longer owns it.
			n.Drain = cloneDrain(r.Drain)
		}
		taken[id] = n
		if lost := lostChange(o, r, n); lost != "" {
			overridden = append(overridden, fmt.Sprintf("%s: target %s: %s", where, id, lost))
		}
	}

	var out []Target
	if g.Targets != nil {
		out = make([]Target, 0, len(ids))
	}
	placed := map[string]bool{}
	for _, ts := range [][]Target{g.Targets, runG.Targets} {
		for _, t := range ts {
			if s := taken[t.ID]; s.registered && !placed[t.ID] {
				placed[t.ID] = true
				s.Drain = cloneDrain(s.Drain)
				out = append(out, s.Target)
			}
		}
	}
	g.Targets = out
	return overridden
}

func cloneDrain(d *Drain) *Drain {
	if d == nil {
		return nil
	}
	c := *d
	return &c
}

// lostChange describes the runtime change to a target (o in oldFile, r
// running) that taking the file's n undoes, or returns "".
func lostChange(o, r, n slot) string {
	if !r.registered {
		if o.registered && n.registered {
			return fmt.Sprintf("deregistered at run time, the file now lists it with weight %d", n.Weight)
		}
		return ""
	}
	registered := !o.registered
	weighted := o.registered && r.Weight != o.Weight
	drained := r.Drain != nil && o.Drain == nil
	if n.registered { // its drain is kept: only a weight can be lost
		switch {
		case n.Weight == r.Weight:
		case registered:
			return fmt.Sprintf("registered at run time with weight %d, the file now says %d", r.Weight, n.Weight)
		case weighted:
			return fmt.Sprintf("weight %d set at run time, the file now says %d", r.Weight, n.Weight)
		}
		return ""
	}
	var did []string
	if registered {
		did = append(did, fmt.Sprintf("registered with weight %d", r.Weight))
	}
	if weighted {
		did = append(did, fmt.Sprintf("weight %d set", r.Weight))
	}
	if drained {
		did = append(did, "drained")
	}
	if len(did) == 0 {
		return ""
	}
	return strings.Join(did, " and ") + " at run time, the file now removes it"
}

// rebaseAttributes sets each attribute of g, newFile's so far, that the
// file did not change to running's.
func rebaseAttributes(g, oldG, runG *TargetGroup, where string) (overridden []string) {
	oa, ra, na := oldG.Attributes(), runG.Attributes(), g.Attributes()
	for _, a := range groupAttributes {
		k := a.key
		switch {
		case na[k] != oa[k]: // the file changed it
			if ra[k] != oa[k] && ra[k] != na[k] {
				overridden = append(overridden, fmt.Sprintf("%s: attribute %s: %s set at run time, the file now says %s",
					where, k, shown(ra[k]), shown(na[k])))
			}
		case ra[k] != na[k]:
			if err := g.SetAttribute(k, ra[k]); err != nil {
				// Running holds what no file can hold; the file's stays.
				overridden = append(overridden, fmt.Sprintf("%s: attribute %s: %s set at run time does not carry over (%v), the file says %s",
					where, k, shown(ra[k]), err, shown(na[k])))
			}
		}
	}
	return overridden
}

// shown is an attribute's value in a line of Rebase's, "" shown as such.
func shown(v string) string {
	if v == "" {
		return `""`
	}
	return v
}

// CheckRuntimeChange checks that next differs from running only in what
// runtime changes own (see Rebase): each group's targets (registered or
// not, their weight and drain) and its attributes. What else a change
// touched (a listener, which groups exist, a health check, a protocol
// version, discovery settings, state_dir, cookie_keys, admin) belongs to the file, whose next reload
// would silently undo it: the error is a Problems naming each such path,
// or nil.
func CheckRuntimeChange(running, next *Config) error {
	var ps Problems
	owned := func(path string) {
		ps = append(ps, Problem{Path: path, Msg: "set by the config file: a runtime change cannot change it (edit the file and reload)"})
	}
	if len(next.Listeners) != len(running.Listeners) {
		owned("listeners")
	} else {
		for i := range next.Listeners {
			if !reflect.DeepEqual(next.Listeners[i], running.Listeners[i]) {
				owned(fmt.Sprintf("listeners[%d]", i))
			}
		}
	}
	if len(next.TargetGroups) != len(running.TargetGroups) {
		owned("target_groups")
	} else {
		for i := range next.TargetGroups {
			ng, rg := &next.TargetGroups[i], &running.TargetGroups[i]
			path := fmt.Sprintf("target_groups[%d]", i)
			// A group's name, protocol version and health check are the
			// file's; its targets and attributes, runtime changes' too.
			if ng.Name != rg.Name {
				owned(path + ".name")
			}
			if ng.ProtocolVersion != rg.ProtocolVersion {
				owned(path + ".protocol_version")
			}
			if !reflect.DeepEqual(ng.HealthCheck, rg.HealthCheck) {
				owned(path + ".health_check")
			}
			if !sameDiscovery(ng.Discovery, rg.Discovery) {
				owned(path + ".discovery")
			}
		}
	}
	if next.StateDir != running.StateDir {
		owned("state_dir")
	}
	if !reflect.DeepEqual(next.CookieKeys, running.CookieKeys) {
		owned("cookie_keys")
	}
	if !reflect.DeepEqual(next.AccessLog, running.AccessLog) {
		owned("access_log")
	}
	if next.Admin != running.Admin {
		owned("admin")
	}
	if !reflect.DeepEqual(next.Cluster, running.Cluster) {
		owned("cluster")
	}
	if len(ps) == 0 {
		return nil
	}
	return ps
}
