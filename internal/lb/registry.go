package lb

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// registry remembers each registered target's generation in the state
// directory. A target that stays registered across a restart keeps its
// generation, so its sessions survive; a target deregistered and registered
// again gets a new one, so a new target reusing an address does not inherit
// the old one's sessions.
type registry struct {
	path string
	Next uint64                       `json:"next_generation"`
	Gens map[string]map[string]uint64 `json:"groups"`
}

const registryFile = "targets.json"

func loadRegistry(dir string) (*registry, error) {
	r := &registry{path: filepath.Join(dir, registryFile), Next: 1, Gens: map[string]map[string]uint64{}}
	data, err := os.ReadFile(r.path)
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, r); err != nil {
		return nil, fmt.Errorf("%s: %v", r.path, err)
	}
	if r.Gens == nil {
		r.Gens = map[string]map[string]uint64{}
	}
	return r, nil
}

// generation returns the generation of id in group, registering it if new.
func (r *registry) generation(group, id string) uint64 {
	g := r.Gens[group]
	if g == nil {
		g = map[string]uint64{}
		r.Gens[group] = g
	}
	if gen, ok := g[id]; ok {
		return gen
	}
	gen := r.Next
	r.Next++
	g[id] = gen
	return gen
}

// retain forgets every registration not in current (group -> ids).
func (r *registry) retain(current map[string]map[string]bool) {
	for group, ids := range r.Gens {
		for id := range ids {
			if !current[group][id] {
				delete(ids, id)
			}
		}
		if len(ids) == 0 {
			delete(r.Gens, group)
		}
	}
}

func (r *registry) save() error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(r.path), 0o700); err != nil {
		return err
	}
	tmp := r.path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, r.path)
}
