package discovery

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/leaktest"
	"github.com/latch-lb/latch/internal/proxy"
	"github.com/latch-lb/latch/internal/server"
)

// dnsServer is a real DNS server on 127.0.0.1 (miekg/dns, UDP), whose
// records a test changes while it serves.
type dnsServer struct {
	addr    string
	srv     *dns.Server
	queries chan query // one per query answered, dropped when full

	mu       sync.Mutex
	records  map[string][]dns.RR // by lower-case owner name and type: "name.|A"
	extra    map[string][]dns.RR // additional records for an SRV answer
	servfail bool
}

type query struct {
	name  string
	qtype uint16
	at    time.Time
}

func startDNS(t *testing.T) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dnsServer{addr: pc.LocalAddr().String(), queries: make(chan query, 256),
		records: map[string][]dns.RR{}, extra: map[string][]dns.RR{}}
	started := make(chan struct{})
	d.srv = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(d.serve), NotifyStartedFunc: func() { close(started) }}
	go d.srv.ActivateAndServe()
	<-started
	t.Cleanup(d.stop)
	return d
}

// stop closes the server: the port then refuses (ICMP port unreachable).
func (d *dnsServer) stop() { d.srv.Shutdown() }

func key(name string, qtype uint16) string {
	return strings.ToLower(dns.Fqdn(name)) + "|" + dns.TypeToString[qtype]
}

// set replaces the records of name and type, each written as in a zone
// file ("app.test. 1 IN A 127.0.0.2"); extra are the additional records
// an answer for them carries.
func (d *dnsServer) set(t *testing.T, name string, qtype uint16, rrs []string, extra ...string) {
	t.Helper()
	parse := func(ss []string) []dns.RR {
		var out []dns.RR
		for _, s := range ss {
			rr, err := dns.NewRR(s)
			if err != nil {
				t.Fatalf("record %q: %v", s, err)
			}
			out = append(out, rr)
		}
		return out
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	k := key(name, qtype)
	if rrs == nil {
		delete(d.records, k)
	} else {
		d.records[k] = parse(rrs)
	}
	d.extra[k] = parse(extra)
}

func (d *dnsServer) setServfail(on bool) {
	d.mu.Lock()
	d.servfail = on
	d.mu.Unlock()
}

func (d *dnsServer) serve(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	q := r.Question[0]
	d.mu.Lock()
	switch {
	case d.servfail:
		m.Rcode = dns.RcodeServerFailure
	default:
		m.Authoritative = true
		m.Answer = d.records[key(q.Name, q.Qtype)]
		m.Extra = d.extra[key(q.Name, q.Qtype)]
		if m.Answer == nil {
			exists := false
			for k := range d.records {
				exists = exists || strings.HasPrefix(k, strings.ToLower(q.Name)+"|")
			}
			if !exists {
				m.Rcode = dns.RcodeNameError
			}
		}
	}
	d.mu.Unlock()
	w.WriteMsg(m)
	select {
	case d.queries <- query{q.Name, q.Qtype, time.Now()}:
	default:
	}
}

// target is a real HTTP target on a loopback address: it answers with its
// own address, and the X-Latch-Session-Moved it was sent.
type target struct {
	addr string
}

// targetsOn starts a target on each of ips with one port for all (A
// records carry no port): the whole of 127.0.0.0/8 is loopback on Linux.
func targetsOn(t *testing.T, ips ...string) []target {
	t.Helper()
	for try := 0; try < 20; try++ {
		var lns []net.Listener
		ln, err := net.Listen("tcp", ips[0]+":0")
		if err != nil {
			t.Skipf("cannot listen on %s: %v", ips[0], err)
		}
		lns = append(lns, ln)
		port := ln.Addr().(*net.TCPAddr).Port
		for _, ip := range ips[1:] {
			l, err := net.Listen("tcp", fmt.Sprintf("%s:%d", ip, port))
			if err != nil {
				break
			}
			lns = append(lns, l)
		}
		if len(lns) < len(ips) {
			for _, l := range lns {
				l.Close()
			}
			continue // the port was taken on another address: another
		}
		var out []target
		for _, l := range lns {
			out = append(out, serveTarget(t, l))
		}
		return out
	}
	t.Fatalf("no port free on all of %v", ips)
	return nil
}

func serveTarget(t *testing.T, ln net.Listener) target {
	self := ln.Addr().String()
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		w.Header().Set("X-Moved", r.Header.Get(proxy.MovedHeader))
		io.WriteString(w, self)
	})}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return target{addr: self}
}

// lb is a real latch with DNS discovery.
type lb struct {
	srv    *server.Server
	disc   *Discovery
	url    string
	events *server.Subscription
	looked chan Status
	logs   *syncBuffer
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

// latchYAML is a config with one sticky group, web, that has targets
// (may be none) and discovery (the dns mapping's keys, in flow style).
func latchYAML(stateDir string, targets []string, dns string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `listeners:
  - name: front
    address: 127.0.0.1:0
    default_action: {type: forward, forward: {target_group: web}}
target_groups:
  - name: web
    targets: [%s]
    health_check: {path: /healthz, interval_seconds: 0.1, timeout_seconds: 0.05, healthy_threshold_count: 2}
    discovery:
      dns: {%s}
    attributes:
      stickiness.enabled: "true"
      deregistration_delay.timeout_seconds: 0
state_dir: %s
`, strings.Join(targets, ", "), dns, stateDir)
	return b.String()
}

func startLB(t *testing.T, yaml string) *lb {
	t.Helper()
	leaktest.Check(t)
	cfg, err := config.Parse([]byte(yaml), "latch.yaml")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	srv, err := server.New(server.Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	l := &lb{srv: srv, events: srv.Subscribe(1024), looked: make(chan Status, 64), logs: logs}
	if err := srv.Apply(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	l.url = "http://" + srv.Addr("front")
	l.disc = New(Options{Server: srv, Log: log, OnLookup: func(s Status) {
		select {
		case l.looked <- s:
		default:
		}
	}})
	l.disc.Apply(cfg)
	t.Cleanup(func() {
		l.disc.Stop()
		srv.Shutdown(context.Background())
		if t.Failed() {
			t.Logf("latch's log:\n%s", logs.String())
		}
	})
	return l
}

// waitEvent waits up to 10 s for an event that ok accepts.
func (l *lb) waitEvent(t *testing.T, what string, ok func(server.Event) bool) server.Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-l.events.C:
			if ok(e) {
				return e
			}
		case <-timeout:
			t.Fatalf("no %s within 10 s", what)
		}
	}
}

func (l *lb) waitTarget(t *testing.T, kind server.EventKind, id string) server.Event {
	t.Helper()
	return l.waitEvent(t, kind.String()+" of "+id, func(e server.Event) bool { return e.Kind == kind && e.Target == id })
}

// waitHealthy waits until the target is healthy.
func (l *lb) waitHealthy(t *testing.T, id string) {
	t.Helper()
	l.waitEvent(t, id+" healthy", func(e server.Event) bool {
		return e.Kind == server.TargetHealth && e.Target == id && e.Health.State.String() == "healthy"
	})
}

// waitLookup waits up to 10 s for a lookup whose status ok accepts.
func (l *lb) waitLookup(t *testing.T, what string, ok func(Status) bool) Status {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case s := <-l.looked:
			if ok(s) {
				return s
			}
		case <-timeout:
			t.Fatalf("no lookup %s within 10 s", what)
		}
	}
}

// targetStatus returns the target's status in web, or nil.
func (l *lb) targetStatus(id string) *server.TargetStatus {
	for _, g := range l.srv.Snapshot().Groups {
		for i := range g.Targets {
			if g.Name == "web" && g.Targets[i].ID == id {
				return &g.Targets[i]
			}
		}
	}
	return nil
}

// client is a browser: a sticky cookie it keeps.
type client struct {
	cookie string // AWSALB=...
}

type reply struct {
	backend, moved, cookie string
}

func (c *client) get(t *testing.T, url string) reply {
	t.Helper()
	req, err := http.NewRequest("GET", url+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.cookie != "" {
		req.Header.Set("Cookie", c.cookie)
	}
	resp, err := http.DefaultTransport.(*http.Transport).Clone().RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET: status %d, body %q", resp.StatusCode, body)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == "AWSALB" {
			c.cookie = "AWSALB=" + ck.Value
		}
	}
	return reply{backend: string(body), moved: resp.Header.Get("X-Moved"), cookie: c.cookie}
}

// stuckTo returns a client whose session is on target id, trying up to
// 50 new clients.
func stuckTo(t *testing.T, url, id string) *client {
	t.Helper()
	for range 50 {
		c := &client{}
		if r := c.get(t, url); r.backend == id {
			return c
		}
	}
	t.Fatalf("no new session landed on %s in 50 tries", id)
	return nil
}
