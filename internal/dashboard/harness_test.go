package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/leaktest"
	"github.com/latch-lb/latch/internal/metrics"
	"github.com/latch-lb/latch/internal/proxy"
	"github.com/latch-lb/latch/internal/server"
)

// TestMain runs a target process when asked to (see startProcess), so
// that the browser test can kill a real target with a signal.
func TestMain(m *testing.M) {
	if name := os.Getenv("LATCH_DASHBOARD_TEST_TARGET"); name != "" {
		runTargetProcess(name)
		return
	}
	os.Exit(m.Run())
}

func runTargetProcess(name string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	fmt.Println("ADDR", ln.Addr().String())
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		io.WriteString(w, name)
	}))
}

// process is a target running as an OS process of its own.
type process struct {
	name, addr string
	cmd        *exec.Cmd
}

func startProcess(t *testing.T, name string) *process {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LATCH_DASHBOARD_TEST_TARGET="+name)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ADDR ") {
		t.Fatalf("target process %s: %q, %v", name, line, err)
	}
	return &process{name: name, addr: strings.TrimSpace(strings.TrimPrefix(line, "ADDR ")), cmd: cmd}
}

// startTarget starts a real HTTP server on loopback, closed when the test
// ends, and returns its address.
func startTarget(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// fastHealth settles a target's health within a few hundred ms.
const fastHealth = `    health_check:
      path: /healthz
      interval_seconds: 0.1
      timeout_seconds: 0.05
      healthy_threshold_count: 2
      unhealthy_threshold_count: 2
`

// configYAML is one listener forwarding to one group of the targets.
func configYAML(stateDir string, health string, targets ...string) string {
	var b strings.Builder
	b.WriteString("listeners:\n  - name: front\n    address: 127.0.0.1:0\n    default_action:\n      type: forward\n      forward: { target_group: web }\n")
	b.WriteString("target_groups:\n  - name: web\n    targets:\n")
	for _, t := range targets {
		fmt.Fprintf(&b, "      - id: %s\n", t)
	}
	if health == "" {
		health = "    health_check:\n      enabled: false\n"
	}
	b.WriteString(health)
	b.WriteString("    attributes:\n      stickiness.enabled: true\n      deregistration_delay.timeout_seconds: 0\n")
	b.WriteString("cookie_keys:\n  - id: 1\n    secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n")
	fmt.Fprintf(&b, "state_dir: %s\n", stateDir)
	return b.String()
}

// startLatch runs a latch server on yaml, with obs on its data path, shut
// down when the test ends; none of its goroutines, nor the dashboard's,
// may be left then.
func startLatch(t *testing.T, yaml string, obs proxy.Observer) *server.Server {
	t.Helper()
	leaktest.Check(t)
	srv, err := server.New(server.Options{Log: testLogger(t), Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	cfg, err := config.Parse([]byte(yaml), "")
	if err != nil {
		t.Fatalf("config:\n%s\n%v", yaml, err)
	}
	if err := srv.Apply(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	return srv
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startMetrics returns latch's metrics, whose observer goes on the data
// path (startLatch's obs) and whose totals the dashboard reads.
func startMetrics(t *testing.T) *metrics.Metrics {
	m := metrics.New()
	t.Cleanup(m.Close)
	return m
}

// streamReader reads a stream's messages.
type streamReader struct {
	body io.Closer
	sc   *bufio.Scanner
	msgs chan message
	errs chan error
}

// openStream GETs url (a stream) and reads its messages in a goroutine of
// the test's until ctx ends or the stream does.
func openStream(t *testing.T, ctx context.Context, url string) *streamReader {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || got != "text/event-stream" {
		t.Fatalf("GET %s: %d, Content-Type %q; want 200, text/event-stream", url, resp.StatusCode, got)
	}
	s := &streamReader{body: resp.Body, msgs: make(chan message, 1024), errs: make(chan error, 1)}
	go func() {
		defer close(s.msgs)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var m message
			if err := json.Unmarshal([]byte(data), &m); err != nil {
				s.errs <- fmt.Errorf("message %q: %v", data, err)
				return
			}
			s.msgs <- m
		}
	}()
	t.Cleanup(func() { resp.Body.Close() })
	return s
}

// waitMessage reads messages until one satisfies cond, failing t after d.
func (s *streamReader) waitMessage(t *testing.T, d time.Duration, what string, cond func(message) bool) message {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case m, ok := <-s.msgs:
			if !ok {
				t.Fatalf("the stream ended while waiting for %s", what)
			}
			if cond(m) {
				return m
			}
		case err := <-s.errs:
			t.Fatal(err)
		case <-timeout:
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

// targetOf returns the named group's target from m, or nil.
func targetOf(m message, group, id string) *targetView {
	for _, g := range m.Groups {
		if g.Name != group {
			continue
		}
		for i := range g.Targets {
			if g.Targets[i].ID == id {
				return &g.Targets[i]
			}
		}
	}
	return nil
}
