package conformance_test

import (
	"slices"
	"strings"
	"testing"
)

// hopByHop are the fields that concern one connection only (RFC 9110
// §7.6.1, plus the Proxy-* ones and Trailer, which latch treats alike):
// never forwarded, whichever way.
var hopByHop = []string{"Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer", "Upgrade"}

// latchConnectionTokens are the Connection options latch may send on its own
// connections (keep-alive, close; te for the TE: trailers it forwards).
// Any other token in a Connection field latch sends was copied from the other side.
var latchConnectionTokens = []string{"keep-alive", "close", "te"}

// TestHopByHopRequest: hop-by-hop fields of a request, and the fields its
// Connection names, do not reach the target; the others do.
func TestHopByHopRequest(t *testing.T) {
	t.Parallel()
	target := startEchoTarget(t)
	l := startLatch(t, target.addr)
	cases := []struct {
		name    string
		fields  string   // field lines sent besides Host (then a blank line and a body, if any)
		dropped []string // must not reach the target
		kept    []field  // must reach it as sent
	}{
		{"hop-by-hop fields",
			"Connection: keep-alive\r\nKeep-Alive: timeout=300\r\nProxy-Connection: keep-alive\r\n" +
				"Proxy-Authorization: Basic dXNlcjpwYXNz\r\nProxy-Authenticate: Basic realm=\"x\"\r\nTE: gzip\r\n" +
				"Trailer: X-Nothing\r\nUpgrade: h2c\r\nX-Kept: yes\r\n",
			hopByHop, []field{{"X-Kept", "yes"}}},
		{"named in Connection, with close",
			"Connection: X-Foo, close\r\nX-Foo: secret\r\nX-Bar: kept\r\n",
			[]string{"X-Foo"}, []field{{"X-Bar", "kept"}}},
		{"named in several Connection lines, any case",
			"Connection: x-foo\r\nconnection: X-Baz , keep-alive\r\nX-Foo: 1\r\nX-BAZ: 2\r\nX-Kept: 3\r\n",
			[]string{"X-Foo", "X-Baz"}, []field{{"X-Kept", "3"}}},
		{"an end-to-end field named in Connection",
			"Connection: Cache-Control, Keep-Alive\r\nCache-Control: no-cache\r\nKeep-Alive: 1\r\nPragma: no-cache\r\n",
			[]string{"Cache-Control", "Keep-Alive"}, []field{{"Pragma", "no-cache"}}},
		// The client's Transfer-Encoding frames its hop only: what the
		// target gets is latch's own framing of the same body.
		{"transfer coding",
			"Transfer-Encoding: chunked\r\n\r\n" + chunk("hello, ") + chunk("target") + "0\r\n",
			nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, l.addr)
			c.write("POST /hop HTTP/1.1\r\nHost: example.com\r\n" + tc.fields + "\r\n")
			e := decodeEcho(t, c.response("POST"))
			wantBody := ""
			if tc.name == "transfer coding" {
				wantBody = "hello, target"
			}
			if te := fieldTokens(e.Header, "Transfer-Encoding"); e.Body != wantBody || !slices.Equal(te, nil) && !slices.Equal(te, []string{"chunked"}) {
				t.Errorf("the target got the body %q framed by %s (Transfer-Encoding %q), want %q", e.Body, e.Framing, te, wantBody)
			}
			for _, name := range tc.dropped {
				if got := fieldValues(e.Header, name); len(got) > 0 {
					t.Errorf("%s reached the target: %q", name, got)
				}
			}
			for _, f := range tc.kept {
				if got := e.get(f.Name); got != f.Value {
					t.Errorf("%s: the target got %q, want %q", f.Name, got, f.Value)
				}
			}
			for _, tok := range fieldTokens(e.Header, "Connection") {
				if !slices.Contains(latchConnectionTokens, tok) {
					t.Errorf("the target got Connection %q: the client's options were forwarded", e.get("Connection"))
				}
			}
		})
	}
}

// TestHopByHopResponse: hop-by-hop fields of a response, and the fields its
// Connection names, do not reach the client; the others do.
func TestHopByHopResponse(t *testing.T) {
	t.Parallel()
	target := startResponder(t, func(*targetConn, *message) string {
		return "HTTP/1.1 200 OK\r\n" +
			"Connection: X-Resp-Hop, keep-alive\r\nconnection: x-other-hop\r\n" +
			"X-Resp-Hop: secret\r\nX-Other-Hop: secret\r\nKeep-Alive: timeout=5, max=100\r\n" +
			"Proxy-Connection: keep-alive\r\nProxy-Authenticate: Basic realm=\"proxy\"\r\n" +
			"Proxy-Authorization: Basic eA==\r\nTE: trailers\r\nTrailer: X-Never\r\nUpgrade: h2c\r\n" +
			"X-End: kept\r\nContent-Length: 2\r\n\r\nok"
	})
	l := startLatch(t, target.addr)
	c := dialRaw(t, l.addr)
	c.write("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	resp := c.response("GET")
	for _, name := range append([]string{"X-Resp-Hop", "X-Other-Hop"}, hopByHop...) {
		if got := resp.values(name); len(got) > 0 {
			t.Errorf("%s reached the client: %q", name, got)
		}
	}
	if got := resp.get("X-End"); got != "kept" || string(resp.Body) != "ok" {
		t.Errorf("X-End %q, body %q: want kept, ok", got, resp.Body)
	}
	for _, tok := range fieldTokens(resp.Header, "Connection") {
		if !slices.Contains(latchConnectionTokens, tok) {
			t.Errorf("the client got Connection %q: the target's options were forwarded", resp.get("Connection"))
		}
	}
}

// TestEndToEndHeaders: every end-to-end field passes both ways with its
// value intact, unusual ones included (empty, non-ASCII, underscores,
// inner whitespace, quoted commas), and repeated fields keep the order of
// their values (RFC 9110 §5.3; lines may be combined, values not reordered).
// Field name case is not checked: names are case-insensitive.
func TestEndToEndHeaders(t *testing.T) {
	t.Parallel()
	fields := []field{
		{"X-Custom", "kept"},
		{"X-Multi", "1"},
		{"X-Multi", "2, 3"},
		{"x-multi", "4"},
		{"Accept", "text/html, application/json;q=0.9"},
		{"Authorization", "Bearer abc.def"},
		{"X-Empty", ""},
		{"X-Spaces", "a  b   c"},
		{"X-Tab", "a\tb"},
		{"X-Unicode", "caf\u00e9 \u2713"},
		{"X-Quoted", `"a, b", c`},
		{"Weird_Underscore", "yes"},
		{"X-Symbols", "!#$%&'*+-.^_`|~ ()<>@,;:\\\"/[]?={}"},
		{"Vary", "Accept-Encoding"},
		{"Vary", "Cookie"},
		{"WWW-Authenticate", `Basic realm="app", charset="UTF-8"`},
		{"WWW-Authenticate", "Bearer"},
		{"Link", "</a.css>; rel=preload, </b.js>; rel=preload"},
	}
	var lines strings.Builder
	for _, f := range fields {
		lines.WriteString(f.Name + ": " + f.Value + "\r\n")
	}
	// check compares what arrived with what was sent, name by name.
	check := func(t *testing.T, where string, got []field) {
		t.Helper()
		seen := map[string]bool{}
		for _, f := range fields {
			name := strings.ToLower(f.Name)
			if seen[name] {
				continue
			}
			seen[name] = true
			if g, w := fieldList(got, name), fieldList(fields, name); g != w || len(fieldValues(got, name)) == 0 {
				t.Errorf("%s: %s: got %q, want %q", where, f.Name, g, w)
			}
		}
	}

	t.Run("request", func(t *testing.T) {
		t.Parallel()
		target := startEchoTarget(t)
		l := startLatch(t, target.addr)
		c := dialRaw(t, l.addr)
		c.write("GET /e2e HTTP/1.1\r\nHost: example.com\r\n" + lines.String() + "\r\n")
		check(t, "at the target", decodeEcho(t, c.response("GET")).Header)
	})

	t.Run("response", func(t *testing.T) {
		t.Parallel()
		target := startResponder(t, func(*targetConn, *message) string {
			return "HTTP/1.1 200 OK\r\n" + lines.String() + "Content-Length: 2\r\n\r\nok"
		})
		l := startLatch(t, target.addr)
		c := dialRaw(t, l.addr)
		c.write("GET /e2e HTTP/1.1\r\nHost: example.com\r\n\r\n")
		resp := c.response("GET")
		check(t, "at the client", resp.Header)
		if string(resp.Body) != "ok" {
			t.Errorf("body: got %q, want ok", resp.Body)
		}
	})
}

// TestForwardedHeaders: X-Forwarded-For gets the client's address appended
// to what the client sent; X-Forwarded-Proto and X-Forwarded-Port are
// latch's (the client's values replaced); Host passes as sent; a client
// cannot send X-Latch-Session-Moved, in any case.
func TestForwardedHeaders(t *testing.T) {
	t.Parallel()
	target := startEchoTarget(t)
	l := startLatch(t, target.addr)
	cases := []struct {
		name   string
		fields string
		want   []field // the field's combined value at the target ("" = absent)
	}{
		{"no prior values", "",
			[]field{{"X-Forwarded-For", "127.0.0.1"}, {"X-Forwarded-Proto", "http"}, {"X-Forwarded-Port", l.port}}},
		{"appended to one value", "X-Forwarded-For: 203.0.113.7\r\n",
			[]field{{"X-Forwarded-For", "203.0.113.7, 127.0.0.1"}}},
		{"appended to a list and to several lines",
			"X-Forwarded-For: 203.0.113.7, 198.51.100.1\r\nx-forwarded-for: 192.0.2.9\r\n",
			[]field{{"X-Forwarded-For", "203.0.113.7, 198.51.100.1, 192.0.2.9, 127.0.0.1"}}},
		{"client's proto and port replaced", "X-Forwarded-Proto: https\r\nX-Forwarded-Port: 443\r\nx-forwarded-proto: ftp\r\n",
			[]field{{"X-Forwarded-Proto", "http"}, {"X-Forwarded-Port", l.port}}},
		{"forged session-moved header removed",
			"X-Latch-Session-Moved: 10.0.0.1:80\r\nx-latch-session-moved: forged\r\nX-LATCH-SESSION-MOVED: forged\r\n",
			[]field{{"X-Latch-Session-Moved", ""}}},
		{"Host as sent", "", []field{{"Host", "example.com"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, l.addr)
			c.write("GET /fwd HTTP/1.1\r\nHost: example.com\r\n" + tc.fields + "\r\n")
			e := decodeEcho(t, c.response("GET"))
			for _, f := range tc.want {
				if got := e.get(f.Name); got != f.Value {
					t.Errorf("%s: the target got %q, want %q", f.Name, got, f.Value)
				}
			}
			for _, name := range []string{"X-Forwarded-Proto", "X-Forwarded-Port", "Host"} {
				if n := len(fieldValues(e.Header, name)); n != 1 {
					t.Errorf("%s: the target got %d lines %q, want exactly 1", name, n, fieldValues(e.Header, name))
				}
			}
		})
	}
}
