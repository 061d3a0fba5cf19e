package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

const ctlToken = "ctl-test-token"

// adminLatch is `latch serve` with its admin API on a free port and a
// token file.
type adminLatch struct {
	*latchProcess
	admin     string // the admin API's URL
	tokenFile string
	cfgPath   string
	addr      string // the listener's
	targets   []string
}

var adminAddrRE = regexp.MustCompile(`msg="admin API listening" address=(\S+)`)

func startAdminLatch(t *testing.T) *adminLatch {
	t.Helper()
	dir := t.TempDir()
	a := &adminLatch{cfgPath: filepath.Join(dir, "latch.yaml"), tokenFile: filepath.Join(dir, "admin.token"),
		targets: []string{backend(t, "a", 0), backend(t, "b", 0)}, addr: freeAddr(t)}
	if err := os.WriteFile(a.tokenFile, []byte(ctlToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// token_file is relative to the config file.
	cfg := configYAML(a.addr, a.targets, dir) + "  token_file: admin.token\n"
	if err := os.WriteFile(a.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	a.start(t)
	return a
}

// start runs latch serve on a's config, and finds its admin API.
func (a *adminLatch) start(t *testing.T) {
	t.Helper()
	a.latchProcess = startLatch(t, a.cfgPath, a.addr)
	m := adminAddrRE.FindStringSubmatch(a.logs.String())
	if m == nil {
		t.Fatalf("latch did not log the admin API's address:\n%s", a.logs.String())
	}
	a.admin = "http://" + m[1]
	if strings.Contains(a.logs.String(), ctlToken) {
		t.Errorf("latch logged the admin token:\n%s", a.logs.String())
	}
}

// ctlRun runs `latch ctl` with args and env (LATCH_ADMIN and
// LATCH_ADMIN_TOKEN are cleared unless env sets them).
func ctlRun(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, latchBin, append([]string{"ctl"}, args...)...)
	cmd.Env = append(os.Environ(), "LATCH_ADMIN=", "LATCH_ADMIN_TOKEN=")
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("latch ctl %v did not exit within 30 s", args)
	}
	return exitCode(err), out.String(), errb.String()
}

// ctl runs `latch ctl` against a, with the token file, and fails t unless
// it exits with want.
func (a *adminLatch) ctl(t *testing.T, want int, args ...string) string {
	t.Helper()
	code, out, errs := ctlRun(t, []string{"LATCH_ADMIN=" + a.admin}, append([]string{"-token-file", a.tokenFile}, args...)...)
	if code != want {
		t.Fatalf("latch ctl %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out, errs)
	}
	if want == 1 {
		return errs
	}
	return out
}

// fields splits a table's lines into their columns.
func fields(out string) [][]string {
	var rows [][]string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		rows = append(rows, strings.Fields(l))
	}
	return rows
}

func TestCtlReadsAndJSON(t *testing.T) {
	a := startAdminLatch(t)
	rows := fields(a.ctl(t, 0, "groups"))
	if len(rows) != 2 || strings.Join(rows[0], " ") != "NAME PROTOCOL TARGETS HEALTHY UNHEALTHY" ||
		rows[1][0] != "web" || rows[1][1] != "HTTP1" || rows[1][2] != "2" {
		t.Errorf("groups: got %q", rows)
	}
	out := a.ctl(t, 0, "targets", "web")
	rows = fields(out)
	if len(rows) != 3 || strings.Join(rows[0], " ") != "ID WEIGHT STATE REASON IN-FLIGHT SESSIONS DRAIN" ||
		rows[1][0] != a.targets[0] || rows[2][0] != a.targets[1] || rows[1][1] != "1" {
		t.Errorf("targets:\n%s", out)
	}
	// Columns line up: every row's second column starts where the header's does.
	lines := strings.Split(out, "\n")
	if col := strings.Index(lines[0], "WEIGHT"); lines[1][col-2:col] != "  " || lines[1][col] != '1' {
		t.Errorf("targets: columns not aligned:\n%s", out)
	}

	// -o json: a list of objects with the contract's keys, before or after the verb.
	for _, args := range [][]string{{"-o", "json", "targets", "web"}, {"targets", "web", "-o", "json"}} {
		var ts []map[string]any
		if err := json.Unmarshal([]byte(a.ctl(t, 0, args...)), &ts); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if len(ts) != 2 {
			t.Fatalf("%v: got %d targets, want 2", args, len(ts))
		}
		for _, k := range []string{"id", "weight", "state", "reason", "sessions"} {
			if _, ok := ts[0][k]; !ok {
				t.Errorf("%v: target %v has no %q", args, ts[0], k)
			}
		}
		if ts[0]["id"] != a.targets[0] || ts[0]["weight"] != 1.0 {
			t.Errorf("%v: got %v", args, ts[0])
		}
	}
	// A minted cookie: the Cookie header value alone, for scripts and curl.
	out = a.ctl(t, 0, "mint-cookie", "web", a.targets[1])
	if !regexp.MustCompile(`^AWSALB=\S+\n$`).MatchString(out) {
		t.Errorf("mint-cookie: got %q", out)
	}
	req, _ := http.NewRequest("GET", a.url+"/", nil)
	req.Header.Set("Cookie", strings.TrimSpace(out))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "b" {
		t.Errorf("with the minted cookie: served by %q, want b", body)
	}
	rows = fields(a.ctl(t, 0, "sessions", "web", "-window", "10m"))
	if len(rows) != 3 || strings.Join(rows[0], " ") != "TARGET SESSIONS (last 10m0s)" {
		t.Errorf("sessions: got %q", rows)
	}
	if errs := a.ctl(t, 1, "sessions", "web", "-window", "10s"); !strings.Contains(errs, "session window 10s is not between 1m and") {
		t.Errorf("sessions -window 10s: stderr %q", errs)
	}

	var groups []map[string]any
	if err := json.Unmarshal([]byte(a.ctl(t, 0, "-o", "json", "groups")), &groups); err != nil || len(groups) != 1 || groups[0]["name"] != "web" {
		t.Errorf("groups -o json: %v %v", groups, err)
	}
	// Reads need no token on loopback; LATCH_ADMIN may omit the scheme.
	code, out, errs := ctlRun(t, []string{"LATCH_ADMIN=" + strings.TrimPrefix(a.admin, "http://")}, "groups")
	if code != 0 || !strings.Contains(out, "web") {
		t.Errorf("groups with no token: exit %d\n%s%s", code, out, errs)
	}
}

func TestCtlWrites(t *testing.T) {
	a := startAdminLatch(t)
	extra := backend(t, "c", 0)

	// No token: refused by latch, exit 1 with its message.
	code, _, errs := ctlRun(t, []string{"LATCH_ADMIN=" + a.admin}, "register", "web", extra)
	if code != 1 || !strings.Contains(errs, "needs the admin token") {
		t.Errorf("register with no token: exit %d, stderr %q", code, errs)
	}
	// The token from the environment does as well as the file.
	code, out, errs := ctlRun(t, []string{"LATCH_ADMIN=" + a.admin, "LATCH_ADMIN_TOKEN=" + ctlToken}, "register", "web", extra, "-weight", "3")
	if rows := fields(out); code != 0 || len(rows) != 2 || rows[1][0] != extra || rows[1][1] != "3" {
		t.Fatalf("register: exit %d\n%s%s", code, out, errs)
	}

	// -weight 0 is latch's to refuse, not "no weight given".
	errs = a.ctl(t, 1, "register", "web", "127.0.0.1:1", "-weight", "0")
	if !strings.Contains(errs, "target_groups[0].targets[3].weight: 0 is outside 1-1000") {
		t.Errorf("register -weight 0: stderr %q", errs)
	}
	rows := fields(a.ctl(t, 0, "weight", "web", a.targets[0], "5"))
	if rows[1][0] != a.targets[0] || rows[1][1] != "5" {
		t.Errorf("weight: got %q", rows)
	}
	errs = a.ctl(t, 1, "weight", "web", a.targets[0], "0")
	if !strings.Contains(errs, "target_groups[0].targets[0].weight: 0 is outside 1-1000") {
		t.Errorf("weight 0: stderr %q", errs)
	}
	errs = a.ctl(t, 1, "deregister", "nope", a.targets[0])
	if !strings.Contains(errs, `target group "nope" does not exist`) {
		t.Errorf("unknown group: stderr %q", errs)
	}
	errs = a.ctl(t, 1, "undrain", "web", "10.9.9.9:80")
	if !strings.Contains(errs, `target 10.9.9.9:80 is not registered in target group "web"`) {
		t.Errorf("unknown target: stderr %q", errs)
	}

	// Flags after the arguments; -wait returns once the drain is done:
	// with no session on the target, after the idle window.
	out = a.ctl(t, 0, "drain", "web", a.targets[1], "-mode", "keep_sessions", "-idle", "1s", "-wait")
	if rows := fields(out); rows[1][2] != "draining" || !strings.Contains(out, "keep_sessions, complete") {
		t.Errorf("drain -wait:\n%s", out)
	}
	errs = a.ctl(t, 1, "drain", "web", a.targets[1], "-idle", "0.5s")
	if !strings.Contains(errs, "idle 500ms is not between 1s and 24h0m0s") {
		t.Errorf("drain -idle 0.5s: stderr %q", errs)
	}
	var tv map[string]any
	if err := json.Unmarshal([]byte(a.ctl(t, 0, "undrain", "web", a.targets[1], "-o", "json")), &tv); err != nil || tv["drain"] != nil {
		t.Errorf("undrain -o json: %v %v", tv, err)
	}
	a.ctl(t, 0, "drain", "web", a.targets[1], "-mode", "immediate")
	a.ctl(t, 0, "deregister", "web", a.targets[0])

	// The diff, then a SIGHUP of the unchanged file: the runtime changes stay.
	want := [][]string{
		{"GROUP", "CHANGE", "WHAT", "RUNNING", "FILE"},
		{"web", "registered", extra, "weight", "3", "-"},
		{"web", "deregistered", a.targets[0], "-", "weight", "1"},
		{"web", "drained", a.targets[1], "immediate", "-"},
	}
	check := func(when string) {
		t.Helper()
		if got := fields(a.ctl(t, 0, "diff")); !equalRows(got, want) {
			t.Errorf("diff %s: got %q, want %q", when, got, want)
		}
	}
	check("before SIGHUP")
	a.cmd.Process.Signal(syscall.SIGHUP)
	a.waitLog(t, "config reloaded", 1)
	check("after SIGHUP")
	out = a.ctl(t, 0, "reload")
	if !regexp.MustCompile(`^reloaded: config version \d+\n$`).MatchString(out) {
		t.Errorf("reload: got %q", out)
	}
	check("after ctl reload")
	// And a restart: the runtime changes persist in state_dir.
	a.cmd.Process.Signal(syscall.SIGTERM)
	if code := a.wait(t); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
	a.start(t)
	check("after a restart")
	var d struct {
		TargetGroups []map[string]any `json:"target_groups"`
	}
	if err := json.Unmarshal([]byte(a.ctl(t, 0, "diff", "-o", "json")), &d); err != nil || len(d.TargetGroups) != 1 {
		t.Errorf("diff -o json: %+v %v", d, err)
	}

	// A reload of a broken file: refused, every problem on stderr, exit 1.
	cfg, _ := os.ReadFile(a.cfgPath)
	os.WriteFile(a.cfgPath, []byte(strings.Replace(string(cfg), "interval_seconds: 0.1", "interval_seconds: 0", 1)), 0o644)
	errs = a.ctl(t, 1, "reload")
	if !strings.Contains(errs, "reload refused; the running config stays") || !strings.Contains(errs, "health_check.interval_seconds") {
		t.Errorf("broken reload: stderr %q", errs)
	}
}

func equalRows(a, b [][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if strings.Join(a[i], "\x00") != strings.Join(b[i], "\x00") {
			return false
		}
	}
	return true
}

func TestCtlUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "no verb given"},
		{[]string{"frobnicate"}, `unknown verb "frobnicate"`},
		{[]string{"targets"}, "targets takes GROUP; got 0 arguments"},
		{[]string{"weight", "web", "127.0.0.1:1", "heavy"}, `weight "heavy" is not a whole number`},
		{[]string{"-o", "yaml", "groups"}, `-o "yaml": want table or json`},
		{[]string{"drain", "web", "127.0.0.1:1", "-bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"register", "web", "127.0.0.1:1", "-weight", "x"}, `invalid value "x" for flag -weight: "x" is not a whole number`},
	} {
		code, out, errs := ctlRun(t, nil, c.args...)
		if code != 2 || !strings.Contains(errs, c.want) || !strings.Contains(errs, "usage: latch ctl") || out != "" {
			t.Errorf("latch ctl %v: exit %d, stderr %q; want exit 2 with %q and the usage", c.args, code, errs, c.want)
		}
	}
	code, out, _ := ctlRun(t, nil, "help")
	if code != 0 || !strings.HasPrefix(out, "usage: latch ctl") {
		t.Errorf("latch ctl help: exit %d, %q", code, out)
	}
	// Nothing listening: exit 1, saying where it looked.
	addr := freeAddr(t)
	code, _, errs := ctlRun(t, []string{"LATCH_ADMIN=http://" + addr}, "groups")
	if code != 1 || !strings.Contains(errs, "cannot reach the admin API at http://"+addr) {
		t.Errorf("nothing listening: exit %d, stderr %q", code, errs)
	}
}

// TestDemoStartsTheAdminAPI: `latch demo` prints the admin API's URL and
// a token that works.
func TestDemoStartsTheAdminAPI(t *testing.T) {
	cmd := exec.Command(latchBin, "demo", "-addr", "127.0.0.1:0", "-admin", "127.0.0.1:0")
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-done
	}()
	p := &latchProcess{cmd: cmd, logs: out, done: done}
	p.waitLog(t, "latch ctl targets app", 1)
	m := regexp.MustCompile(`export LATCH_ADMIN=(\S+) LATCH_ADMIN_TOKEN=(\S+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no admin URL and token in:\n%s", out.String())
	}
	env := []string{"LATCH_ADMIN=" + m[1], "LATCH_ADMIN_TOKEN=" + m[2]}
	code, stdout, errs := ctlRun(t, env, "targets", "app")
	if rows := fields(stdout); code != 0 || len(rows) != 4 {
		t.Fatalf("targets app: exit %d\n%s%s", code, stdout, errs)
	}
	// The token allows writes.
	target := fields(stdout)[1][0]
	if code, stdout, errs := ctlRun(t, env, "weight", "app", target, "2"); code != 0 {
		t.Errorf("weight with the demo's token: exit %d\n%s%s", code, stdout, errs)
	}
}

// TestServeAdminRefusals: latch serve does not start with an admin API
// open to the network and no token, nor when the admin address is taken.
func TestServeAdminRefusals(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "latch.yaml")
	base := configYAML(freeAddr(t), []string{backend(t, "a", 0)}, dir)
	// 10.255.255.1 is not this host's, so nothing binds should the check go.
	open := strings.Replace(base, "address: 127.0.0.1:0 # tests run many latches at once", "address: 10.255.255.1:9901", 1)
	os.WriteFile(cfgPath, []byte(open), 0o644)
	code, stderr := runLatch(t, "serve", "-config", cfgPath)
	if code != 1 || !strings.Contains(stderr, "admin.address 10.255.255.1:9901 is not a loopback address and no admin token is set") {
		t.Errorf("open admin, no token: exit %d, stderr:\n%s", code, stderr)
	}

	taken := freeAddr(t)
	ln, err := net.Listen("tcp", taken)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	os.WriteFile(cfgPath, []byte(strings.Replace(base, "address: 127.0.0.1:0 # tests run many latches at once", "address: "+taken, 1)), 0o644)
	code, stderr = runLatch(t, "serve", "-config", cfgPath)
	if code != 1 || !strings.Contains(stderr, "admin.address: listen tcp "+taken) {
		t.Errorf("admin address taken: exit %d, stderr:\n%s", code, stderr)
	}

	// A token in the file: exit 2, saying where the token goes.
	os.WriteFile(cfgPath, []byte(base+"  token: hunter2\n"), 0o644)
	code, stderr = runLatch(t, "serve", "-config", cfgPath)
	if code != 2 || !strings.Contains(stderr, "admin.token: the token is never written in the config") || strings.Contains(stderr, "hunter2") {
		t.Errorf("token in the file: exit %d, stderr:\n%s", code, stderr)
	}
}
