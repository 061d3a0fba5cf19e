package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/demo"
)

// appEnv, when set in a test process's environment ("name addr idpURL"),
// makes it one instance of the demo's login app instead of running tests:
// a real process that a rolling restart stops with SIGTERM and starts
// again on the same address.
const appEnv = "LATCH_TEST_APP"

// runAppProcess serves the demo app as appEnv says until SIGTERM, then
// finishes the requests it has and exits 0.
func runAppProcess(spec string) {
	f := strings.Fields(spec)
	if len(f) != 3 {
		fmt.Fprintf(os.Stderr, "%s: want \"name addr idpURL\", got %q\n", appEnv, spec)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", f[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: demo.NewApp(f[0], f[2])}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	fmt.Println("SERVING")
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// appProcess is one demo app instance running as its own process.
type appProcess struct {
	cmd  *exec.Cmd
	done chan error
}

// startApp starts an app instance on addr, and returns once it serves.
func startApp(t *testing.T, name, addr, idpURL string) *appProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), appEnv+"="+name+" "+addr+" "+idpURL)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &appProcess{cmd: cmd, done: make(chan error, 1)}
	ready := make(chan string, 1)
	go func() {
		line := make([]byte, 8)
		n, _ := io.ReadFull(out, line)
		ready <- string(line[:n])
		io.Copy(io.Discard, out)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	select {
	case l := <-ready:
		if l != "SERVING\n" {
			t.Fatalf("app %s on %s did not start: %q", name, addr, l)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("app %s on %s did not start within 10 s", name, addr)
	}
	return p
}

// stop ends the instance with SIGTERM and waits for it to exit.
func (p *appProcess) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("app exited: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("app did not exit within 10 s of SIGTERM")
	}
}

// loginResult is one login flow: whether it succeeded, and which instance
// served each of its two requests through latch (/login and /callback).
type loginResult struct {
	ok             bool
	login, finish  string
	status         int
	err            error
	moved, session string
}

// loginOnce runs the demo's login flow as a new browser: /login through
// latch, the IdP's redirect, /callback through latch.
func loginOnce(base string) loginResult {
	var r loginResult
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if resp := req.Response; resp != nil && resp.Request.URL.Path == "/login" {
			r.login = resp.Header.Get("X-Served-By")
		}
		return nil
	}
	resp, err := c.Get(base + "/login")
	if err != nil {
		r.err = err
		return r
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	r.status, r.finish = resp.StatusCode, resp.Header.Get("X-Served-By")
	r.ok = resp.StatusCode == 200 && strings.Contains(string(body), "Login succeeded")
	r.moved = resp.Header.Get("X-Latch-Session-Moved")
	return r
}

// TestRollingRestartWithSessionDrainLosesNoLogin: README "Session-aware
// drain". Three instances of the demo's login app, real processes, behind
// `latch serve`; a steady stream of logins by new browsers; each instance
// in turn is drained with keep_sessions (`latch ctl drain -wait`),
// stopped, started again on its address, and undrained. No login fails,
// and each login's two requests reach one instance.
func TestRollingRestartWithSessionDrainLosesNoLogin(t *testing.T) {
	dir := t.TempDir()
	// The IdP takes 300 ms, as a person signing in takes a while: a drain
	// always finds logins between their two requests.
	idp := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
		demo.IdentityProvider(w, r)
	})}
	idpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go idp.Serve(idpLn)
	t.Cleanup(func() { idp.Close() })
	idpURL := "http://" + idpLn.Addr().String()

	var addrs []string
	apps := map[string]*appProcess{}
	names := map[string]string{}
	for i := 1; i <= 3; i++ {
		name, addr := fmt.Sprintf("app-%d", i), freeAddr(t)
		addrs = append(addrs, addr)
		names[addr] = name
		apps[addr] = startApp(t, name, addr, idpURL)
	}

	addr, admin := freeAddr(t), freeAddr(t)
	token := filepath.Join(dir, "admin.token")
	if err := os.WriteFile(token, []byte("rolling-restart-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`listeners:
  - name: public
    address: %s
    default_action:
      type: forward
      forward: { target_group: app }
target_groups:
  - name: app
    targets:
      - id: %s
      - id: %s
      - id: %s
    health_check:
      path: /healthz
      interval_seconds: 0.2
      timeout_seconds: 0.1
      healthy_threshold_count: 2
      unhealthy_threshold_count: 2
    attributes:
      stickiness.enabled: "true"
      stickiness.type: lb_cookie
      deregistration_delay.timeout_seconds: "1"
admin:
  address: %s
  token_file: admin.token
state_dir: %s
`, addr, addrs[0], addrs[1], addrs[2], admin, dir)
	cfgPath := filepath.Join(dir, "latch.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startLatch(t, cfgPath, addr)
	ctl := func(args ...string) (int, string) {
		t.Helper()
		return runLatch(t, append([]string{"ctl", "-admin", "http://" + admin, "-token-file", token}, args...)...)
	}
	waitHealthy := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, out := ctlOut(t, admin, token, "-o", "json", "targets", "app")
			if code == 0 && strings.Count(out, `"state": "healthy"`)+strings.Count(out, `"state":"healthy"`) >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("not %d targets healthy within 10 s: %s", n, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitHealthy(3)

	// The stream of logins: eight browsers at a time, each login a new one
	// and each browser pausing 10 ms between logins, until the restarts are
	// done (at most 20,000 logins, 90 s).
	var (
		mu      sync.Mutex
		results []loginResult
	)
	stop := make(chan struct{})
	logged := make(chan struct{}, 1) // a login ended
	var wg sync.WaitGroup
	var stopOnce sync.Once
	stopLogins := func() {
		stopOnce.Do(func() { close(stop) })
		wg.Wait()
	}
	defer stopLogins() // on a failure too
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(90 * time.Second)
			for time.Now().Before(deadline) {
				select {
				case <-stop:
					return
				default:
				}
				r := loginOnce(p.url)
				mu.Lock()
				results = append(results, r)
				n := len(results)
				mu.Unlock()
				select {
				case logged <- struct{}{}:
				default:
				}
				if n >= 20000 {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(results)
	}
	// waitLogins waits until n logins have ended, or fails t after 30 s:
	// the stream of logins ends at its own bound, and a stall must not
	// hang the test.
	waitLogins := func(n int, what string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for count() < n {
			select {
			case <-logged:
			case <-deadline:
				t.Fatalf("%s: %d logins ended within 30 s, want %d", what, count(), n)
			}
		}
	}
	// Logins before the first drain.
	waitLogins(count()+20, "before the first drain")

	for _, a := range addrs {
		before := count()
		if code, out := ctl("drain", "app", a, "-mode", "keep_sessions", "-idle", "1s", "-deadline", "30s", "-wait"); code != 0 {
			t.Fatalf("drain %s: exit %d: %s", a, code, out)
		}
		apps[a].stop(t)
		apps[a] = startApp(t, names[a], a, idpURL)
		if code, out := ctl("undrain", "app", a); code != 0 {
			t.Fatalf("undrain %s: exit %d: %s", a, code, out)
		}
		waitHealthy(3)
		// Logins go on before the next instance's turn.
		waitLogins(before+16, "after the restart of "+a)
	}
	waitLogins(count()+20, "after the last restart")
	stopLogins()

	by := map[string]int{}
	for i, r := range results {
		if r.err != nil || !r.ok || r.login == "" || r.login != r.finish {
			t.Errorf("login %d of %d: ok %t, status %d, /login on %q, /callback on %q, moved %q, err %v",
				i, len(results), r.ok, r.status, r.login, r.finish, r.moved, r.err)
		}
		by[r.finish]++
	}
	t.Logf("%d logins during three drained restarts, none lost; by instance: %v", len(results), by)
	if len(by) != 3 {
		t.Errorf("logins by instance %v; want all three instances serving", by)
	}
}

// ctlOut runs latch ctl against the admin listener and returns its exit
// code and standard output.
func ctlOut(t *testing.T, admin, token string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, latchBin, append([]string{"ctl", "-admin", "http://" + admin, "-token-file", token}, args...)...)
	out, err := cmd.Output()
	return exitCode(err), string(out)
}
