package cluster

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/sticky"
)

// The cluster's keys, under its prefix P:
//
//	P/groups/G               the group's attributes: {"attributes": {...}}
//	P/groups/G/targets/ID    a registration: {"weight", "generation", "drain"}
//	P/generation             the next target generation, in decimal
//	P/keys                   the cookie key ring
//	P/nodes/NAME             a node's record, under its lease
//
// Each is small and written alone, so that a change moves one key and a
// watcher receives that key, never the whole tree.

// groupRecord is P/groups/G.
type groupRecord struct {
	Attributes map[string]string `json:"attributes"`
}

// targetRecord is P/groups/G/targets/ID.
type targetRecord struct {
	Weight     int          `json:"weight"`
	Generation uint64       `json:"generation"`
	Drain      *drainRecord `json:"drain,omitempty"`
	// Discovered says DNS discovery registered the target.
	Discovered bool `json:"discovered,omitempty"`
}

type drainRecord struct {
	Mode     string    `json:"mode"`
	Idle     string    `json:"idle"`
	Deadline string    `json:"deadline"`
	Since    time.Time `json:"since"`
	// Discovery says DNS discovery drained the target (its name no
	// longer gives it).
	Discovery bool `json:"discovery,omitempty"`
}

func drainToRecord(d *config.Drain) *drainRecord {
	if d == nil {
		return nil
	}
	return &drainRecord{Mode: d.Mode.String(), Idle: d.Idle.String(), Deadline: d.Deadline.String(), Since: d.Since.UTC(),
		Discovery: d.Discovery}
}

// record is t's registration as the cluster keeps it.
func record(t config.Target, gen uint64) targetRecord {
	return targetRecord{Weight: t.Weight, Generation: gen, Drain: drainToRecord(t.Drain), Discovered: t.Discovered}
}

func (r *drainRecord) drain() (*config.Drain, error) {
	if r == nil {
		return nil, nil
	}
	mode, err := config.ParseDrainMode(r.Mode)
	if err != nil {
		return nil, err
	}
	idle, err := time.ParseDuration(r.Idle)
	if err != nil {
		return nil, fmt.Errorf("idle: %v", err)
	}
	deadline, err := time.ParseDuration(r.Deadline)
	if err != nil {
		return nil, fmt.Errorf("deadline: %v", err)
	}
	return &config.Drain{Mode: mode, Idle: idle, Deadline: deadline, Since: r.Since, Discovery: r.Discovery}, nil
}

func (r targetRecord) equal(o targetRecord) bool {
	if r.Weight != o.Weight || r.Generation != o.Generation || r.Discovered != o.Discovered || (r.Drain == nil) != (o.Drain == nil) {
		return false
	}
	return r.Drain == nil || (*r.Drain == *o.Drain || (r.Drain.Mode == o.Drain.Mode && r.Drain.Idle == o.Drain.Idle &&
		r.Drain.Deadline == o.Drain.Deadline && r.Drain.Since.Equal(o.Drain.Since) && r.Drain.Discovery == o.Drain.Discovery))
}

// keyRecord is one key of P/keys.
type keyRecord struct {
	ID     uint32    `json:"id"`
	Secret string    `json:"secret"` // standard base64, 32 bytes
	State  keyState  `json:"state"`
	Added  time.Time `json:"added"`
	// Sealing is when the key began to seal (zero: not yet); Retire, for
	// a key no longer sealing, when it leaves the ring.
	Sealing time.Time `json:"sealing,omitzero"`
	Retire  time.Time `json:"retire,omitzero"`
}

// keyState is a key's place in a rotation: added (opening only, until
// every node has it), sealing (the one key that seals), old (opening only,
// until its cookies have expired).
type keyState string

const (
	keyAdded   keyState = "added"
	keySealing keyState = "sealing"
	keyOld     keyState = "old"
)

// keyRing is P/keys.
type keyRing struct {
	Keys []keyRecord `json:"keys"`
}

// ring returns the keys in a sticky key ring's order: the sealing key
// first.
func (r keyRing) ring() ([]sticky.Key, error) {
	var out []sticky.Key
	for _, k := range r.Keys {
		secret, err := base64.StdEncoding.DecodeString(k.Secret)
		if err != nil || len(secret) != 32 {
			return nil, fmt.Errorf("cookie key %d: the secret is not 32 bytes of standard base64", k.ID)
		}
		key := sticky.Key{ID: k.ID, Secret: secret}
		if k.State == keySealing {
			out = append([]sticky.Key{key}, out...)
		} else {
			out = append(out, key)
		}
	}
	if len(out) == 0 || r.sealing() == nil {
		return nil, fmt.Errorf("the cookie key ring has no sealing key")
	}
	return out, nil
}

func (r keyRing) sealing() *keyRecord {
	for i := range r.Keys {
		if r.Keys[i].State == keySealing {
			return &r.Keys[i]
		}
	}
	return nil
}

func (r keyRing) ids() []uint32 {
	ids := make([]uint32, len(r.Keys))
	for i, k := range r.Keys {
		ids[i] = k.ID
	}
	slices.Sort(ids)
	return ids
}

// NodeRecord is P/nodes/NAME: what a node publishes of itself, under a
// lease, so that it goes when the node does.
type NodeRecord struct {
	Name    string    `json:"name"`
	Admin   string    `json:"admin"` // its admin API's address; "" when off
	Version string    `json:"version"`
	Started time.Time `json:"started"`
	// Updated is when the node wrote this, by its clock: the other nodes
	// know its sessions up to then.
	Updated time.Time `json:"updated"`
	// Revision is the etcd revision of the shared state it has applied.
	Revision int64 `json:"revision"`
	// Health is the node's own health checks' view: group -> target ->
	// state, as ALB's nodes each check for themselves.
	Health map[string]map[string]string `json:"health"`
	// Sessions are, for each target drained at run time, the node's
	// last session on it and the distinct sessions it saw within the
	// drain's idle window.
	Sessions map[string]map[string]NodeSessions `json:"sessions,omitempty"`
	// Keys are the ids of the cookie keys the node opens cookies with.
	Keys []uint32 `json:"keys"`
	// OwnKeys says the node's file sets cookie_keys: it takes no part in
	// the cluster's key rotations.
	OwnKeys bool `json:"own_keys,omitempty"`
}

// memberTimeout is how long a member that stopped reporting (its lease
// expired, its durable record left) still counts for key rotations and
// drains: a node cut off from etcd may serve on meanwhile. Past it, the
// node is presumed gone.
const memberTimeout = 10 * time.Minute

// peers are the nodes whose reports count for this node's key rotations
// and drains: every live node, and every member that stopped reporting
// less than memberTimeout ago, but self.
func (m *mirror) peers(self string, now time.Time) []NodeRecord {
	var out []NodeRecord
	for name, n := range m.Nodes {
		if name != self {
			out = append(out, n)
		}
	}
	for name, n := range m.Members {
		if _, live := m.Nodes[name]; live || name == self || now.Sub(n.Updated) > memberTimeout {
			continue
		}
		out = append(out, n)
	}
	return out
}

// NodeSessions is a node's view of a drained target's sessions.
type NodeSessions struct {
	LastSession time.Time `json:"last_session,omitzero"`
	Left        int       `json:"left"`
	Complete    bool      `json:"complete"`
}

// mirror is the shared state as this node last read it from etcd, with
// each key's mod revision: writes are conditioned on them.
type mirror struct {
	Rev     int64                   `json:"revision"`
	Groups  map[string]*sharedGroup `json:"groups"`
	NextGen uint64                  `json:"next_generation"`
	GenMod  int64                   `json:"generation_mod_revision"`
	Keys    keyRing                 `json:"keys"`
	KeysMod int64                   `json:"keys_mod_revision"`
	// Nodes are not kept in a snapshot: they are live, under leases.
	Nodes map[string]NodeRecord `json:"-"`
	// Members are the nodes' durable records (P/members/NAME, no lease):
	// a node whose lease expired while it may still serve (cut off from
	// etcd) stays a member, whose last report counts, until it leaves
	// cleanly or memberTimeout passes.
	Members map[string]NodeRecord `json:"-"`
}

type sharedGroup struct {
	Attributes map[string]string        `json:"attributes"`
	Mod        int64                    `json:"mod_revision"`
	Targets    map[string]*sharedTarget `json:"targets"`
}

type sharedTarget struct {
	targetRecord
	Mod int64 `json:"mod_revision"`
}

func newMirror() *mirror {
	return &mirror{Groups: map[string]*sharedGroup{}, Nodes: map[string]NodeRecord{}, Members: map[string]NodeRecord{}, NextGen: 1}
}

func (m *mirror) group(name string) *sharedGroup {
	g := m.Groups[name]
	if g == nil {
		g = &sharedGroup{Targets: map[string]*sharedTarget{}}
		m.Groups[name] = g
	}
	return g
}

// put applies one key's new value at revision mod. A value that cannot be
// read is an error that names its key; the mirror keeps what it had.
func (m *mirror) put(rel string, value []byte, mod int64) error {
	switch {
	case rel == "generation":
		n, err := strconv.ParseUint(string(value), 10, 64)
		if err != nil || n == 0 {
			return fmt.Errorf("%q is not a generation", value)
		}
		m.NextGen, m.GenMod = n, mod
	case rel == "keys":
		var r keyRing
		if err := json.Unmarshal(value, &r); err != nil {
			return err
		}
		if _, err := r.ring(); err != nil {
			return err
		}
		m.Keys, m.KeysMod = r, mod
	case strings.HasPrefix(rel, "nodes/"), strings.HasPrefix(rel, "members/"):
		var n NodeRecord
		if err := json.Unmarshal(value, &n); err != nil {
			return err
		}
		if name, ok := strings.CutPrefix(rel, "nodes/"); ok {
			m.Nodes[name] = n
		} else {
			m.Members[strings.TrimPrefix(rel, "members/")] = n
		}
	case strings.HasPrefix(rel, "groups/"):
		group, id, isTarget := splitGroupKey(rel)
		if group == "" {
			return fmt.Errorf("not a group's key")
		}
		if !isTarget {
			var r groupRecord
			if err := json.Unmarshal(value, &r); err != nil {
				return err
			}
			g := m.group(group)
			g.Attributes, g.Mod = r.Attributes, mod
			return nil
		}
		var r targetRecord
		if err := json.Unmarshal(value, &r); err != nil {
			return err
		}
		if _, err := r.Drain.drain(); err != nil {
			return fmt.Errorf("drain: %v", err)
		}
		if r.Generation == 0 || r.Weight < 1 || r.Weight > 1000 {
			return fmt.Errorf("weight %d or generation %d out of range", r.Weight, r.Generation)
		}
		m.group(group).Targets[id] = &sharedTarget{targetRecord: r, Mod: mod}
	}
	// Other keys are a later version's: ignored.
	return nil
}

// del applies one key's deletion.
func (m *mirror) del(rel string) {
	switch {
	case strings.HasPrefix(rel, "nodes/"):
		delete(m.Nodes, strings.TrimPrefix(rel, "nodes/"))
	case strings.HasPrefix(rel, "members/"):
		delete(m.Members, strings.TrimPrefix(rel, "members/"))
	case strings.HasPrefix(rel, "groups/"):
		group, id, isTarget := splitGroupKey(rel)
		if g := m.Groups[group]; g != nil {
			if isTarget {
				delete(g.Targets, id)
			} else {
				delete(m.Groups, group)
			}
		}
	}
}

// splitGroupKey reads "groups/G" or "groups/G/targets/ID".
func splitGroupKey(rel string) (group, id string, isTarget bool) {
	rest := strings.TrimPrefix(rel, "groups/")
	group, id, isTarget = strings.Cut(rest, "/targets/")
	if strings.Contains(group, "/") || (isTarget && id == "") {
		return "", "", false
	}
	return group, id, isTarget
}

// clone copies m deeply enough for a snapshot writer to encode it while
// the watch goes on.
func (m *mirror) clone() *mirror {
	c := *m
	c.Groups = make(map[string]*sharedGroup, len(m.Groups))
	for name, g := range m.Groups {
		cg := &sharedGroup{Attributes: maps.Clone(g.Attributes), Mod: g.Mod, Targets: make(map[string]*sharedTarget, len(g.Targets))}
		for id, t := range g.Targets {
			ct := *t
			cg.Targets[id] = &ct
		}
		c.Groups[name] = cg
	}
	c.Keys.Keys = slices.Clone(m.Keys.Keys)
	c.Nodes = maps.Clone(m.Nodes)
	c.Members = maps.Clone(m.Members)
	return &c
}

// overlay puts the shared state of every group m has into cfg, in place
// of cfg's targets and attributes (for the groups only selects, when it is
// not nil). Targets keep cfg's order; new ones follow, by id.
func (m *mirror) overlay(cfg *config.Config, selects func(string) bool) error {
	for i := range cfg.TargetGroups {
		gc := &cfg.TargetGroups[i]
		sg := m.Groups[gc.Name]
		if sg == nil || (selects != nil && !selects(gc.Name)) {
			continue
		}
		for k, v := range sg.Attributes {
			if err := gc.SetAttribute(k, v); err != nil {
				return fmt.Errorf("target group %q: attribute %s from etcd: %v", gc.Name, k, err)
			}
		}
		targets := make([]config.Target, 0, len(sg.Targets))
		seen := map[string]bool{}
		add := func(id string) error {
			st := sg.Targets[id]
			d, err := st.Drain.drain()
			if err != nil {
				return fmt.Errorf("target group %q: target %s from etcd: drain: %v", gc.Name, id, err)
			}
			targets = append(targets, config.Target{ID: id, Weight: st.Weight, Drain: d, Discovered: st.Discovered})
			seen[id] = true
			return nil
		}
		for _, t := range gc.Targets {
			if sg.Targets[t.ID] != nil {
				if err := add(t.ID); err != nil {
					return err
				}
			}
		}
		for _, id := range slices.Sorted(maps.Keys(sg.Targets)) {
			if !seen[id] {
				if err := add(id); err != nil {
					return err
				}
			}
		}
		gc.Targets = targets
	}
	return nil
}
