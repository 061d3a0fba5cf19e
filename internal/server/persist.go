package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/state"
)

// Runtime changes persist: every committed change writes what runtime
// changes own (config.Rebase says what: each group's targets, with weight
// and drain, and its attributes) of both the file's config and the running
// one, and the first Apply of a process rebases the file it is given on
// them, as a reload would: the runtime changes made before the restart
// come back, unless the file changed the same item meanwhile.

// RuntimeStore is a Store that keeps the runtime changes too, as bytes the
// server encodes. state.Dir is one; a Store that is not keeps them for the
// life of the process only.
type RuntimeStore interface {
	// SaveRuntime stores data in place of what it held, atomically.
	SaveRuntime(ctx context.Context, data []byte) error
	// LoadRuntime returns what SaveRuntime stored last, or nil when
	// nothing was.
	LoadRuntime(ctx context.Context) ([]byte, error)
}

var _ RuntimeStore = (*state.Dir)(nil)

// runtimeVersion is the format of the runtime state's encoding.
const runtimeVersion = 1

// runtimeState is what persists of the runtime changes.
type runtimeState struct {
	Version int            `json:"version"`
	File    []runtimeGroup `json:"file"`
	Running []runtimeGroup `json:"running"`
}

type runtimeGroup struct {
	Name       string            `json:"name"`
	Targets    []runtimeTarget   `json:"targets"`
	Attributes map[string]string `json:"attributes"`
}

type runtimeTarget struct {
	ID         string        `json:"id"`
	Weight     int           `json:"weight"`
	Drain      *runtimeDrain `json:"drain,omitempty"`
	Discovered bool          `json:"discovered,omitempty"`
}

type runtimeDrain struct {
	Mode     string    `json:"mode"`
	Idle     string    `json:"idle"`
	Deadline string    `json:"deadline"`
	Since    time.Time `json:"since"`
	// Discovery: discovery drained the target (config.Drain.Discovery).
	Discovery bool `json:"discovery,omitempty"`
}

func runtimeGroups(cfg *config.Config) []runtimeGroup {
	out := make([]runtimeGroup, 0, len(cfg.TargetGroups))
	for i := range cfg.TargetGroups {
		g := &cfg.TargetGroups[i]
		rg := runtimeGroup{Name: g.Name, Targets: make([]runtimeTarget, 0, len(g.Targets)), Attributes: g.Attributes()}
		for _, t := range g.Targets {
			rt := runtimeTarget{ID: t.ID, Weight: t.Weight, Discovered: t.Discovered}
			if d := t.Drain; d != nil {
				rt.Drain = &runtimeDrain{Mode: d.Mode.String(), Idle: d.Idle.String(), Deadline: d.Deadline.String(), Since: d.Since, Discovery: d.Discovery}
			}
			rg.Targets = append(rg.Targets, rt)
		}
		out = append(out, rg)
	}
	return out
}

// encodeRuntime encodes the runtime-owned parts of file and running.
func encodeRuntime(file, running *config.Config) ([]byte, error) {
	return json.MarshalIndent(runtimeState{Version: runtimeVersion, File: runtimeGroups(file), Running: runtimeGroups(running)}, "", "  ")
}

// decodeRuntime decodes what encodeRuntime made into two configs that hold
// only what runtime changes own: what config.Rebase reads of its oldFile
// and running.
func decodeRuntime(data []byte) (file, running *config.Config, err error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var st runtimeState
	if err := dec.Decode(&st); err != nil {
		return nil, nil, err
	}
	if st.Version != runtimeVersion {
		return nil, nil, fmt.Errorf("version %d is not %d", st.Version, runtimeVersion)
	}
	if file, err = runtimeConfig(st.File, "file"); err != nil {
		return nil, nil, err
	}
	if running, err = runtimeConfig(st.Running, "running"); err != nil {
		return nil, nil, err
	}
	return file, running, nil
}

func runtimeConfig(groups []runtimeGroup, where string) (*config.Config, error) {
	cfg := &config.Config{}
	for i, rg := range groups {
		path := fmt.Sprintf("%s[%d] (%q)", where, i, rg.Name)
		g := config.TargetGroup{Name: rg.Name, Targets: []config.Target{}}
		for k, v := range rg.Attributes {
			if err := g.SetAttribute(k, v); err != nil {
				return nil, fmt.Errorf("%s: attribute %s: %v", path, k, err)
			}
		}
		for j, rt := range rg.Targets {
			t := config.Target{ID: rt.ID, Weight: rt.Weight, Discovered: rt.Discovered}
			if rd := rt.Drain; rd != nil {
				d, err := decodeDrain(rd)
				if err != nil {
					return nil, fmt.Errorf("%s: targets[%d] (%s): drain: %v", path, j, rt.ID, err)
				}
				t.Drain = d
			}
			g.Targets = append(g.Targets, t)
		}
		cfg.TargetGroups = append(cfg.TargetGroups, g)
	}
	return cfg, nil
}

func decodeDrain(rd *runtimeDrain) (*config.Drain, error) {
	mode, err := config.ParseDrainMode(rd.Mode)
	if err != nil {
		return nil, err
	}
	idle, err := time.ParseDuration(rd.Idle)
	if err != nil {
		return nil, fmt.Errorf("idle: %v", err)
	}
	deadline, err := time.ParseDuration(rd.Deadline)
	if err != nil {
		return nil, fmt.Errorf("deadline: %v", err)
	}
	return &config.Drain{Mode: mode, Idle: idle, Deadline: deadline, Since: rd.Since, Discovery: rd.Discovery}, nil
}

// runtimeStore returns where store keeps the runtime changes, and a name
// for them in messages; nil when it does not keep them.
func runtimeStore(store Store, dir *state.Dir) (RuntimeStore, string) {
	if dir != nil {
		return dir, dir.RuntimePath()
	}
	if rs, ok := store.(RuntimeStore); ok {
		return rs, "the store's runtime changes"
	}
	return nil, ""
}

// restoreRuntime is the first Apply's: it returns file rebased on the
// runtime changes store kept, and the changes the file overrides. A state
// that cannot be read is an error that names it: latch does not start on
// a guess.
func restoreRuntime(ctx context.Context, store Store, dir *state.Dir, file *config.Config) (*config.Config, []string, error) {
	if shared, ok := store.(SharedStore); ok {
		next, err := shared.Restore(ctx, nil, file)
		return next, nil, err
	}
	rs, name := runtimeStore(store, dir)
	if rs == nil {
		return file.Clone(), nil, nil
	}
	data, err := rs.LoadRuntime(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("runtime changes: %s: %v", name, err)
	}
	if data == nil {
		return file.Clone(), nil, nil
	}
	savedFile, savedRunning, err := decodeRuntime(data)
	if err != nil {
		return nil, nil, fmt.Errorf("runtime changes: %s is corrupt: %v (delete it to start from the config file alone)", name, err)
	}
	merged, overridden := config.Rebase(savedFile, savedRunning, file)
	return merged, overridden, nil
}

// saveRuntime stores the runtime changes of running over file.
func saveRuntime(ctx context.Context, store Store, dir *state.Dir, file, running *config.Config) error {
	rs, name := runtimeStore(store, dir)
	if rs == nil {
		return nil
	}
	data, err := encodeRuntime(file, running)
	if err == nil {
		err = rs.SaveRuntime(ctx, data)
	}
	if err != nil {
		return fmt.Errorf("runtime changes: %s: %v", name, err)
	}
	return nil
}
