package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// latchBin is the latch binary built once for the process tests.
var latchBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "latch-bin-")
	if err != nil {
		panic(err)
	}
	latchBin = filepath.Join(dir, "latch")
	if out, err := exec.Command("go", "build", "-o", latchBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building latch: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(`listeners:
  - name: public
    address: 127.0.0.1:8080
    default_action:
      type: forward
      forward: { target_group: web }
target_groups:
  - name: web
    targets:
      - id: 127.0.0.1:9001
    attributes:
      stickness.enabled: "true"
      stickiness.lb_cookie.duration_seconds: "0"
`), 0o644)
	cmd := exec.Command(latchBin, "validate", "-config", bad)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if code := exitCode(err); code != 2 {
		t.Fatalf("exit code %d, want 2 (%v)", code, err)
	}
	want := []string{
		bad + `:12: target_groups[0].attributes["stickness.enabled"]: unknown attribute; did you mean "stickiness.enabled"?`,
		bad + `:13: target_groups[0].attributes["stickiness.lb_cookie.duration_seconds"]: 0 is outside 1-604800 seconds`,
	}
	if got := strings.Split(strings.TrimSpace(stderr.String()), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(configYAML("127.0.0.1:0", []string{"127.0.0.1:9001"}, dir)), 0o644)
	out, err := exec.Command(latchBin, "validate", "-config", good).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok (1 listeners, 1 target groups)") {
		t.Errorf("valid config: %v\n%s", err, out)
	}
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"version"}, 0, "latch dev"},
		{[]string{}, 2, "usage: latch"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"serve", "-config", "/nonexistent/latch.yaml"}, 2, "no such file"},
		{[]string{"serve", "-bogus"}, 2, "flag provided but not defined"},
	}
	for _, tt := range tests {
		out, err := exec.Command(latchBin, tt.args...).CombinedOutput()
		if code := exitCode(err); code != tt.code || !strings.Contains(string(out), tt.out) {
			t.Errorf("latch %v: exit %d, output %q; want exit %d with %q", tt.args, code, out, tt.code, tt.out)
		}
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

func configYAML(addr string, targets []string, stateDir string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `listeners:
  - name: public
    address: %s
    default_action:
      type: forward
      forward: { target_group: web }
target_groups:
  - name: web
    targets:
`, addr)
	for _, t := range targets {
		fmt.Fprintf(&b, "      - id: %s\n", t)
	}
	fmt.Fprintf(&b, `    health_check:
      path: /healthz
      interval_seconds: 0.1
      timeout_seconds: 0.05
    attributes:
      stickiness.enabled: "true"
      stickiness.type: lb_cookie
      deregistration_delay.timeout_seconds: "2"
state_dir: %s
`, stateDir)
	return b.String()
}

// backend is an in-process target that answers with its name.
func backend(t *testing.T, name string, delay time.Duration) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			time.Sleep(delay)
		}
		io.WriteString(w, name)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// latchProcess is `latch serve` running as its own process.
type latchProcess struct {
	cmd  *exec.Cmd
	url  string
	logs *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startLatch runs latch serve on the config, with more flags if given, and
// returns once it listens on addr.
func startLatch(t *testing.T, configPath, addr string, flags ...string) *latchProcess {
	t.Helper()
	args := append([]string{"serve", "-config", configPath}, flags...)
	p := &latchProcess{cmd: exec.Command(latchBin, args...), url: "http://" + addr, logs: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("latch logs:\n%s", p.logs.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("latch did not listen on %s:\n%s", addr, p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *latchProcess) wait(t *testing.T) int {
	select {
	case err := <-p.done:
		return exitCode(err)
	case <-time.After(10 * time.Second):
		t.Fatal("latch did not exit within 10 s")
		return -1
	}
}

func TestSIGHUPReloadUnderLoadDropsNothing(t *testing.T) {
	dir := t.TempDir()
	a, b, c := backend(t, "a", 0), backend(t, "b", 0), backend(t, "c", 2*time.Millisecond)
	addr := freeAddr(t)
	cfgPath := filepath.Join(dir, "latch.yaml")
	write := func(targets ...string) {
		if err := os.WriteFile(cfgPath, []byte(configYAML(addr, targets, dir)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(a, b)
	p := startLatch(t, cfgPath, addr)

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			for i := 0; i < 3000 && ctx.Err() == nil; i++ {
				resp, err := cl.Get(p.url + "/")
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, resp.Status)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	steps := [][]string{{a, b, c}, {b, c}, {a, c}, {a, b, c}, {c}, {a, b}}
	for _, targets := range steps {
		time.Sleep(60 * time.Millisecond)
		write(targets...)
		p.cmd.Process.Signal(syscall.SIGHUP)
	}
	// A broken config on SIGHUP: rejected, logged, and the old one keeps serving.
	time.Sleep(60 * time.Millisecond)
	os.WriteFile(cfgPath, []byte("listeners: []\ntarget_groups:\n  - name: web\n    targetz: []\n"), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(150 * time.Millisecond)
	cancel()
	wg.Wait()

	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed across reloads; first: %v", failed.Load(), ok.Load()+failed.Load(), firstErr.Load())
	}
	if ok.Load() < 200 {
		t.Errorf("only %d requests ran during the reloads", ok.Load())
	}
	logs := p.logs.String()
	if n := strings.Count(logs, "config reloaded"); n != len(steps) {
		t.Errorf("%d reloads logged, want %d", n, len(steps))
	}
	for _, want := range []string{"reload rejected; keeping the running config", `targetz: unknown key; did you mean \"targets\"?`, "listeners: empty"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q", want)
		}
	}
	if r, err := http.Get(p.url + "/"); err != nil || r.StatusCode != 200 {
		t.Errorf("after the rejected reload: %v %v", r, err)
	}
	t.Logf("%d requests over %d reloads, none failed", ok.Load(), len(steps))
}

func TestSIGTERMFinishesRequestsAndExits0(t *testing.T) {
	dir := t.TempDir()
	slow := backend(t, "slow", 500*time.Millisecond)
	addr := freeAddr(t)
	cfgPath := filepath.Join(dir, "latch.yaml")
	os.WriteFile(cfgPath, []byte(configYAML(addr, []string{slow}, dir)), 0o644)
	p := startLatch(t, cfgPath, addr)

	type res struct {
		body string
		err  error
	}
	done := make(chan res, 1)
	go func() {
		resp, err := http.Get(p.url + "/")
		if err != nil {
			done <- res{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- res{string(b), err}
	}()
	time.Sleep(150 * time.Millisecond) // the request is at the target
	p.cmd.Process.Signal(syscall.SIGTERM)
	r := <-done
	if r.err != nil || r.body != "slow" {
		t.Errorf("in-flight request across SIGTERM: %q, %v", r.body, r.err)
	}
	if code := p.wait(t); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if !strings.Contains(p.logs.String(), "shutting down") {
		t.Errorf("no shutdown logged:\n%s", p.logs.String())
	}
}

func TestRestartKeepsSessions(t *testing.T) {
	dir := t.TempDir()
	targets := []string{backend(t, "a", 0), backend(t, "b", 0), backend(t, "c", 0)}
	addr := freeAddr(t)
	cfgPath := filepath.Join(dir, "latch.yaml")
	os.WriteFile(cfgPath, []byte(configYAML(addr, targets, dir)), 0o644)

	p := startLatch(t, cfgPath, addr)
	// New sessions go to a target once its first check passed (the first
	// probe is jittered): ask until each target has one, within 5 s.
	sessions := map[string]string{} // backend -> cookie
	for deadline := time.Now().Add(5 * time.Second); len(sessions) < 3 && time.Now().Before(deadline); {
		body, cookie := fetch(t, p.url, "")
		sessions[body] = cookie
		time.Sleep(10 * time.Millisecond)
	}
	if len(sessions) != 3 {
		t.Fatalf("requests over 5 s reached %d targets, want 3: %v", len(sessions), sessions)
	}
	for backend, cookie := range sessions {
		if cookie == "" {
			t.Fatalf("the response from %s set no AWSALB cookie", backend)
		}
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	keyFile, err := os.Stat(filepath.Join(dir, "cookie-keys.json"))
	if err != nil || keyFile.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", keyFile, err)
	}

	p2 := startLatch(t, cfgPath, addr)
	for want, cookie := range sessions {
		if got, _ := fetch(t, p2.url, cookie); got != want {
			t.Errorf("after a restart a session of %s went to %s", want, got)
		}
	}
}

var cookieRE = regexp.MustCompile(`^AWSALB=([^;]+);`)

func fetch(t *testing.T, url, cookie string) (body, newCookie string) {
	req, _ := http.NewRequest("GET", url+"/", nil)
	if cookie != "" {
		req.Header.Set("Cookie", "AWSALB="+cookie)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(bufio.NewReader(resp.Body))
	for _, sc := range resp.Header["Set-Cookie"] {
		if m := cookieRE.FindStringSubmatch(sc); m != nil {
			newCookie = m[1]
		}
	}
	return string(b), newCookie
}
