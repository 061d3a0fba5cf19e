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
	if spec := os.Getenv(appEnv); spec != "" {
		runAppProcess(spec)
	}
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
admin:
  address: 127.0.0.1:0 # tests run many latches at once
`, stateDir)
	return b.String()
}

// backend is an in-process target that answers with its name, after delay.
func backend(t *testing.T, name string, delay time.Duration) string {
	addr, _ := slowBackend(t, name, delay)
	return addr
}

// slowBackend is backend, and tells on arrived when a request (not a
// health check) has come.
func slowBackend(t *testing.T, name string, delay time.Duration) (addr string, arrived <-chan struct{}) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	came := make(chan struct{}, 16)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			select {
			case came <- struct{}{}:
			default:
			}
			time.Sleep(delay) // a slow target
		}
		io.WriteString(w, name)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), came
}

// waitArrival waits until a request reaches a slow backend.
func waitArrival(t *testing.T, arrived <-chan struct{}) {
	t.Helper()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("no request reached the target within 10 s")
	}
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

// syncBuffer keeps what a process logs, and wakes those waiting for a line
// (waitLog).
type syncBuffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	wrote chan struct{} // closed and replaced at every write
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wrote != nil {
		close(s.wrote)
		s.wrote = nil
	}
	return s.b.Write(p)
}

// changed returns a channel closed at the next write.
func (s *syncBuffer) changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wrote == nil {
		s.wrote = make(chan struct{})
	}
	return s.wrote
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitLog waits until latch has logged n lines holding what (in all), and
// fails t if it has not within 10 s or if it exited.
func (p *latchProcess) waitLog(t *testing.T, what string, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		changed := p.logs.changed()
		if strings.Count(p.logs.String(), what) >= n {
			return
		}
		select {
		case <-changed:
		case err := <-p.done:
			p.done <- err
			t.Fatalf("latch exited (%v) before logging %q %d times:\n%s", err, what, n, p.logs.String())
		case <-timeout:
			t.Fatalf("latch did not log %q %d times within 10 s:\n%s", what, n, p.logs.String())
		}
	}
}

// startLatch runs latch serve on the config, with more flags if given, and
// returns once it has started (it logs so once it listens on addr).
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
	p.waitLog(t, "latch started", 1)
	if !strings.Contains(p.logs.String(), "address="+addr) {
		t.Fatalf("latch did not listen on %s:\n%s", addr, p.logs.String())
	}
	return p
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
	servedOne := make(chan struct{}, 1) // a request succeeded
	// progress waits until the clients have had n more requests answered.
	progress := func(n int64) {
		t.Helper()
		want := ok.Load() + n
		for timeout := time.After(10 * time.Second); ok.Load() < want; {
			select {
			case <-servedOne:
			case <-timeout:
				t.Fatalf("the clients got %d more requests answered in 10 s, want %d", ok.Load()-want+n, n)
			}
		}
	}
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
				select {
				case servedOne <- struct{}{}:
				default:
				}
			}
		}()
	}
	// Each reload is applied, and the clients get requests answered,
	// before the next file is written.
	steps := [][]string{{a, b, c}, {b, c}, {a, c}, {a, b, c}, {c}, {a, b}}
	for i, targets := range steps {
		progress(40)
		write(targets...)
		p.cmd.Process.Signal(syscall.SIGHUP)
		p.waitLog(t, "config reloaded", i+1)
	}
	// A broken config on SIGHUP: rejected, logged, and the old one keeps serving.
	progress(40)
	os.WriteFile(cfgPath, []byte("listeners: []\ntarget_groups:\n  - name: web\n    targetz: []\n"), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, "reload rejected", 1)
	progress(40)
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
	slow, arrived := slowBackend(t, "slow", 500*time.Millisecond)
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
	waitArrival(t, arrived)
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
	// probe is jittered): once all three have, round robin gives each one
	// within a few requests.
	p.waitLog(t, "to=healthy", 3)
	sessions := map[string]string{} // backend -> cookie
	for range 30 {
		body, cookie := fetch(t, p.url, "")
		sessions[body] = cookie
	}
	if len(sessions) != 3 {
		t.Fatalf("30 requests reached %d targets, want 3: %v", len(sessions), sessions)
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
