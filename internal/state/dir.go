// Package state keeps what latch must remember across restarts and what
// the nodes of a cluster must agree on: target registrations with their
// generations, and the cookie key ring. Dir keeps them in files.
package state

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/latch-lb/latch/internal/sticky"
)

// Dir keeps latch's state in a directory: the target registrations in
// targets.json and the generated cookie key ring in cookie-keys.json
// (mode 0600). Files are written atomically: a temporary file, fsync,
// rename. A Dir is safe for concurrent use.
type Dir struct {
	path string

	mu    sync.Mutex
	reg   *registry // nil until first read
	dirty bool      // reg holds what the last write of it failed to keep
}

// File names within the directory.
const (
	TargetsFile = "targets.json"
	KeysFile    = "cookie-keys.json"
)

// NewDir returns the store kept in the directory at path, which is made
// when something is first written.
func NewDir(path string) *Dir { return &Dir{path: path} }

// Path is the directory's path.
func (d *Dir) Path() string { return d.path }

// registry is targets.json: each registered target's generation, and the
// next generation to hand out. A generation is fixed when its registration
// is written here; a target deregistered and registered again gets a new
// one, so that a new target reusing an address does not inherit the old
// one's sessions.
type registry struct {
	Next uint64                       `json:"next_generation"`
	Gens map[string]map[string]uint64 `json:"groups"`
}

// Registration is one target of a group, as a store keeps it.
type Registration struct {
	ID string
	// Generation is the registration's generation: the one the target
	// runs with, or 0 for a target not yet running.
	Generation uint64
}

// Registrations makes the stored registrations exactly current (each
// group's targets, in order, with the generation each runs with) and
// returns the generation of each, by group and id: a registration already
// stored keeps its generation; a new one takes the one it runs with, if
// any (a state directory that changed under a running latch adopts what it
// runs), else the next never handed out; those not in current are
// forgotten. The generations are returned even when writing them failed
// (err then says so), so that latch serves on; a restart would then start
// new sessions on targets it could not record.
func (d *Dir) Registrations(_ context.Context, current map[string][]Registration) (map[string]map[string]uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.reg == nil {
		reg, err := d.loadRegistry()
		if err != nil {
			return nil, err
		}
		d.reg = reg
	}
	r := d.reg
	out := make(map[string]map[string]uint64, len(current))
	changed := d.dirty
	// Generations that targets run with are taken first, so that a new
	// one is never handed out twice.
	for _, regs := range current {
		for _, reg := range regs {
			r.Next = max(r.Next, reg.Generation+1)
		}
	}
	for group, regs := range current {
		stored := r.Gens[group]
		gens := make(map[string]uint64, len(regs))
		for _, reg := range regs {
			gen, ok := stored[reg.ID]
			switch {
			case ok:
			case reg.Generation != 0:
				gen = reg.Generation
				changed = true
			default:
				gen = r.Next
				r.Next++
				changed = true
			}
			gens[reg.ID] = gen
		}
		out[group] = gens
	}
	for group, stored := range r.Gens {
		if !maps.Equal(stored, out[group]) {
			changed = true
		}
	}
	if !changed {
		return out, nil
	}
	r.Gens = make(map[string]map[string]uint64, len(out))
	for group, gens := range out {
		if len(gens) > 0 {
			r.Gens[group] = maps.Clone(gens)
		}
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err == nil {
		err = d.write(TargetsFile, append(data, '\n'), 0o600)
	}
	d.dirty = err != nil
	return out, err
}

func (d *Dir) loadRegistry() (*registry, error) {
	r := &registry{Next: 1, Gens: map[string]map[string]uint64{}}
	path := filepath.Join(d.path, TargetsFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, r); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if r.Gens == nil {
		r.Gens = map[string]map[string]uint64{}
	}
	if r.Next == 0 {
		r.Next = 1
	}
	return r, nil
}

// keyFile is the JSON form of the key ring kept in the directory.
type keyFile struct {
	Keys []storedKey `json:"keys"`
}

type storedKey struct {
	ID      uint32    `json:"id"`
	Secret  string    `json:"secret"`
	Created time.Time `json:"created"`
}

// Keys returns the cookie key ring kept in the directory, the first key
// sealing, and makes a new random key the first time, so that a restart
// keeps every session where it was.
func (d *Dir) Keys(context.Context) ([]sticky.Key, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	path := filepath.Join(d.path, KeysFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		k, err := sticky.NewKey()
		if err != nil {
			return nil, err
		}
		f := keyFile{Keys: []storedKey{{k.ID, base64.StdEncoding.EncodeToString(k.Secret), time.Now().UTC().Truncate(time.Second)}}}
		data, _ := json.MarshalIndent(f, "", "  ")
		if err := d.write(KeysFile, append(data, '\n'), 0o600); err != nil {
			return nil, err
		}
		return []sticky.Key{k}, nil
	}
	if err != nil {
		return nil, err
	}
	var f keyFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if len(f.Keys) == 0 {
		return nil, fmt.Errorf("%s: no keys", path)
	}
	keys := make([]sticky.Key, len(f.Keys))
	for i, k := range f.Keys {
		secret, err := base64.StdEncoding.DecodeString(k.Secret)
		if err != nil || len(secret) != chacha20poly1305.KeySize {
			return nil, fmt.Errorf("%s: key %d: the secret is not 32 bytes of standard base64", path, k.ID)
		}
		keys[i] = sticky.Key{ID: k.ID, Secret: secret}
	}
	return keys, nil
}

// RuntimeFile is the file of the directory that keeps the runtime changes
// (the server encodes them: SaveRuntime and LoadRuntime only store bytes).
const RuntimeFile = "runtime.json"

// SaveRuntime writes the runtime changes' file atomically.
func (d *Dir) SaveRuntime(_ context.Context, data []byte) error {
	return d.write(RuntimeFile, data, 0o600)
}

// LoadRuntime reads the runtime changes' file; nil, nil when there is none.
func (d *Dir) LoadRuntime(context.Context) ([]byte, error) {
	b, err := os.ReadFile(d.RuntimePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// RuntimePath is the path of the runtime changes' file.
func (d *Dir) RuntimePath() string { return filepath.Join(d.path, RuntimeFile) }

// write writes data to name in the directory atomically: a temporary
// file, fsync, rename, fsync of the directory, so that a crash never
// leaves a half-written file, nor loses the rename.
func (d *Dir) write(name string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(d.path, 0o700); err != nil {
		return err
	}
	path := filepath.Join(d.path, name)
	tmp, err := os.CreateTemp(d.path, "."+name+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	dir, err := os.Open(d.path)
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// Save writes the directory's file name atomically, readable by its owner
// only (what a cluster node keeps of the shared state, for example).
func (d *Dir) Save(name string, data []byte) error { return d.write(name, data, 0o600) }

// Load reads the directory's file name; nil, nil when there is none.
func (d *Dir) Load(name string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(d.path, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}
