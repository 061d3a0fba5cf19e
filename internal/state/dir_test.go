package state

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestKeys(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "state")
	k1, err := NewDir(dir).Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, KeysFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	k2, err := NewDir(dir).Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(k1) != 1 || len(k2) != 1 || k1[0].ID != k2[0].ID || !bytes.Equal(k1[0].Secret, k2[0].Secret) {
		t.Fatalf("the second load did not return the first key: %v vs %v", k1, k2)
	}
	os.WriteFile(filepath.Join(dir, KeysFile), []byte(`{"keys":[{"id":3,"secret":"c2hvcnQ="}]}`), 0o600)
	if _, err := NewDir(dir).Keys(ctx); err == nil || !strings.Contains(err.Error(), "key 3") {
		t.Errorf("a short secret: got %v, want an error naming key 3", err)
	}
}

// TestRegistrations checks the generations' rules: a registration keeps its
// generation, across a new Dir on the same files too (a restart); a new one
// gets a generation never handed out before, also after a restart; and one
// deregistered and registered again gets a new one.
func TestRegistrations(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir()
	d := NewDir(path)
	g1, err := d.Registrations(ctx, map[string][]Registration{"web": regs("a:1", "b:1"), "api": regs("c:1")})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]uint64{"web": {"a:1": g1["web"]["a:1"], "b:1": g1["web"]["b:1"]}, "api": {"c:1": g1["api"]["c:1"]}}
	if !reflect.DeepEqual(g1, want) {
		t.Fatalf("got %v", g1)
	}
	seen := map[uint64]bool{}
	for _, gens := range g1 {
		for id, gen := range gens {
			if gen == 0 || seen[gen] {
				t.Errorf("%s: generation %d is 0 or handed out twice", id, gen)
			}
			seen[gen] = true
		}
	}

	// A restart reads the same generations.
	d = NewDir(path)
	g2, err := d.Registrations(ctx, map[string][]Registration{"web": regs("a:1", "b:1"), "api": regs("c:1")})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g2, g1) {
		t.Errorf("after a restart: got %v, want %v", g2, g1)
	}

	// b:1 deregistered, then registered again; a new target d:1.
	if _, err := d.Registrations(ctx, map[string][]Registration{"web": regs("a:1"), "api": regs("c:1")}); err != nil {
		t.Fatal(err)
	}
	d = NewDir(path)
	g3, err := d.Registrations(ctx, map[string][]Registration{"web": regs("a:1", "b:1", "d:1")})
	if err != nil {
		t.Fatal(err)
	}
	if g3["web"]["a:1"] != g1["web"]["a:1"] {
		t.Errorf("a:1 stayed registered but its generation moved from %d to %d", g1["web"]["a:1"], g3["web"]["a:1"])
	}
	for _, id := range []string{"b:1", "d:1"} {
		if gen := g3["web"][id]; seen[gen] {
			t.Errorf("%s registered anew got generation %d, handed out before", id, gen)
		}
	}
	if g3["web"]["b:1"] == g3["web"]["d:1"] {
		t.Errorf("b:1 and d:1 got the same generation %d", g3["web"]["b:1"])
	}
	// The api group left the config: a later registration of c:1 is new.
	g4, err := NewDir(path).Registrations(ctx, map[string][]Registration{"api": regs("c:1")})
	if err != nil {
		t.Fatal(err)
	}
	if g4["api"]["c:1"] == g1["api"]["c:1"] {
		t.Errorf("c:1 registered again after its group left kept generation %d", g4["api"]["c:1"])
	}
}

// TestRegistrationsWriteFailure checks that generations are still handed
// out when the file cannot be written, and written once it can.
func TestRegistrationsWriteFailure(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state")
	d := NewDir(path)
	if _, err := d.Registrations(ctx, map[string][]Registration{"web": regs("b:1")}); err != nil {
		t.Fatal(err)
	}
	// A file where the directory was: no file can be written there,
	// whoever runs the test (root ignores permissions).
	os.RemoveAll(path)
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	gens, err := d.Registrations(ctx, map[string][]Registration{"web": regs("a:1")})
	if err == nil || gens["web"]["a:1"] == 0 {
		t.Fatalf("unwritable directory: got %v, %v; want a generation and an error", gens, err)
	}
	os.Remove(path)
	if _, err := d.Registrations(ctx, map[string][]Registration{"web": regs("a:1")}); err != nil {
		t.Fatal(err)
	}
	again, err := NewDir(path).Registrations(ctx, map[string][]Registration{"web": regs("a:1")})
	if err != nil || again["web"]["a:1"] != gens["web"]["a:1"] {
		t.Errorf("after the directory became writable: got %v, %v; want generation %d kept", again, err, gens["web"]["a:1"])
	}
}

func TestCorruptRegistry(t *testing.T) {
	path := t.TempDir()
	os.WriteFile(filepath.Join(path, TargetsFile), []byte("{not json"), 0o600)
	_, err := NewDir(path).Registrations(context.Background(), map[string][]Registration{"web": regs("a:1")})
	if err == nil || !strings.Contains(err.Error(), TargetsFile) {
		t.Errorf("got %v, want an error naming %s", err, TargetsFile)
	}
}

// regs makes registrations of new targets (generation 0).
func regs(ids ...string) []Registration {
	out := make([]Registration, len(ids))
	for i, id := range ids {
		out[i] = Registration{ID: id}
	}
	return out
}

// TestRegistrationsAdoptRunning: a state directory that changes under a
// running latch (state_dir reloaded) takes the generations the targets run
// with, and hands out new ones past them.
func TestRegistrationsAdoptRunning(t *testing.T) {
	ctx := context.Background()
	d := NewDir(t.TempDir())
	gens, err := d.Registrations(ctx, map[string][]Registration{"web": {{ID: "a:1", Generation: 7}, {ID: "b:1", Generation: 3}, {ID: "c:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if gens["web"]["a:1"] != 7 || gens["web"]["b:1"] != 3 || gens["web"]["c:1"] <= 7 {
		t.Errorf("got %v, want a:1 7, b:1 3 and c:1 a generation past 7", gens["web"])
	}
	// What a directory has stored wins over what runs: it was registered
	// anew elsewhere.
	again, err := d.Registrations(ctx, map[string][]Registration{"web": {{ID: "a:1", Generation: 99}}})
	if err != nil || again["web"]["a:1"] != 7 {
		t.Errorf("got %v, %v; want the stored 7", again, err)
	}
}
