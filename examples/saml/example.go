package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/crewjam/saml/samlidp"
	"golang.org/x/crypto/bcrypt"

	"github.com/latch-lb/latch/internal/admin"
	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/ctl"
	"github.com/latch-lb/latch/internal/dashboard"
	"github.com/latch-lb/latch/internal/metrics"
	"github.com/latch-lb/latch/internal/server"
	"github.com/latch-lb/latch/internal/target"
)

// The example's user at the IdP.
const (
	User     = "alice"
	Password = "wonderland"
)

// Instances is how many SP instances run behind latch.
const Instances = 3

// Group is latch's target group of the SP instances.
const Group = "sp"

// Options configure Start.
type Options struct {
	// Addr is latch's HTTPS listener (port 0 picks one). The SP's public
	// URL is https://localhost:PORT/.
	Addr string
	// IdPAddr is the IdP's HTTPS listener (port 0 picks one); the IdP's
	// URL is https://127.0.0.1:PORT/, another site than the SP's.
	IdPAddr string
	// AdminAddr is latch's admin API and dashboard (port 0 picks one).
	AdminAddr string
	// Sticky is the stickiness: none, lb_cookie or app_cookie.
	Sticky string
	// AppCookie is the application cookie of app_cookie stickiness:
	// saml_login (set when a login starts) or token (samlsp's session
	// cookie, set once a login succeeded).
	AppCookie string
	// Attributes are more target group attributes, for a test to turn a
	// part of latch off (stickiness.lb_cookie.cors_cookie.enabled: false).
	Attributes map[string]string
	// Keys are the keys and certificates; nil: generated.
	Keys *Keys
	// Exe is the binary that runs an SP instance when started with spEnv
	// set; "": this one (os.Executable).
	Exe string
	// Log gets the IdP's, the SPs' and latch's logs; nil: discarded.
	Log io.Writer
}

// Example is the running whole: the IdP, the SP instances and latch.
type Example struct {
	URL      string // the SP's public URL, through latch
	IdPURL   string
	Admin    string // latch's admin API URL
	Token    string // its token
	Keys     *Keys
	YAML     string // latch's config
	SPs      []*SPProcess
	Latch    *server.Server
	o        Options
	dir      string
	idp      *http.Server
	adm      *admin.Admin
	metrics  *metrics.Metrics
	dash     *dashboard.Dashboard
	closeLog func()
}

// Start starts the example; Close ends it.
func Start(ctx context.Context, o Options) (e *Example, err error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Exe == "" {
		if o.Exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	stickiness, err := stickinessAttributes(o.Sticky, o.AppCookie)
	if err != nil {
		return nil, err
	}
	for k, v := range o.Attributes {
		stickiness += fmt.Sprintf("      %s: %q\n", k, v)
	}
	e = &Example{o: o, Keys: o.Keys, Token: admin.NewToken()}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.Keys == nil {
		if e.Keys, err = NewKeys(); err != nil {
			return nil, err
		}
	}
	if e.dir, err = os.MkdirTemp("", "latch-saml-example-"); err != nil {
		return nil, err
	}

	// Every instance keeps its address across restarts, so that latch
	// knows it as the same target.
	spec := spSpec{Instances: map[string]string{}}
	var targets string
	for i := 1; i <= Instances; i++ {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("sp-%d", i)
		spec.Instances[name] = addr
		e.SPs = append(e.SPs, &SPProcess{Name: name, Addr: addr})
		targets += fmt.Sprintf("      - id: %s\n", addr)
	}

	// latch first: the SP's URL is latch's.
	tlsCrt, tlsKey := filepath.Join(e.dir, "tls.crt"), filepath.Join(e.dir, "tls.key")
	if err := os.WriteFile(tlsCrt, e.Keys.TLSCert, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(tlsKey, e.Keys.TLSKey, 0o600); err != nil {
		return nil, err
	}
	e.YAML = fmt.Sprintf(`listeners:
  - name: saml
    address: %s
    protocol: HTTPS
    certificates:
      - cert_file: %s
        key_file: %s
    default_action:
      type: forward
      forward: { target_group: %s }
target_groups:
  - name: %s
    targets:
%s    health_check:
      path: /healthz
      interval_seconds: 0.5
      timeout_seconds: 0.25
      healthy_threshold_count: 2
      unhealthy_threshold_count: 2
    attributes:
%s      deregistration_delay.timeout_seconds: "1"
state_dir: %s
`, o.Addr, tlsCrt, tlsKey, Group, Group, targets, stickiness, filepath.Join(e.dir, "state"))
	cfg, err := config.Parse([]byte(e.YAML), "")
	if err != nil {
		return nil, fmt.Errorf("latch config: %w", err)
	}
	dataPath, err := server.ParseDataPath(os.Getenv("LATCH_DATA_PATH"))
	if err != nil {
		return nil, fmt.Errorf("LATCH_DATA_PATH: %w", err)
	}
	slogger := slog.New(slog.NewTextHandler(o.Log, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e.metrics = metrics.New()
	if e.Latch, err = server.New(server.Options{Log: slogger, DataPath: dataPath, Observer: e.metrics.Observer()}); err != nil {
		return nil, err
	}
	e.metrics.Watch(e.Latch)
	if o.AdminAddr != "" {
		cfg.Admin = config.Admin{Enabled: true, Address: o.AdminAddr}
	}
	if err := e.Latch.Apply(ctx, cfg); err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(e.Latch.Addr("saml"))
	e.URL = "https://localhost:" + port + "/"
	spec.URL = e.URL
	if o.AdminAddr != "" {
		e.dash = dashboard.New(e.Latch, e.metrics, slogger)
		e.adm, err = admin.Start(admin.Options{Server: e.Latch, Address: o.AdminAddr, Token: e.Token, Log: slogger,
			Metrics: e.metrics.Handler(), Dashboard: e.dash.Handler(), Stream: e.dash.Stream()})
		if err != nil {
			return nil, err
		}
		e.Admin = "http://" + e.adm.Addr()
	}

	// The IdP knows the SP by its metadata, made from the same options as
	// the instances' own.
	u, _ := url.Parse(e.URL)
	spMeta, err := samlspMetadata(u, e.Keys)
	if err != nil {
		return nil, err
	}
	idpMeta, err := e.startIdP(o.IdPAddr, spMeta)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(e.dir, "idp-metadata.xml"), idpMeta, 0o644); err != nil {
		return nil, err
	}
	if err := e.Keys.writeSPKey(e.dir); err != nil {
		return nil, err
	}
	sb, _ := json.MarshalIndent(spec, "", "  ")
	if err := os.WriteFile(filepath.Join(e.dir, "spec.json"), sb, 0o644); err != nil {
		return nil, err
	}

	events := e.Latch.Subscribe(64)
	defer events.Close()
	for _, p := range e.SPs {
		p.e = e
		if err := p.Start(); err != nil {
			return nil, err
		}
	}
	if err := e.waitHealthy(ctx, events, 10*time.Second); err != nil {
		return nil, err
	}
	return e, nil
}

// stickinessAttributes are the target group's attributes for a kind of
// stickiness.
func stickinessAttributes(kind, appCookie string) (string, error) {
	switch kind {
	case "none":
		return "      stickiness.enabled: \"false\"\n", nil
	case "lb_cookie":
		return "      stickiness.enabled: \"true\"\n      stickiness.type: lb_cookie\n      stickiness.lb_cookie.duration_seconds: \"3600\"\n", nil
	case "app_cookie":
		if appCookie == "" {
			return "", errors.New("app_cookie stickiness needs the application cookie's name: saml_login or token")
		}
		return fmt.Sprintf("      stickiness.enabled: \"true\"\n      stickiness.type: app_cookie\n      stickiness.app_cookie.cookie_name: %s\n      stickiness.app_cookie.duration_seconds: \"3600\"\n", appCookie), nil
	}
	return "", fmt.Errorf("stickiness %q is not one of none, lb_cookie, app_cookie", kind)
}

func samlspMetadata(u *url.URL, k *Keys) ([]byte, error) {
	m, err := newSPMiddleware(u, k.SPKey, k.SPCert, nil)
	if err != nil {
		return nil, err
	}
	return xml.Marshal(m.ServiceProvider.Metadata())
}

// startIdP starts crewjam/saml's samlidp on addr over HTTPS, with the
// example's user and the SP whose metadata is spMeta, and returns the
// IdP's metadata.
func (e *Example) startIdP(addr string, spMeta []byte) ([]byte, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	e.IdPURL = "https://" + ln.Addr().String() + "/"
	u, _ := url.Parse(e.IdPURL)
	store := &samlidp.MemoryStore{}
	// bcrypt's lowest cost: the example's one user logs in many times in
	// the tests, and its password guards nothing.
	hash, err := bcrypt.GenerateFromPassword([]byte(Password), bcrypt.MinCost)
	if err != nil {
		ln.Close()
		return nil, err
	}
	if err := store.Put("/users/"+User, samlidp.User{Name: User, HashedPassword: hash, Email: User + "@example.com",
		CommonName: "Alice Liddell", GivenName: "Alice", Surname: "Liddell"}); err != nil {
		ln.Close()
		return nil, err
	}
	svc := samlidp.Service{Name: "sp"}
	if err := xml.Unmarshal(spMeta, &svc.Metadata); err != nil {
		ln.Close()
		return nil, err
	}
	if err := store.Put("/services/sp", svc); err != nil {
		ln.Close()
		return nil, err
	}
	idp, err := samlidp.New(samlidp.Options{URL: *u, Key: e.Keys.IdPKey, Signer: e.Keys.IdPKey, Certificate: e.Keys.IdPCert,
		Store: store, Logger: log.New(e.o.Log, "idp: ", 0)})
	if err != nil {
		ln.Close()
		return nil, err
	}
	cert, err := tls.X509KeyPair(e.Keys.TLSCert, e.Keys.TLSKey)
	if err != nil {
		ln.Close()
		return nil, err
	}
	e.idp = &http.Server{Handler: idp, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		ErrorLog:  log.New(e.o.Log, "idp: ", 0)}
	go e.idp.ServeTLS(ln, "", "")
	return xml.Marshal(idp.IDP.Metadata())
}

// waitHealthy waits until every SP instance is healthy in latch and none
// is drained, or fails after d.
func (e *Example) waitHealthy(ctx context.Context, events *server.Subscription, d time.Duration) error {
	timeout := time.NewTimer(d)
	defer timeout.Stop()
	for {
		if e.healthy() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-events.C:
		case <-timeout.C:
			return fmt.Errorf("not every SP instance is healthy in latch after %v", d)
		}
	}
}

func (e *Example) healthy() bool {
	g := e.Latch.Snapshot().Group(Group)
	if g == nil || len(g.Targets) != len(e.SPs) {
		return false
	}
	for _, t := range g.Targets {
		if t.State != target.Healthy {
			return false
		}
	}
	return true
}

// Close stops everything the example started.
func (e *Example) Close() {
	for _, p := range e.SPs {
		p.Kill()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if e.adm != nil {
		e.adm.Shutdown(ctx)
	}
	if e.dash != nil {
		e.dash.Close()
	}
	if e.Latch != nil {
		e.Latch.Shutdown(ctx)
	}
	if e.metrics != nil {
		e.metrics.Close()
	}
	if e.idp != nil {
		e.idp.Close()
	}
	if e.dir != "" {
		os.RemoveAll(e.dir)
	}
}

// Ctl runs `latch ctl` against the example's admin API, as a deploy
// script would, writing its output to out; it returns ctl's exit code.
func (e *Example) Ctl(ctx context.Context, out io.Writer, args ...string) int {
	env := map[string]string{ctl.AdminEnv: e.Admin, "LATCH_ADMIN_TOKEN": e.Token}
	return ctl.Run(ctx, args, func(k string) string { return env[k] }, out, out)
}

// RollingRestart restarts every SP instance in turn, without losing a
// login in flight: drain it in latch with keep_sessions (new logins go to
// the others; those it began finish on it), wait until no session has
// used it for idle, stop it with SIGTERM, start it again, undrain it, and
// wait until latch finds it healthy. before, if set, is called before
// each instance's drain.
func (e *Example) RollingRestart(ctx context.Context, out io.Writer, idle time.Duration, before func(*SPProcess)) error {
	events := e.Latch.Subscribe(64)
	defer events.Close()
	for _, p := range e.SPs {
		if before != nil {
			before(p)
		}
		fmt.Fprintf(out, "\n$ latch ctl drain %s %s -mode keep_sessions -idle %v -deadline 1m -wait\n", Group, p.Addr, idle)
		start := time.Now()
		if code := e.Ctl(ctx, out, "drain", Group, p.Addr, "-mode", "keep_sessions", "-idle", idle.String(), "-deadline", "1m", "-wait"); code != 0 {
			return fmt.Errorf("latch ctl drain %s: exit %d", p.Addr, code)
		}
		fmt.Fprintf(out, "%s drained in %.1f s\n", p.Name, time.Since(start).Seconds())
		start = time.Now()
		if err := p.Stop(); err != nil {
			return err
		}
		if err := p.Start(); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s stopped (SIGTERM) and started again in %.1f s\n$ latch ctl undrain %s %s\n", p.Name, time.Since(start).Seconds(), Group, p.Addr)
		start = time.Now()
		if code := e.Ctl(ctx, out, "undrain", Group, p.Addr); code != 0 {
			return fmt.Errorf("latch ctl undrain %s: exit %d", p.Addr, code)
		}
		if err := e.waitHealthy(ctx, events, 10*time.Second); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s healthy in latch %.1f s after the undrain\n", p.Name, time.Since(start).Seconds())
	}
	return nil
}

// SPProcess is one SP instance's process.
type SPProcess struct {
	Name, Addr string
	e          *Example

	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{} // closed once cmd has exited
	errMu sync.Mutex    // guards err
	err   error         // cmd.Wait's, once done
}

// Start starts the instance and returns once it serves.
func (p *SPProcess) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s is running (pid %d)", p.Name, p.cmd.Process.Pid)
		}
	}
	cmd := exec.Command(p.e.o.Exe)
	cmd.Env = append(os.Environ(), spEnv+"="+p.Name+" "+p.e.dir)
	cmd.Stderr = p.e.o.Log
	// An instance dies with the example, even one killed with SIGKILL.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	ready := make(chan bool, 1)
	go func() {
		r := bufio.NewReader(out)
		line, _ := r.ReadString('\n')
		ready <- line == "SERVING\n"
		io.Copy(io.Discard, r)
		err := cmd.Wait()
		// Not under p.mu: Start holds it while it waits for done when the
		// instance fails to start.
		p.errMu.Lock()
		p.err = err
		p.errMu.Unlock()
		close(done)
	}()
	select {
	case ok := <-ready:
		if !ok {
			<-done
			return fmt.Errorf("%s did not start: %v", p.Name, p.exitErr())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		return fmt.Errorf("%s did not start within 10 s", p.Name)
	}
	return nil
}

// Pid is the running process's id, or 0.
func (p *SPProcess) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	select {
	case <-p.done:
		return 0
	default:
		return p.cmd.Process.Pid
	}
}

// Kill ends the instance with SIGKILL, as a crash would, and returns once
// it has exited.
func (p *SPProcess) Kill() { p.signal(syscall.SIGKILL) }

// Stop ends the instance with SIGTERM: it finishes the requests it has.
func (p *SPProcess) Stop() error {
	p.signal(syscall.SIGTERM)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.exitErr(); err != nil {
		return fmt.Errorf("%s: %v", p.Name, err)
	}
	return nil
}

// exitErr is the last run's exit error (cmd.Wait's), once it has exited.
func (p *SPProcess) exitErr() error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.err
}

func (p *SPProcess) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// freeAddr returns a free loopback address for an SP instance, which it
// keeps across restarts. The port is below the kernel's ephemeral range:
// one from that range (port 0's) can be taken, between the instance's
// runs, as the source port of any outgoing connection, and the instance
// would then fail to bind it (seen under load in CI).
func freeAddr() (string, error) {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var lo, hi int
		if n, _ := fmt.Sscan(string(b), &lo, &hi); n == 2 && lo > 2048 {
			low = lo
		}
	}
	for range 200 {
		port := 1024 + rand.IntN(low-1024)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		ln.Close()
		return ln.Addr().String(), nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// instance returns the SP process named n (sp-1...), or nil.
func (e *Example) instance(n string) *SPProcess {
	for _, p := range e.SPs {
		if p.Name == n {
			return p
		}
	}
	if i, err := strconv.Atoi(n); err == nil && i >= 1 && i <= len(e.SPs) {
		return e.SPs[i-1]
	}
	return nil
}
