package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/desync"
	"github.com/latch-lb/latch/internal/proxy"
	"github.com/latch-lb/latch/internal/sticky"
	"github.com/latch-lb/latch/internal/testnet"
)

// records is an Observer that keeps a copy of every record it sees.
type records struct {
	mu      sync.Mutex
	begun   int
	ended   []proxy.Record
	refused []proxy.Record
	came    chan struct{} // a token per End or Refused
}

func newRecords() *records { return &records{came: make(chan struct{}, 1024)} }

func (r *records) Begin(*proxy.Record) {
	r.mu.Lock()
	r.begun++
	r.mu.Unlock()
}

func (r *records) End(rec *proxy.Record) {
	r.mu.Lock()
	c := *rec
	c.Method = append([]byte(nil), rec.Method...) // the record's bytes are the connection's
	r.ended = append(r.ended, c)
	r.mu.Unlock()
	r.came <- struct{}{}
}

func (r *records) Refused(rec *proxy.Record) {
	r.mu.Lock()
	r.refused = append(r.refused, *rec)
	r.mu.Unlock()
	r.came <- struct{}{}
}

func (r *records) Conn(proxy.ConnEvent) {}

// last waits for the next End or Refused and returns the latest ended
// record (End is called once the answer is written, so a client may read
// its answer first).
func (r *records) last(t *testing.T) proxy.Record {
	t.Helper()
	select {
	case <-r.came:
	case <-time.After(5 * time.Second):
		t.Fatal("no record within 5 s of the answer")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ended[len(r.ended)-1]
}

// TestObserverRecords checks what the observer seam tells of each kind of
// request: the target's answers with their sticky outcomes and reasons,
// latch's own answers, retries, bytes, and requests refused before they
// began.
func TestObserverRecords(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	dead := deadAddr(t)
	obs := newRecords()
	yaml := fmt.Sprintf(`listeners:
  - name: front
    address: 127.0.0.1:0
    rules:
      - priority: 10
        conditions: [{ path_pattern: ["/ping"] }]
        action: { type: fixed-response, fixed_response: { status_code: "200", message_body: "pong" } }
    default_action: { type: forward, forward: { target_group: web } }
target_groups:
  - name: web
    targets: [{ id: %s }, { id: %s }]
    health_check: { enabled: false }
    attributes:
      stickiness.enabled: "true"
      deregistration_delay.timeout_seconds: "5"
`, a.addr, b.addr) + keyYAML()
	lb := startObserved(t, yaml, "", "http", obs)

	r := get(t, lb.url+"/", "")
	rec := obs.last(t)
	if rec.Status != 200 || rec.ByLatch || rec.Target == nil || rec.Target.ID != addrOf(r.backend, a, b) ||
		rec.Group != "web" || rec.Rule != 0 || rec.Sticky != sticky.Started || rec.BytesOut != int64(len(r.body)) ||
		string(rec.Method) != "GET" || rec.Listener != "front" || rec.Start.IsZero() || rec.Duration <= 0 || !rec.Classified {
		t.Errorf("a new session: %+v", rec)
	}
	cookie := r.cookie

	get(t, lb.url+"/", "AWSALB="+cookie)
	if rec := obs.last(t); rec.Sticky != sticky.Stuck || rec.StickyReason != sticky.NoReason {
		t.Errorf("a live session: outcome %v/%v, want hit", rec.Sticky, rec.StickyReason)
	}
	tampered := cookie[:len(cookie)-4] + strings.Repeat("A", 4)
	if tampered == cookie {
		tampered = cookie[:len(cookie)-4] + strings.Repeat("B", 4)
	}
	get(t, lb.url+"/", "AWSALB="+tampered)
	if rec := obs.last(t); rec.Sticky != sticky.Invalid || rec.StickyReason != sticky.BadSeal {
		t.Errorf("a tampered cookie: outcome %v/%v, want invalid/tampered", rec.Sticky, rec.StickyReason)
	}

	if r := get(t, lb.url+"/ping", ""); r.body != "pong" {
		t.Fatalf("/ping: %q", r.body)
	}
	if rec := obs.last(t); !rec.ByLatch || rec.Status != 200 || rec.Rule != 10 || rec.Target != nil || rec.BytesOut != 4 {
		t.Errorf("a fixed response: %+v", rec)
	}

	resp, err := client.Post(lb.url+"/upload", "text/plain", strings.NewReader("twelve bytes"))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if rec := obs.last(t); rec.BytesIn != 12 || string(rec.Method) != "POST" {
		t.Errorf("an upload: %d bytes in, method %q; want 12, POST", rec.BytesIn, rec.Method)
	}

	// The session's target drained, then deregistered: it moves, and says
	// why.
	owner := r.backend
	setTargets := func(change func(g *config.TargetGroup)) {
		t.Helper()
		if err := lb.Update(t.Context(), func(c *config.Config) error { change(c.TargetGroup("web")); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	setTargets(func(g *config.TargetGroup) {
		g.Target(addrOf(owner, a, b)).Drain = &config.Drain{Mode: config.DrainImmediate}
	})
	get(t, lb.url+"/", "AWSALB="+cookie)
	if rec := obs.last(t); rec.Sticky != sticky.Moved || rec.StickyReason != sticky.TargetDraining || rec.MovedFrom != addrOf(owner, a, b) {
		t.Errorf("a session on a drained target: %v/%v from %q", rec.Sticky, rec.StickyReason, rec.MovedFrom)
	}
	setTargets(func(g *config.TargetGroup) {
		g.Targets = []config.Target{{ID: addrOf(other(owner), a, b), Weight: 1}}
	})
	get(t, lb.url+"/", "AWSALB="+cookie)
	if rec := obs.last(t); rec.Sticky != sticky.Moved || rec.StickyReason != sticky.TargetDeregistered {
		t.Errorf("a session on a deregistered target: %v/%v", rec.Sticky, rec.StickyReason)
	}

	// A target that refuses connections: the request goes to the other,
	// and a session stuck to it moves.
	setTargets(func(g *config.TargetGroup) {
		g.Targets = append(g.Targets, config.Target{ID: dead, Weight: 1})
	})
	deadCookie := sealFor(t, lb, cookie, dead)
	if r := get(t, lb.url+"/", "AWSALB="+deadCookie); r.status != 200 {
		t.Fatalf("a session on a dead target: %d", r.status)
	}
	if rec := obs.last(t); !rec.Retried || rec.Sticky != sticky.Moved || rec.StickyReason != sticky.TargetConnectFailed ||
		rec.MovedFrom != dead || rec.Target == nil || rec.Target.ID == dead {
		t.Errorf("a session on a target refusing connections: %+v", rec)
	}

	// A request latch refuses before it begins: no Begin, no End.
	obs.mu.Lock()
	begun, ended := obs.begun, len(obs.ended)
	obs.mu.Unlock()
	c, err := net.Dial("tcp", strings.TrimPrefix(lb.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 400 {
		t.Fatalf("two Content-Lengths: %v, %v; want a 400", resp, err)
	}
	select {
	case <-obs.came:
	case <-time.After(5 * time.Second):
		t.Fatal("no record of the refused request")
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.begun != begun || len(obs.ended) != ended || len(obs.refused) != 1 {
		t.Fatalf("a refused request: %d begun, %d ended, %d refused; want none, none, 1", obs.begun-begun, len(obs.ended)-ended, len(obs.refused))
	}
	if rec := obs.refused[0]; rec.Status != 400 || !rec.ByLatch || !rec.Classified || rec.Desync.Reason != desync.MultipleContentLength ||
		!rec.DesyncBlocked || rec.Cause == "" {
		t.Errorf("the refused request: %+v", rec)
	}
}

// addrOf returns the address of the backend named name.
func addrOf(name string, bs ...*backend) string {
	for _, b := range bs {
		if b.name == name {
			return b.addr
		}
	}
	return ""
}

// other returns the name of the other of backends a and b.
func other(name string) string {
	if name == "a" {
		return "b"
	}
	return "a"
}

// deadAddr returns a loopback address nothing listens on (it refuses
// connections).
func deadAddr(t *testing.T) string {
	return testnet.RefusingAddr(t)
}
