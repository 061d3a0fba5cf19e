package accesslog

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/desync"
	"github.com/latch-lb/latch/internal/proxy"
	"github.com/latch-lb/latch/internal/sticky"
	"github.com/latch-lb/latch/internal/target"
)

// split splits an ALB line into its fields as ALB's parsers do: fields
// are separated by one space; a field that opens with a double quote runs
// to the next one (latch never writes a bare quote inside: it writes
// \x22).
func split(line string) ([]string, error) {
	var out []string
	for i := 0; i < len(line); {
		if line[i] == '"' {
			end := strings.IndexByte(line[i+1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("field %d: unterminated quote in %q", len(out)+1, line[i:])
			}
			out = append(out, line[i:i+end+2])
			i += end + 2
		} else {
			end := strings.IndexByte(line[i:], ' ')
			if end < 0 {
				end = len(line) - i
			}
			out = append(out, line[i:i+end])
			i += end
		}
		if i < len(line) {
			if line[i] != ' ' {
				return nil, fmt.Errorf("field %d: %q runs on after its closing quote", len(out), line[i:])
			}
			i++
			if i == len(line) {
				return nil, fmt.Errorf("the line ends with a space")
			}
		}
	}
	return out, nil
}

// parseALB splits a line and names its fields; quoted ones are unquoted.
func parseALB(t testing.TB, line string) map[string]string {
	t.Helper()
	fields, err := split(strings.TrimSuffix(line, "\n"))
	if err != nil {
		t.Fatalf("%v\nline: %s", err, line)
	}
	if len(fields) != len(Fields) {
		t.Fatalf("got %d fields, want %d (%v)\nline: %s", len(fields), len(Fields), Fields, line)
	}
	m := make(map[string]string, len(fields))
	for i, f := range fields {
		name := Fields[i]
		if Quoted[name] {
			if len(f) < 2 || f[0] != '"' || f[len(f)-1] != '"' {
				t.Fatalf("%s = %s, want it quoted\nline: %s", name, f, line)
			}
			f = f[1 : len(f)-1]
		} else if strings.HasPrefix(f, `"`) {
			t.Fatalf("%s = %s, quoted; ALB does not quote it\nline: %s", name, f, line)
		}
		m[name] = f
	}
	return m
}

// checkFields compares the named fields of got with want, every one of
// them: a field want leaves out must be absent ("-").
func checkFields(t testing.TB, got map[string]string, want map[string]string) {
	t.Helper()
	for _, name := range Fields {
		w, ok := want[name]
		if !ok {
			w = "-"
		}
		if w == "*" { // checked by the caller
			continue
		}
		if got[name] != w {
			t.Errorf("%s = %q, want %q", name, got[name], w)
		}
	}
}

func testRecord() *proxy.Record {
	start := time.Date(2026, 12, 7, 6, 30, 0, 123456000, time.UTC)
	return &proxy.Record{
		Listener: "public", Proto: "https", Port: "443", Client: []byte("192.0.2.7:50123"),
		Start: start, Duration: 27 * time.Millisecond, Minor: 1, Method: []byte("GET"), Version: []byte("HTTP/1.1"),
		Host: []byte("shop.example.com:8443"), URI: []byte("/cart?item=7&q=a%20b"),
		UserAgent:  []byte(`curl/8.5 "quoted" \ ` + "caf\xc3\xa9"),
		TLSVersion: tls.VersionTLS13, TLSCipher: tls.TLS_AES_128_GCM_SHA256, SNI: "shop.example.com",
		Status: 200, Routed: true, Action: proxy.Forward, Rule: 10, Group: "web",
		Target: &target.Target{ID: "10.0.0.5:8080"}, Retried: true,
		Sticky: sticky.Moved, StickyReason: sticky.TargetUnhealthy, MovedFrom: "10.0.0.4:8080",
		Sent: start.Add(2 * time.Millisecond), Head: start.Add(20 * time.Millisecond),
		TargetStatus: 200, Trace: []byte("Root=1-67890abc-0123456789abcdef01234567"),
		BytesIn: 12, BytesOut: 3400,
		Classified: true, Desync: desync.Verdict{Tier: desync.Acceptable, Reason: desync.SpaceInUri},
	}
}

func TestFormatALB(t *testing.T) {
	ln := line{}
	appendRecord(&ln, testRecord(), "public")
	got := parseALB(t, string(ln.b))
	checkFields(t, got, map[string]string{
		"type": "https", "time": "2026-12-07T06:30:00.150456Z", "elb": "public",
		"client:port": "192.0.2.7:50123", "target:port": "10.0.0.5:8080",
		"request_processing_time": "0.002", "target_processing_time": "0.018", "response_processing_time": "0.007",
		"elb_status_code": "200", "target_status_code": "200", "received_bytes": "12", "sent_bytes": "3400",
		"request":    "GET https://shop.example.com:443/cart?item=7&q=a%20b HTTP/1.1",
		"user_agent": `curl/8.5 \x22quoted\x22 \x5c caf\xc3\xa9`,
		"ssl_cipher": "TLS_AES_128_GCM_SHA256", "ssl_protocol": "TLSv1.3", "target_group_arn": "web",
		"trace_id": "Root=1-67890abc-0123456789abcdef01234567", "domain_name": "shop.example.com",
		"matched_rule_priority": "10", "request_creation_time": "2026-12-07T06:30:00.123456Z",
		"actions_executed": "forward", "target:port_list": "10.0.0.5:8080", "target_status_code_list": "200",
		"classification": "Acceptable", "classification_reason": "SpaceInUri",
		"sticky": "moved", "sticky_reason": "unhealthy", "session_moved_from": "10.0.0.4:8080", "retried": "true",
	})
}

func TestFormatJSON(t *testing.T) {
	ln := line{json: true}
	r := testRecord()
	r.UserAgent = append(r.UserAgent, "\xff\n"...)
	appendRecord(&ln, r, "public")
	if ln.b[len(ln.b)-1] != '\n' || strings.Count(string(ln.b), "\n") != 1 {
		t.Fatalf("not one line: %q", ln.b)
	}
	var m map[string]any
	if err := json.Unmarshal(ln.b, &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, ln.b)
	}
	if len(m) != len(Fields) {
		t.Errorf("%d keys, want %d", len(m), len(Fields))
	}
	want := map[string]any{
		"type": "https", "client:port": "192.0.2.7:50123", "request_processing_time": 0.002,
		"target_processing_time": 0.018, "elb_status_code": 200.0, "target_status_code": 200.0,
		"request":    "GET https://shop.example.com:443/cart?item=7&q=a%20b HTTP/1.1",
		"user_agent": `curl/8.5 "quoted" \ café` + "\ufffd\n",
		"sticky":     "moved", "retried": true, "redirect_url": nil, "conn_trace_id": nil,
		"matched_rule_priority": 10.0, "classification": "Acceptable",
	}
	for k, w := range want {
		if g, ok := m[k]; !ok || g != w {
			t.Errorf("%s = %#v, want %#v", k, g, w)
		}
	}
}

// TestFormatNotForwarded: a redirect, a 502 whose target never answered,
// a request refused before its line could be read, a client gone.
func TestFormatNotForwarded(t *testing.T) {
	start := time.Date(2026, 12, 7, 6, 30, 0, 0, time.UTC)
	base := proxy.Record{Listener: "l", Proto: "http", Port: "80", Client: []byte("[::1]:4000"), Start: start, Minor: 1, Version: []byte("HTTP/1.1")}

	redirect := base
	redirect.Method, redirect.Host, redirect.URI = []byte("GET"), []byte("a.example"), []byte("http://a.example/old?x=1")
	redirect.Status, redirect.Routed, redirect.Action, redirect.Rule = 301, true, proxy.Redirect, 1
	redirect.Redirect = []byte("https://a.example:443/new/old?x=1")
	redirect.ByLatch = true

	dead := base
	dead.Method, dead.URI = []byte("POST"), []byte("/x")
	dead.Status, dead.Routed, dead.Group = 502, true, "web"
	dead.Target = &target.Target{ID: "127.0.0.1:1"}
	dead.Sent = start.Add(time.Millisecond)
	dead.ErrorReason = proxy.ErrorReasonConnectRefused

	unread := base
	unread.Status = 400

	gone := base
	gone.Method, gone.URI, gone.HTTP2 = []byte("GET"), []byte("/slow"), true
	gone.Routed, gone.Group, gone.ErrorReason = true, "web", proxy.ErrorReasonClientClosed

	for _, c := range []struct {
		name string
		r    proxy.Record
		want map[string]string
	}{
		{"redirect", redirect, map[string]string{"type": "http", "request": "GET http://a.example:80/old?x=1 HTTP/1.1",
			"elb_status_code": "301", "request_processing_time": "-1", "target_processing_time": "-1", "response_processing_time": "-1",
			"matched_rule_priority": "1", "actions_executed": "redirect", "redirect_url": "https://a.example:443/new/old?x=1"}},
		{"dead target", dead, map[string]string{"type": "http", "request": "POST http://-:80/x HTTP/1.1",
			"elb_status_code": "502", "target:port": "127.0.0.1:1", "target:port_list": "127.0.0.1:1", "target_group_arn": "web",
			"request_processing_time": "0.001", "target_processing_time": "-1", "response_processing_time": "-1",
			"matched_rule_priority": "0", "actions_executed": "forward", "error_reason": "TargetConnectionRefused"}},
		{"unreadable", unread, map[string]string{"type": "http", "request": "- - -", "elb_status_code": "400",
			"request_processing_time": "-1", "target_processing_time": "-1", "response_processing_time": "-1"}},
		{"client gone", gone, map[string]string{"type": "h2", "request": "GET http://-:80/slow HTTP/2.0", "elb_status_code": "460",
			"request_processing_time": "-1", "target_processing_time": "-1", "response_processing_time": "-1", "target_group_arn": "web",
			"matched_rule_priority": "0", "actions_executed": "forward", "error_reason": "ClientConnectionClosed"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ln := line{}
			appendRecord(&ln, &c.r, "l")
			got := parseALB(t, string(ln.b))
			c.want["time"], c.want["request_creation_time"] = "2026-12-07T06:30:00.000000Z", "2026-12-07T06:30:00.000000Z"
			c.want["elb"], c.want["client:port"] = "l", "[::1]:4000"
			c.want["received_bytes"], c.want["sent_bytes"], c.want["retried"] = "0", "0", "false"
			checkFields(t, got, c.want)
		})
	}
}

func TestAppendISO(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2026, 12, 7, 6, 30, 0, 123456789, time.UTC),
		time.Date(999, 1, 2, 3, 4, 5, 6000, time.UTC),
		time.Date(2027, 2, 28, 23, 59, 59, 999999999, time.FixedZone("x", 3600)),
	} {
		if got, want := string(appendISO(nil, tm)), tm.UTC().Format(isoLayout); got != want {
			t.Errorf("appendISO(%v) = %s, want %s", tm, got, want)
		}
	}
}

func TestSplitRefuses(t *testing.T) {
	for _, bad := range []string{`a "b`, `a "b"c`, `a `} {
		if f, err := split(bad); err == nil {
			t.Errorf("split(%q) = %q, want an error", bad, f)
		}
	}
}

// BenchmarkEnd is what a request pays for its line: End formats it into a
// free buffer and queues it. The writer does not run; the benchmark
// drains the queue itself, off the clock, whenever it fills, so that every
// End formats (none is dropped).
func BenchmarkEnd(b *testing.B) {
	for _, f := range []config.AccessLogFormat{config.AccessLogALB, config.AccessLogJSON} {
		b.Run(f.String(), func(b *testing.B) {
			l := newLog(discard{}, nil, Options{Format: f})
			r := testRecord()
			b.ReportAllocs()
			for b.Loop() {
				if len(l.queue) == cap(l.queue) {
					b.StopTimer()
					l.drain()
					b.StartTimer()
				}
				l.End(r)
			}
			if d := l.Dropped(); d > 0 {
				b.Fatalf("%d lines dropped", d)
			}
		})
	}
}

// BenchmarkEndDropped is what a request pays when the writer has fallen
// behind and its line is dropped.
func BenchmarkEndDropped(b *testing.B) {
	l := newLog(discard{}, nil, Options{Queue: 1})
	l.End(testRecord()) // the one buffer is queued, never written
	r := testRecord()
	b.ReportAllocs()
	for b.Loop() {
		l.End(r)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkFormat is the cost of formatting one line, alone.
func BenchmarkFormat(b *testing.B) {
	for _, json := range []bool{false, true} {
		b.Run(map[bool]string{false: "alb", true: "json"}[json], func(b *testing.B) {
			r := testRecord()
			ln := line{b: make([]byte, 0, 1024), json: json}
			b.ReportAllocs()
			for b.Loop() {
				ln.b, ln.n = ln.b[:0], 0
				appendRecord(&ln, r, "public")
			}
			b.SetBytes(int64(len(ln.b)))
		})
	}
}
