package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/server"
	"github.com/latch-lb/latch/internal/state"
)

// TestRuntimeChangesSurviveProcessRestart: a drain made at run time by a
// latch on a state_dir holds in the latch process started on it next,
// and through its SIGHUP reload.
func TestRuntimeChangesSurviveProcessRestart(t *testing.T) {
	dir := t.TempDir()
	a, b := backend(t, "a", 0), backend(t, "b", 0)
	addr := freeAddr(t)
	cfgPath := filepath.Join(dir, "latch.yaml")
	if err := os.WriteFile(cfgPath, []byte(configYAML(addr, []string{a, b}, dir)), 0o644); err != nil {
		t.Fatal(err)
	}

	// A latch on this state_dir drains b at run time (as the admin API
	// does), then stops.
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listeners[0].Address = "127.0.0.1:0"
	s, err := server.New(server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if err := s.Drain(t.Context(), "web", b, config.Drain{Mode: config.DrainImmediate}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	p := startLatch(t, cfgPath, addr)
	p.waitLog(t, "to=healthy", 2)
	check := func(when string) {
		for i := range 10 {
			if body, _ := fetch(t, p.url, ""); body != "a" {
				t.Fatalf("%s: request %d went to %q, want a (b was drained before the restart)", when, i, body)
			}
		}
	}
	check("after the restart")
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, "config reloaded", 1)
	check("after a reload")
}

// TestCorruptRuntimeStateStopsTheStart: latch refuses to start on a
// runtime state file it cannot read, naming it and saying what to do.
func TestCorruptRuntimeStateStopsTheStart(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	cfgPath := filepath.Join(dir, "latch.yaml")
	if err := os.WriteFile(cfgPath, []byte(configYAML(addr, []string{backend(t, "a", 0)}, dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	stateFile := filepath.Join(dir, state.RuntimeFile)
	if err := os.WriteFile(stateFile, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd := exec.Command(latchBin, "serve", "-config", cfgPath)
	cmd.Stderr = &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if code := exitCode(err); code != 1 {
			t.Errorf("exit code %d, want 1", code)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("latch did not exit within 10 s on a corrupt state file")
	}
	if out := stderr.String(); !strings.Contains(out, stateFile) || !strings.Contains(out, "delete it") {
		t.Errorf("stderr %q does not name %s and say to delete it", out, stateFile)
	}
}
