package conformance_test

import (
	"strings"
	"testing"
)

// TestRequestTargetVerbatim: the request line reaches the target exactly as
// the client sent it: no decoding, re-encoding, dot-segment removal, slash
// merging, parameter stripping, method case change (a proxy that
// "normalises" the path lets a client slip past the target's own path-based
// rules, and breaks signatures over the path).
//
// Absolute-form (`GET http://example.com/x`) is forwarded as it came, and the
// Host latch sends is the authority of the request target, whatever the
// client's Host said: RFC 9112 §3.2.2 makes the request target's authority
// win (a proxy "MUST generate a new Host field value based on the received
// request-target"), so the target and latch cannot disagree on which host
// was asked for. (HAProxy answers 400 to a Host that disagrees instead.)
func TestRequestTargetVerbatim(t *testing.T) {
	t.Parallel()
	target := startEchoTarget(t)
	l := startLatch(t, target.addr)
	longQuery := "/search?" + strings.Repeat("k=v&", 2048) + "end=1" // 8 KiB
	cases := []struct {
		name     string
		line     string // as the client sends it
		host     string // the client's Host
		wantLine string // at the target ("" = line)
		wantHost string // at the target ("" = host)
	}{
		{"percent-encoding", "GET /a%2Fb/%7Euser?x=%20&y=a+b HTTP/1.1", "example.com", "", ""},
		{"lower-case percent-encoding", "GET /caf%c3%a9/%2f HTTP/1.1", "example.com", "", ""},
		{"double slashes", "GET //double//slashes/// HTTP/1.1", "example.com", "", ""},
		{"dot segments", "GET /a/../b/./c/.. HTTP/1.1", "example.com", "", ""},
		{"encoded dot segments", "GET /a/%2e%2e/b HTTP/1.1", "example.com", "", ""},
		{"path parameters", "GET /p;jsessionid=123/q;v=1.1?z=;x HTTP/1.1", "example.com", "", ""},
		{"raw characters that need no encoding", "GET /~user/@!$&'()*+,;=:/x?a=/?:@ HTTP/1.1", "example.com", "", ""},
		{"empty query", "GET /path? HTTP/1.1", "example.com", "", ""},
		{"long query string", "GET " + longQuery + " HTTP/1.1", "example.com", "", ""},
		{"absolute-form", "GET http://example.com/x?y=1 HTTP/1.1", "other.example", "", "example.com"},
		{"absolute-form with a port", "GET http://example.com:8080/x HTTP/1.1", "example.com:8080", "", "example.com:8080"},
		{"OPTIONS *", "OPTIONS * HTTP/1.1", "example.com", "", ""},
		{"unusual method", "PROPFIND /dav/ HTTP/1.1", "example.com", "", ""},
		{"extension method", "M-SEARCH /x HTTP/1.1", "example.com", "", ""},
		{"methods are case-sensitive", "get /lower HTTP/1.1", "example.com", "", ""},
		{"Host with a port", "GET / HTTP/1.1", "example.com:8443", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, l.addr)
			c.write(tc.line + "\r\nHost: " + tc.host + "\r\n\r\n")
			resp := c.response(strings.Fields(tc.line)[0])
			if resp.status() != 200 {
				t.Fatalf("got\n%s\nwant the target's 200", resp)
			}
			e := decodeEcho(t, resp)
			wantLine, wantHost := tc.wantLine, tc.wantHost
			if wantLine == "" {
				wantLine = tc.line
			}
			if wantHost == "" {
				wantHost = tc.host
			}
			if e.Line != wantLine {
				t.Errorf("request line at the target:\ngot  %q\nwant %q", e.Line, wantLine)
			}
			if got := fieldValues(e.Header, "Host"); len(got) != 1 || got[0] != wantHost {
				t.Errorf("Host at the target: got %q, want %q", got, wantHost)
			}
		})
	}
}
