package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAccessLogRotateAndReload: latch serve writes its access log, reopens
// it on SIGUSR1 after logrotate's rename (the lines before in the renamed
// file, those after in a new one at the path), and follows a SIGHUP that
// changes access_log to another file and format.
func TestAccessLogRotateAndReload(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	cfgPath := filepath.Join(dir, "latch.yaml")
	base := configYAML(addr, []string{backend(t, "a", 0)}, dir)
	if err := os.WriteFile(cfgPath, []byte(base+"access_log:\n  path: access.log\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startLatch(t, cfgPath, addr)
	p.waitLog(t, "to=healthy", 1)
	logPath, rotated, jsonPath := filepath.Join(dir, "access.log"), filepath.Join(dir, "access.log.1"), filepath.Join(dir, "access.json")

	get := func(path string) {
		t.Helper()
		resp, err := http.Get(p.url + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
	}
	// waitLine waits until file holds a line with what: the log's writer
	// writes every 10 ms, and tells no one.
	waitLine := func(file, what string) string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			b, _ := os.ReadFile(file)
			for _, l := range strings.Split(string(b), "\n") {
				if strings.Contains(l, what) {
					return l
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s holds no line with %q within 10 s:\n%s", filepath.Base(file), what, b)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	get("/before-rotate")
	if l := waitLine(logPath, "/before-rotate"); !strings.HasPrefix(l, "http ") || !strings.Contains(l, `"GET http://`+addr+`/before-rotate HTTP/1.1"`) {
		t.Errorf("the ALB line: %q", l)
	}
	if err := os.Rename(logPath, rotated); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGUSR1)
	// Reopen creates the file at the path anew.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(logPath); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new %s within 10 s of SIGUSR1:\n%s", logPath, p.logs.String())
		}
	}
	get("/after-rotate")
	waitLine(logPath, "/after-rotate")

	// A reload to another file, as JSON.
	if err := os.WriteFile(cfgPath, []byte(base+"access_log:\n  path: access.json\n  format: json\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, "config reloaded", 1)
	get("/after-reload")
	var rec map[string]any
	if err := json.Unmarshal([]byte(waitLine(jsonPath, "/after-reload")), &rec); err != nil || rec["type"] != "http" || rec["elb_status_code"] != 200.0 {
		t.Errorf("the JSON line: %v, %v", rec, err)
	}

	for file, want := range map[string][]string{rotated: {"/before-rotate"}, logPath: {"/after-rotate"}, jsonPath: {"/after-reload"}} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != len(want) {
			t.Errorf("%s holds %d lines, want %d (%v):\n%s", filepath.Base(file), len(lines), len(want), want, b)
			continue
		}
		for i, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("%s line %d: %q, want %s", filepath.Base(file), i, lines[i], w)
			}
		}
	}
}
