package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runLatch runs latch with args to its end, at most 10 s, and returns its
// exit code and standard error.
func runLatch(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, latchBin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("latch %v did not exit within 10 s:\n%s", args, stderr.String())
	}
	return exitCode(err), stderr.String()
}

// notListening fails t if something accepts connections on addr.
func notListening(t *testing.T, addr string) {
	t.Helper()
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("something listens on %s", addr)
	}
}

// TestServeInvalidConfigExits2: README "An invalid config at start exits
// 2", each problem printed with file:line and path as validate does.
func TestServeInvalidConfigExits2(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	bad := filepath.Join(dir, "bad.yaml")
	cfg := configYAML(addr, []string{backend(t, "a", 0)}, dir)
	cfg = strings.Replace(cfg, "stickiness.type: lb_cookie", "stickiness.type: lb_cookies", 1)
	cfg = strings.Replace(cfg, "interval_seconds: 0.1", "interval_seconds: -1", 1)
	if err := os.WriteFile(bad, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stderr := runLatch(t, "serve", "-config", bad)
	if code != 2 {
		t.Errorf("exit code %d, want 2; stderr:\n%s", code, stderr)
	}
	// lineOf returns the line of cfg that holds s, from 1.
	lineOf := func(s string) int { return strings.Count(cfg[:strings.Index(cfg, s)], "\n") + 1 }
	for _, want := range []string{
		fmt.Sprintf("%s:%d: target_groups[0].health_check.interval_seconds: -1 ", bad, lineOf("interval_seconds: -1")),
		fmt.Sprintf(`%s:%d: target_groups[0].attributes["stickiness.type"]: "lb_cookies" `, bad, lineOf("lb_cookies")),
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "latch started") {
		t.Errorf("latch started on an invalid config:\n%s", stderr)
	}
	notListening(t, addr)
}

// TestServeInvalidLogLevelExits2: README "`-log-level` (debug, info, warn,
// error)"; anything else is bad usage, exit 2, like a bad config.
func TestServeInvalidLogLevelExits2(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	good := filepath.Join(dir, "latch.yaml")
	if err := os.WriteFile(good, []byte(configYAML(addr, []string{backend(t, "a", 0)}, dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, level := range []string{"loud", "", "warning!"} {
		code, stderr := runLatch(t, "serve", "-config", good, "-log-level", level)
		if code != 2 || !strings.Contains(stderr, "-log-level") {
			t.Errorf("-log-level %q: exit %d, stderr %q; want exit 2 naming -log-level", level, code, stderr)
		}
	}
	notListening(t, addr)
	// The four levels the README names get past the flag: with a config
	// that does not exist, latch fails on the config instead.
	for _, level := range []string{"debug", "info", "warn", "error"} {
		code, stderr := runLatch(t, "serve", "-config", filepath.Join(dir, "none.yaml"), "-log-level", level)
		if code != 2 || strings.Contains(stderr, "-log-level") || !strings.Contains(stderr, "no such file") {
			t.Errorf("-log-level %s: exit %d, stderr %q; want the level taken and exit 2 on the missing config", level, code, stderr)
		}
	}
}

// TestSIGTERMShutdownTimeoutExits0: README "-shutdown-timeout (...: how
// long requests in flight may take to finish after SIGINT/SIGTERM; latch
// then exits 0)". A request that outlasts the timeout does not hold latch
// up, nor change its exit code.
func TestSIGTERMShutdownTimeoutExits0(t *testing.T) {
	dir := t.TempDir()
	slow, arrived := slowBackend(t, "slow", 8*time.Second)
	addr := freeAddr(t)
	cfgPath := filepath.Join(dir, "latch.yaml")
	if err := os.WriteFile(cfgPath, []byte(configYAML(addr, []string{slow}, dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	const grace = 300 * time.Millisecond
	p := startLatch(t, cfgPath, addr, "-shutdown-timeout", grace.String())

	done := make(chan error, 1)
	cl := &http.Client{Timeout: 15 * time.Second}
	go func() {
		resp, err := cl.Get(p.url + "/")
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	waitArrival(t, arrived)
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	code := p.wait(t)
	took := time.Since(start)
	if code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	// Well before the request would end (8 s), and not before the grace.
	if took < grace || took > grace+3*time.Second {
		t.Errorf("latch exited %v after SIGTERM, want about %v", took.Round(time.Millisecond), grace)
	}
	select {
	case err := <-done:
		t.Logf("the request cut short: %v", err)
	case <-time.After(5 * time.Second):
		t.Errorf("the request in flight was not ended with latch")
	}
	if logs := p.logs.String(); !strings.Contains(logs, "requests were still running at the shutdown timeout") {
		t.Errorf("no timeout logged:\n%s", logs)
	}
}

// TestServeLogFormat: README "-log-format (text, the default, or json ...)".
// An unknown format exits 2 naming the flag; json logs one JSON object a
// line, each with its level and message.
func TestServeLogFormat(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "latch.yaml")
	if err := os.WriteFile(cfg, []byte(configYAML(addr, []string{backend(t, "a", 0)}, dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, stderr := runLatch(t, "serve", "-config", cfg, "-log-format", "yaml"); code != 2 || !strings.Contains(stderr, "-log-format") {
		t.Errorf("-log-format yaml: exit %d, stderr %q; want exit 2 naming -log-format", code, stderr)
	}
	notListening(t, addr)

	cmd := exec.Command(latchBin, "serve", "-config", cfg, "-log-format", "json")
	logs := &syncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	p := &latchProcess{cmd: cmd, logs: logs, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	p.waitLog(t, `"msg":"latch started"`, 1)
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var entry struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(line), &entry); err != nil || entry.Level == "" || entry.Msg == "" {
			t.Errorf("log line %q: %v; want a JSON object with level and msg", line, err)
		}
	}
}
