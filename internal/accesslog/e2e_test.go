package accesslog

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/leaktest"
	"github.com/latch-lb/latch/internal/proxy"
	"github.com/latch-lb/latch/internal/server"
	"github.com/latch-lb/latch/internal/testnet"
	"github.com/latch-lb/latch/internal/tlsconf/tlstest"
)

// ended tells a test that a request's line was queued: the Log is Teed
// before it, so that when ended hears of a request, its line is in the
// Log's queue.
type ended chan struct{}

func (e ended) Begin(*proxy.Record)   {}
func (e ended) End(*proxy.Record)     { e <- struct{}{} }
func (e ended) Refused(*proxy.Record) { e <- struct{}{} }
func (e ended) Conn(proxy.ConnEvent)  {}

func (e ended) wait(t *testing.T, what string) {
	t.Helper()
	select {
	case <-e:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: latch did not end the request within 10s", what)
	}
}

// startTarget serves 200 "hello" with the trace header it got in
// X-Seen-Trace, and on /ws switches to an echo of whatever comes.
func startTarget(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ws" {
			c, rw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			rw.Flush()
			io.Copy(c, rw)
			return
		}
		w.Header().Set("X-Seen-Trace", r.Header.Get("X-Amzn-Trace-Id"))
		io.WriteString(w, "hello")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// deadAddr is an address on which nothing listens.
func deadAddr(t *testing.T) string {
	return testnet.RefusingAddr(t)
}

const e2eConfig = `listeners:
  - name: plain
    address: 127.0.0.1:0
    rules:
      - priority: 5
        conditions: [ { path_pattern: ["/old/*"] } ]
        action:
          type: redirect
          redirect: { protocol: HTTPS, port: "443", path: "/new/#{path}", query: "#{query}", status_code: HTTP_301 }
      - priority: 7
        conditions: [ { path_pattern: ["/fixed"] } ]
        action:
          type: fixed-response
          fixed_response: { status_code: "200", content_type: text/plain, message_body: fixed }
      - priority: 9
        conditions: [ { path_pattern: ["/dead/*"] } ]
        action: { type: forward, forward: { target_group: dead } }
    default_action: { type: forward, forward: { target_group: web } }
  - name: secure
    address: 127.0.0.1:0
    protocol: HTTPS
    certificates:
      - { cert_file: front.crt, key_file: front.key }
    default_action: { type: forward, forward: { target_group: web } }
target_groups:
  - name: web
    targets: [ { id: %s } ]
    health_check: { enabled: false }
    attributes: { stickiness.enabled: "true", deregistration_delay.timeout_seconds: "0" }
  - name: dead
    targets: [ { id: %s } ]
    health_check: { enabled: false }
    attributes: { deregistration_delay.timeout_seconds: "0" }
access_log: { path: logs/access.log }
`

// e2e is a latch with its access log, in front of a live target and a dead
// one.
type e2e struct {
	dir, web, dead string
	cfg            *config.Config
	sw             *Switch
	srv            *server.Server
	ended          ended
	ca             *tlstest.CA
}

func startE2E(t *testing.T, path server.DataPath) *e2e {
	t.Helper()
	leaktest.Check(t)
	e := &e2e{dir: t.TempDir(), web: startTarget(t), dead: deadAddr(t), ended: make(ended, 16)}
	e.ca = tlstest.NewCA(t)
	e.ca.Issue(t, tlstest.Options{DNSNames: []string{"front.example.test"}}).Write(t, e.dir, "front")
	if err := os.Mkdir(filepath.Join(e.dir, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf(e2eConfig, e.web, e.dead) + "state_dir: " + filepath.Join(e.dir, "state") + "\n"
	cfg, err := config.Parse([]byte(yaml), filepath.Join(e.dir, "latch.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = cfg
	log := slog.New(slog.DiscardHandler)
	e.sw = NewSwitch(log)
	if err := e.sw.Apply(cfg.AccessLog); err != nil {
		t.Fatal(err)
	}
	e.srv, err = server.New(server.Options{Log: log, DataPath: path, Observer: proxy.Tee(e.sw, e.ended)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.srv.Shutdown(ctx)
		e.sw.Close()
	})
	if err := e.srv.Apply(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	return e
}

// get sends one request with an HTTP client, and returns the response, its
// body and the client's address.
func get(t *testing.T, c *http.Client, url, ua string) (*http.Response, string, string) {
	t.Helper()
	var local string
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { local = i.Conn.LocalAddr().String() }}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), "GET", url, nil)
	req.Header.Set("User-Agent", ua)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body), local
}

// raw sends bytes on a new connection and returns the first response
// head, and the connection.
func raw(t *testing.T, addr, req string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(c)
	resp, err := http.ReadResponse(rd, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, rd, resp
}

// expect is a line's fields, as checkFields takes them, and what to check
// of the others.
type expect struct {
	fields map[string]string
	// timed: the three processing times are numbers (a target answered);
	// otherwise -1 each.
	timed bool
}

// TestAccessLogEndToEnd runs real requests through a real latch, over
// HTTP/1.1, HTTPS with HTTP/2, a WebSocket upgrade, a redirect, a fixed
// response, a dead target and a request desync mitigation refuses, and
// checks every field of every line. Then it switches the log to JSON at
// another path, as a reload does.
func TestAccessLogEndToEnd(t *testing.T) {
	for _, path := range []server.DataPath{server.Loops, server.Goroutines} {
		t.Run(path.String(), func(t *testing.T) { testEndToEnd(t, path) })
	}
}

func testEndToEnd(t *testing.T, path server.DataPath) {
	e := startE2E(t, path)
	plain, secure := e.srv.Addr("plain"), e.srv.Addr("secure")
	_, plainPort, _ := net.SplitHostPort(plain)
	_, securePort, _ := net.SplitHostPort(secure)
	before := time.Now()
	var want []expect

	// HTTP/1.1, forwarded, a new sticky session; the user agent has a
	// quote in it, which must not end its field.
	c := &http.Client{Transport: &http.Transport{}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer c.CloseIdleConnections()
	resp, body, local := get(t, c, "http://"+plain+"/hello?x=1&y=a%20b", `e2e "agent" 1.0`)
	if resp.StatusCode != 200 || body != "hello" {
		t.Fatalf("GET /hello: %d %q", resp.StatusCode, body)
	}
	e.ended.wait(t, "GET /hello")
	want = append(want, expect{timed: true, fields: map[string]string{
		"type": "http", "elb": "plain", "client:port": local, "target:port": e.web,
		"elb_status_code": "200", "target_status_code": "200", "received_bytes": "0", "sent_bytes": "5",
		"request":    "GET http://" + plain[:strings.LastIndexByte(plain, ':')] + ":" + plainPort + "/hello?x=1&y=a%20b HTTP/1.1",
		"user_agent": `e2e \x22agent\x22 1.0`, "target_group_arn": "web", "trace_id": resp.Header.Get("X-Seen-Trace"),
		"matched_rule_priority": "0", "actions_executed": "forward", "target:port_list": e.web,
		"target_status_code_list": "200", "sticky": "new", "retried": "false",
	}})
	if !strings.HasPrefix(resp.Header.Get("X-Seen-Trace"), "Root=1-") {
		t.Errorf("the target got X-Amzn-Trace-Id %q, want a Root", resp.Header.Get("X-Seen-Trace"))
	}

	// HTTPS, HTTP/2 by ALPN, with SNI.
	h2 := &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{RootCAs: e.ca.Pool, ServerName: "front.example.test"}}}
	defer h2.CloseIdleConnections()
	resp, body, local = get(t, h2, "https://"+secure+"/secure", "h2-client")
	if resp.StatusCode != 200 || body != "hello" || resp.ProtoMajor != 2 {
		t.Fatalf("GET /secure over h2: %s %d %q", resp.Proto, resp.StatusCode, body)
	}
	e.ended.wait(t, "GET /secure")
	want = append(want, expect{timed: true, fields: map[string]string{
		"type": "h2", "elb": "secure", "client:port": local, "target:port": e.web,
		"elb_status_code": "200", "target_status_code": "200", "received_bytes": "0", "sent_bytes": "5",
		"request":    "GET https://" + secure[:strings.LastIndexByte(secure, ':')] + ":" + securePort + "/secure HTTP/2.0",
		"user_agent": "h2-client", "ssl_cipher": cipherName(resp.TLS.CipherSuite), "ssl_protocol": "TLSv1.3",
		"target_group_arn": "web", "trace_id": resp.Header.Get("X-Seen-Trace"), "domain_name": "front.example.test",
		"matched_rule_priority": "0", "actions_executed": "forward", "target:port_list": e.web,
		"target_status_code_list": "200", "sticky": "new", "retried": "false",
	}})

	// HTTPS over HTTP/1.1, with TLS 1.2: OpenSSL's names for its suites.
	h1s := &http.Client{Transport: &http.Transport{TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
		TLSClientConfig: &tls.Config{RootCAs: e.ca.Pool, ServerName: "front.example.test", MaxVersion: tls.VersionTLS12}}}
	defer h1s.CloseIdleConnections()
	resp, body, local = get(t, h1s, "https://"+secure+"/h1s", "h1s-client")
	if resp.StatusCode != 200 || body != "hello" || resp.ProtoMajor != 1 {
		t.Fatalf("GET /h1s over HTTPS: %s %d %q", resp.Proto, resp.StatusCode, body)
	}
	e.ended.wait(t, "GET /h1s")
	want = append(want, expect{timed: true, fields: map[string]string{
		"type": "https", "elb": "secure", "client:port": local, "target:port": e.web,
		"elb_status_code": "200", "target_status_code": "200", "received_bytes": "0", "sent_bytes": "5",
		"request":    "GET https://" + secure[:strings.LastIndexByte(secure, ':')] + ":" + securePort + "/h1s HTTP/1.1",
		"user_agent": "h1s-client", "ssl_cipher": cipherName(resp.TLS.CipherSuite), "ssl_protocol": "TLSv1.2",
		"target_group_arn": "web", "trace_id": resp.Header.Get("X-Seen-Trace"), "domain_name": "front.example.test",
		"matched_rule_priority": "0", "actions_executed": "forward", "target:port_list": e.web,
		"target_status_code_list": "200", "sticky": "new", "retried": "false",
	}})
	if c := cipherName(resp.TLS.CipherSuite); !strings.HasPrefix(c, "ECDHE-") {
		t.Errorf("TLS 1.2's cipher suite is written %q, want OpenSSL's name", c)
	}

	// A WebSocket upgrade: logged when the tunnel closes.
	conn, rd, resp := raw(t, plain, "GET /ws HTTP/1.1\r\nHost: ws.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nUser-Agent: ws-client\r\n\r\n")
	if resp.StatusCode != 101 {
		t.Fatalf("upgrade: %d", resp.StatusCode)
	}
	io.WriteString(conn, "ping!")
	echo := make([]byte, 5)
	if _, err := io.ReadFull(rd, echo); err != nil || string(echo) != "ping!" {
		t.Fatalf("echo through the tunnel: %q, %v", echo, err)
	}
	conn.(*net.TCPConn).CloseWrite()
	if _, err := rd.ReadByte(); err != io.EOF {
		t.Fatalf("the tunnel did not close after the client's half-close: %v", err)
	}
	e.ended.wait(t, "the WebSocket tunnel")
	want = append(want, expect{timed: true, fields: map[string]string{
		"type": "ws", "elb": "plain", "client:port": conn.LocalAddr().String(), "target:port": e.web,
		"elb_status_code": "101", "target_status_code": "101", "received_bytes": "5", "sent_bytes": "5",
		"request": "GET http://ws.example:" + plainPort + "/ws HTTP/1.1", "user_agent": "ws-client",
		"target_group_arn": "web", "trace_id": "*", "matched_rule_priority": "0", "actions_executed": "forward",
		"target:port_list": e.web, "target_status_code_list": "101", "sticky": "new", "retried": "false",
	}})
	conn.Close()

	// A redirect.
	resp, _, local = get(t, c, "http://"+plain+"/old/page?q=1", "redirected")
	if resp.StatusCode != 301 {
		t.Fatalf("GET /old/page: %d", resp.StatusCode)
	}
	e.ended.wait(t, "the redirect")
	want = append(want, expect{fields: map[string]string{
		"type": "http", "elb": "plain", "client:port": local, "elb_status_code": "301",
		"received_bytes": "0", "sent_bytes": "*",
		"request":    "GET http://" + plain[:strings.LastIndexByte(plain, ':')] + ":" + plainPort + "/old/page?q=1 HTTP/1.1",
		"user_agent": "redirected", "matched_rule_priority": "5", "actions_executed": "redirect",
		"redirect_url": resp.Header.Get("Location"), "retried": "false",
	}})
	if !strings.HasPrefix(resp.Header.Get("Location"), "https://") {
		t.Errorf("Location = %q, want the https redirect", resp.Header.Get("Location"))
	}

	// A fixed response.
	resp, body, local = get(t, c, "http://"+plain+"/fixed", "fixed-client")
	if resp.StatusCode != 200 || body != "fixed" {
		t.Fatalf("GET /fixed: %d %q", resp.StatusCode, body)
	}
	e.ended.wait(t, "the fixed response")
	want = append(want, expect{fields: map[string]string{
		"type": "http", "elb": "plain", "client:port": local, "elb_status_code": "200",
		"received_bytes": "0", "sent_bytes": "5",
		"request":    "GET http://" + plain[:strings.LastIndexByte(plain, ':')] + ":" + plainPort + "/fixed HTTP/1.1",
		"user_agent": "fixed-client", "matched_rule_priority": "7", "actions_executed": "fixed-response", "retried": "false",
	}})

	// A 502 from a dead target: latch's status, no target's.
	resp, _, local = get(t, c, "http://"+plain+"/dead/x", "dead-client")
	if resp.StatusCode != 502 {
		t.Fatalf("GET /dead/x: %d", resp.StatusCode)
	}
	e.ended.wait(t, "the 502")
	want = append(want, expect{fields: map[string]string{
		"type": "http", "elb": "plain", "client:port": local, "target:port": e.dead, "elb_status_code": "502",
		"received_bytes": "0", "sent_bytes": "*",
		"request":    "GET http://" + plain[:strings.LastIndexByte(plain, ':')] + ":" + plainPort + "/dead/x HTTP/1.1",
		"user_agent": "dead-client", "target_group_arn": "dead", "matched_rule_priority": "9", "actions_executed": "forward",
		"error_reason": "TargetConnectionRefused", "target:port_list": e.dead, "retried": "false",
	}})

	// A request desync mitigation blocks (two different lengths: Severe):
	// refused before it began, logged as ALB logs its 400s.
	conn, _, resp = raw(t, plain, "GET /smuggle HTTP/1.1\r\nHost: s.example\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx")
	if resp.StatusCode != 400 {
		t.Fatalf("the smuggling request: %d", resp.StatusCode)
	}
	e.ended.wait(t, "the refused request")
	want = append(want, expect{fields: map[string]string{
		"type": "http", "elb": "plain", "client:port": conn.LocalAddr().String(), "elb_status_code": "400",
		"received_bytes": "0", "sent_bytes": "*",
		"request":        "GET http://s.example:" + plainPort + "/smuggle HTTP/1.1",
		"classification": "Severe", "classification_reason": "MultipleContentLength", "retried": "false",
	}})
	after := time.Now()

	// Reload with access_log in JSON at another path: the ALB file gets
	// everything queued before, the new one what comes after.
	next := e.cfg.Clone()
	next.AccessLog = &config.AccessLog{Path: filepath.Join(e.dir, "logs", "access.json"), Format: config.AccessLogJSON}
	if err := e.srv.Apply(t.Context(), next); err != nil {
		t.Fatal(err)
	}
	if err := e.sw.Apply(next.AccessLog); err != nil {
		t.Fatal(err)
	}
	get(t, c, "http://"+plain+"/json", "json-client")
	e.ended.wait(t, "GET /json")
	resp, _, _ = get(t, h2, "https://"+secure+"/json2", "json-h2")
	e.ended.wait(t, "GET /json2")
	if err := e.sw.Close(); err != nil {
		t.Fatal(err)
	}

	lines := readLines(t, filepath.Join(e.dir, "logs", "access.log"))
	if len(lines) != len(want) {
		t.Fatalf("the ALB log has %d lines, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	for i, w := range want {
		t.Run(w.fields["request"], func(t *testing.T) {
			got := parseALB(t, lines[i])
			t.Logf("%s", lines[i])
			checkTimes(t, got, w.timed, before, after)
			for _, name := range []string{"time", "request_creation_time", "request_processing_time", "target_processing_time", "response_processing_time"} {
				w.fields[name] = "*"
			}
			if w.fields["trace_id"] == "*" && !strings.HasPrefix(got["trace_id"], "Root=1-") {
				t.Errorf("trace_id = %q, want a Root", got["trace_id"])
			}
			if w.fields["sent_bytes"] == "*" {
				if n, err := strconv.Atoi(got["sent_bytes"]); err != nil || n <= 0 {
					t.Errorf("sent_bytes = %q, want latch's body's length", got["sent_bytes"])
				}
			}
			checkFields(t, got, w.fields)
		})
	}

	jsonLines := readLines(t, filepath.Join(e.dir, "logs", "access.json"))
	if len(jsonLines) != 2 {
		t.Fatalf("the JSON log has %d lines, want 2:\n%s", len(jsonLines), strings.Join(jsonLines, "\n"))
	}
	for i, want := range []map[string]any{
		{"type": "http", "elb": "plain", "elb_status_code": 200.0, "user_agent": "json-client", "ssl_cipher": nil, "sticky": "new"},
		{"type": "h2", "elb": "secure", "elb_status_code": 200.0, "user_agent": "json-h2", "ssl_protocol": "TLSv1.3",
			"domain_name": "front.example.test", "trace_id": resp.Header.Get("X-Seen-Trace")},
	} {
		t.Logf("%s", jsonLines[i])
		var got map[string]any
		if err := json.Unmarshal([]byte(jsonLines[i]), &got); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i+1, err, jsonLines[i])
		}
		if len(got) != len(Fields) {
			t.Errorf("line %d has %d keys, want %d", i+1, len(got), len(Fields))
		}
		for k, w := range want {
			if got[k] != w {
				t.Errorf("line %d: %s = %#v, want %#v", i+1, k, got[k], w)
			}
		}
	}
}

// checkTimes checks a line's times: time and request_creation_time within
// the test, the one before the other; the processing times numbers that
// add up to no more than that, or -1 each when no target answered.
func checkTimes(t *testing.T, got map[string]string, timed bool, before, after time.Time) {
	t.Helper()
	end, err1 := time.Parse(isoLayout, got["time"])
	created, err2 := time.Parse(isoLayout, got["request_creation_time"])
	if err1 != nil || err2 != nil {
		t.Fatalf("times %q, %q: %v, %v", got["time"], got["request_creation_time"], err1, err2)
	}
	lo, hi := before.Truncate(time.Microsecond), after.Add(time.Microsecond)
	if created.Before(lo) || end.After(hi) || end.Before(created) {
		t.Errorf("request_creation_time %v, time %v: want %v <= creation <= time <= %v", created, end, lo, hi)
	}
	var sum float64
	for _, name := range []string{"request_processing_time", "target_processing_time", "response_processing_time"} {
		v, err := strconv.ParseFloat(got[name], 64)
		switch {
		case err != nil:
			t.Errorf("%s = %q: %v", name, got[name], err)
		case !timed && v != -1:
			t.Errorf("%s = %q, want -1: no target answered", name, got[name])
		case timed && v < 0:
			t.Errorf("%s = %q, want a time", name, got[name])
		}
		sum += v
	}
	if timed && sum > end.Sub(created).Seconds()+0.002 {
		t.Errorf("the processing times add up to %.3f s, more than the request's %v", sum, end.Sub(created))
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.HasSuffix(s, "\n") {
		t.Fatalf("%s does not end with a newline: %q", path, s)
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}
