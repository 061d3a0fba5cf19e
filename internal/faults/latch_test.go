package faults

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/tlsconf/tlstest"
)

// serverName is the name on the HTTPS listener's certificate.
const serverName = "latch.faults.test"

// cookieSecret seals latch's cookies in the scenarios, so that the cookie
// scenario can open them (and seal some of its own).
var cookieSecret = []byte("latch-fault-suite-cookie-key-32b")

const cookieKeyID = 7

// latchOptions is what varies between the scenarios' configs.
type latchOptions struct {
	targets []string
	idle    string            // the listener's idle_timeout.timeout_seconds; "" for the default, 60
	attrs   map[string]string // target-group attributes on top of lb_cookie stickiness
	// other adds a group "other" with the same targets, which a rule sends
	// /other/* to.
	other bool
}

// latchProc is `latch serve` running as a process of its own.
type latchProc struct {
	r       *row // told why, when latch fails
	v       variant
	opts    latchOptions
	dir     string
	cfgPath string
	cfgAddr string      // the listener's address as the config file has it
	ca      *tlstest.CA // HTTPS and h2 variants
	addr    string      // host:port it listens on
	url     string      // scheme://host:port
	cmd     *exec.Cmd
	logs    *logBuffer
	done    chan struct{} // closed when the process has exited
	err     error         // its Wait's error, once done
	stopped bool          // stop has run
}

// startLatch writes the config, starts latch on the variant's data path
// and protocol, and returns once it listens and every target has passed
// its first health check.
func startLatch(t *testing.T, r *row, v variant, o latchOptions) *latchProc {
	t.Helper()
	p := &latchProc{r: r, v: v, opts: o, dir: t.TempDir()}
	p.cfgPath = filepath.Join(p.dir, "latch.yaml")
	if v.tls() {
		p.ca = tlstest.NewCA(t)
		p.ca.Issue(t, tlstest.Options{DNSNames: []string{serverName}}).Write(t, p.dir, "front")
	}
	p.cfgAddr = "127.0.0.1:0"
	p.writeConfig(t, p.cfgAddr, o)
	p.start(t)
	for _, a := range o.targets {
		p.waitHealthy(t, a)
	}
	return p
}

// writeConfig writes the config file: one listener on addr forwarding to
// the group web (lb_cookie stickiness, quick health checks, the
// scenario's attributes), and a cookie key the tests know.
func (p *latchProc) writeConfig(t *testing.T, addr string, o latchOptions) {
	t.Helper()
	var y strings.Builder
	fmt.Fprintf(&y, "listeners:\n  - name: public\n    address: %s\n", addr)
	if p.v.tls() {
		fmt.Fprintf(&y, "    protocol: HTTPS\n    certificates:\n      - cert_file: front.crt\n        key_file: front.key\n")
	}
	y.WriteString("    default_action:\n      type: forward\n      forward: { target_group: web }\n")
	if o.other {
		y.WriteString(`    rules:
      - priority: 10
        conditions: [ { path_pattern: ["/other/*"] } ]
        action: { type: forward, forward: { target_group: other } }
`)
	}
	lattrs := map[string]string{}
	if o.idle != "" {
		lattrs["idle_timeout.timeout_seconds"] = o.idle
	}
	if p.v.proto == "h2c" {
		lattrs["routing.http2.h2c.enabled"] = "true"
	}
	writeAttrs(&y, "    ", lattrs)
	y.WriteString("target_groups:\n")
	groups := []string{"web"}
	if o.other {
		groups = append(groups, "other")
	}
	for _, g := range groups {
		fmt.Fprintf(&y, "  - name: %s\n    targets:\n", g)
		for _, a := range o.targets {
			fmt.Fprintf(&y, "      - id: %s\n", a)
		}
		// Checks every 0.5 s: a target is in service within a second of
		// its start. A check may take 0.45 s, and three must fail in a row,
		// so that checks late on a busy machine move no session.
		y.WriteString(`    health_check:
      path: /healthz
      interval_seconds: 0.5
      timeout_seconds: 0.45
      healthy_threshold_count: 2
      unhealthy_threshold_count: 3
`)
		attrs := map[string]string{
			"stickiness.enabled":                   "true",
			"stickiness.type":                      "lb_cookie",
			"deregistration_delay.timeout_seconds": "1",
		}
		maps.Copy(attrs, o.attrs)
		writeAttrs(&y, "    ", attrs)
	}
	fmt.Fprintf(&y, "state_dir: state\ncookie_keys:\n  - id: %d\n    secret: %q\n", cookieKeyID, b64(cookieSecret))
	// Several latches run at once: none may take the admin API's default port.
	y.WriteString("admin:\n  address: 127.0.0.1:0\n")
	if err := os.WriteFile(p.cfgPath, []byte(y.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeAttrs(y *strings.Builder, indent string, attrs map[string]string) {
	if len(attrs) == 0 {
		return
	}
	y.WriteString(indent + "attributes:\n")
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		fmt.Fprintf(y, "%s  %s: %q\n", indent, k, attrs[k])
	}
}

// start runs latch on the config file and waits until it listens.
func (p *latchProc) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(latchBin, "serve", "-config", p.cfgPath, "-shutdown-timeout", "10s")
	cmd.Env = append(os.Environ(), "LATCH_DATA_PATH="+p.v.path)
	logs := &logBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.cmd, p.logs, p.done, p.stopped = cmd, logs, make(chan struct{}), false
	done := p.done
	go func() { p.err = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("latch's log (pid %d):\n%s", cmd.Process.Pid, logs.String())
		}
	})
	line := p.waitLog(t, 10*time.Second, "latch listening", func(l string) bool { return strings.Contains(l, `msg=listening`) })
	m := regexp.MustCompile(`address=(\S+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no address in %q", line)
	}
	p.addr = m[1]
	scheme := "http"
	if p.v.tls() {
		scheme = "https"
	}
	p.url = scheme + "://" + p.addr
}

// restart stops latch with SIGTERM and starts it again on the same
// address and state directory; it returns how long latch was away.
func (p *latchProc) restart(t *testing.T) time.Duration {
	t.Helper()
	from := time.Now()
	if code := p.stop(t); code != 0 {
		t.Fatalf("latch exited %d on SIGTERM, want 0", code)
	}
	// The port latch had, so that the clients find it again.
	p.cfgAddr = p.addr
	p.writeConfig(t, p.cfgAddr, p.opts)
	p.start(t)
	return time.Since(from)
}

// reload writes a new config and sends SIGHUP, and returns once latch has
// applied it.
func (p *latchProc) reload(t *testing.T, o latchOptions) {
	t.Helper()
	n := len(p.logs.lines(func(l string) bool { return strings.Contains(l, "config reloaded") }))
	p.opts = o
	p.writeConfig(t, p.cfgAddr, o)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, 10*time.Second, "the reload applied", func(l string) bool {
		if strings.Contains(l, "reload rejected") || strings.Contains(l, "reload failed") {
			t.Fatalf("latch refused the reload: %s", l)
		}
		if strings.Contains(l, "config reloaded") {
			n--
			return n < 0
		}
		return false
	})
}

// stop sends SIGTERM and waits for latch to exit; it returns the exit
// code, and fails t if latch logged a panic, a fatal error or a race.
func (p *latchProc) stop(t *testing.T) int {
	t.Helper()
	if !p.stopped {
		p.stopped = true
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("latch did not exit within 15 s of SIGTERM")
	}
	p.checkLog(t)
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// checkLog fails t if latch's log shows a crash.
func (p *latchProc) checkLog(t *testing.T) {
	t.Helper()
	logs := p.logs.String()
	for _, bad := range []string{"panic:", "fatal error:", "DATA RACE"} {
		if strings.Contains(logs, bad) {
			t.Errorf("latch's log holds %q", bad)
		}
	}
}

// alive reports whether the latch process is still running.
func (p *latchProc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// waitLog waits for a line of latch's log that match accepts, and returns
// it; it fails t after d, or if latch exits first.
func (p *latchProc) waitLog(t *testing.T, d time.Duration, what string, match func(string) bool) string {
	t.Helper()
	timeout := time.After(d)
	seen := 0
	for {
		lines, wake := p.logs.from(seen)
		for _, l := range lines {
			if match(l) {
				return l
			}
		}
		seen += len(lines)
		select {
		case <-wake:
		case <-p.done:
			// What it logged before it exited.
			if lines, _ := p.logs.from(seen); len(lines) > 0 {
				continue
			}
			p.r.fatalf(t, "latch exited (%v) before %s: %s", p.err, what, lastLines(p.logs.String(), 2))
		case <-timeout:
			p.r.fatalf(t, "timed out after %v waiting for %s", d, what)
		}
	}
}

// lastLines returns the last n lines of s, joined by " / ".
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " / ")
}

// transitions returns the health transitions latch logged for the target
// at addr, as "from>to reason" strings in order.
func (p *latchProc) transitions(addr string) []string {
	var out []string
	for _, l := range p.logs.lines(func(l string) bool {
		return strings.Contains(l, `msg="target health changed"`) && strings.Contains(l, " target="+addr+" ")
	}) {
		out = append(out, field(l, "from")+">"+field(l, "to")+" "+field(l, "reason"))
	}
	return out
}

// waitHealthy waits until the last health transition latch logged for
// the target at addr is to healthy.
func (p *latchProc) waitHealthy(t *testing.T, addr string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		_, wake := p.logs.from(0)
		if tr := p.transitions(addr); len(tr) > 0 && strings.Contains(tr[len(tr)-1], ">healthy ") {
			return
		}
		select {
		case <-wake:
		case <-timeout:
			t.Fatalf("target %s not healthy within 10 s: %v", addr, p.transitions(addr))
		}
	}
}

// passiveEjections counts the times latch logged the target at addr
// unhealthy for failing real requests (Target.PassiveFailures).
func (p *latchProc) passiveEjections(addr string) int {
	n := 0
	for _, tr := range p.transitions(addr) {
		if strings.HasSuffix(tr, ">unhealthy Target.PassiveFailures") {
			n++
		}
	}
	return n
}

// field returns the value of key in a logfmt line (slog's text handler).
func field(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if strings.HasPrefix(v, `"`) {
		if s, err := strconv.QuotedPrefix(v); err == nil {
			u, _ := strconv.Unquote(s)
			return u
		}
	}
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return v
}

// rss returns the latch process's resident set, in KiB, from
// /proc/<pid>/status.
func (p *latchProc) rss(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no VmRSS in /proc/%d/status", p.cmd.Process.Pid)
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n
}

// tlsConfig is what a client of an HTTPS listener trusts.
func (p *latchProc) tlsConfig() *tls.Config {
	if p.ca == nil {
		return nil
	}
	return &tls.Config{RootCAs: p.ca.Pool, ServerName: serverName}
}

// client returns a client of its own (one keep-alive connection of its
// own, over HTTP/1.1) with a cookie jar: one browser's session.
func (p *latchProc) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{TLSClientConfig: p.tlsConfig(), MaxIdleConnsPerHost: 1, DisableCompression: true}
	return &http.Client{Jar: jar, Transport: tr, Timeout: 15 * time.Second}
}

// logBuffer keeps what a process logs, and wakes those waiting for a line.
type logBuffer struct {
	mu   sync.Mutex
	b    bytes.Buffer
	wake chan struct{} // closed at the next write
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.wake != nil {
		close(l.wake)
		l.wake = nil
	}
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// from returns the complete lines from the n-th on, and a channel closed
// at the next write.
func (l *logBuffer) from(n int) ([]string, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.wake == nil {
		l.wake = make(chan struct{})
	}
	s := l.b.String()
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	} else {
		s = ""
	}
	var lines []string
	if s != "" {
		lines = strings.Split(s, "\n")
	}
	if n >= len(lines) {
		return nil, l.wake
	}
	return lines[n:], l.wake
}

func (l *logBuffer) lines(keep func(string) bool) []string {
	all, _ := l.from(0)
	var out []string
	for _, s := range all {
		if keep(s) {
			out = append(out, s)
		}
	}
	return out
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
