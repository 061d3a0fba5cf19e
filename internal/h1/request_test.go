package h1

import (
	"io"
	"strings"
	"testing"
)

type requestCase struct {
	name     string
	in       string
	readErr  error             // from ReadRequest
	frameErr error             // from Frame, when ReadRequest succeeded
	want     map[string]string // properties after Frame (see requestProps)
}

// runRequestCases reads each case's input through both feeds: ReadRequest,
// then Frame; both feeds must give the same result.
func runRequestCases(t *testing.T, tests []requestCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var first map[string]string
			for _, feed := range feeds {
				rd, _ := newFeed(tt.in, feed.wrap)
				var req Request
				started, err := rd.ReadRequest(&req)
				if !started {
					t.Errorf("%s: ReadRequest started = false, want true", feed.name)
				}
				if !sameErr(err, tt.readErr) {
					t.Fatalf("%s: ReadRequest error = %s, want %s", feed.name, errName(err), errName(tt.readErr))
				}
				if err != nil {
					continue
				}
				err = req.Frame()
				if !sameErr(err, tt.frameErr) {
					t.Fatalf("%s: Frame error = %s, want %s", feed.name, errName(err), errName(tt.frameErr))
				}
				got := requestProps(&req)
				checkProps(t, got, tt.want)
				if first == nil {
					first = got
				} else {
					for k, v := range first {
						if got[k] != v {
							t.Errorf("%s: %s = %q, but %q with the other feed", feed.name, k, got[k], v)
						}
					}
				}
			}
		})
	}
}

const host = "Host: a\r\n"

func TestReadRequestLine(t *testing.T) {
	runRequestCases(t, []requestCase{
		{name: "simple", in: "GET / HTTP/1.1\r\n" + host + "\r\n",
			want: kv("Method", "GET", "Target", "/", "Proto", "HTTP/1.1", "Minor", "1", "Host", "a",
				"Framing", "NoBody", "KeepAlive", "true", "Fields", "Host:a", "Kinds", "Host")},
		{name: "HTTP/1.0", in: "GET /x?y=z HTTP/1.0\r\n\r\n",
			want: kv("Method", "GET", "Target", "/x?y=z", "Proto", "HTTP/1.0", "Minor", "0", "Host", "<nil>", "KeepAlive", "false")},
		{name: "space in target: split at the first and last space", in: "GET /a b HTTP/1.1\r\n" + host + "\r\n",
			want: kv("Method", "GET", "Target", "/a b", "Proto", "HTTP/1.1")},
		{name: "runs of spaces stay in the target", in: "GET /a  b   HTTP/1.0\r\n\r\n",
			want: kv("Method", "GET", "Target", "/a  b  ", "Proto", "HTTP/1.0")},
		{name: "tab is not a separator", in: "GET\t/ HTTP/1.1\r\n" + host + "\r\n",
			frameErr: ErrVersion, want: kv("Method", "GET\t/", "Target", "HTTP/1.1", "Proto", "")},
		{name: "HTTP/0.9", in: "GET /\r\n\r\n", frameErr: ErrVersion,
			want: kv("Method", "GET", "Target", "/", "Proto", "")},
		{name: "HTTP/0.9 with a field", in: "GET /index.html\r\n" + host + "\r\n", frameErr: ErrVersion,
			want: kv("Target", "/index.html", "Proto", "", "Fields", "Host:a")},
		{name: "HTTP/1.2", in: "GET / HTTP/1.2\r\n" + host + "\r\n", frameErr: ErrVersion, want: kv("Proto", "HTTP/1.2")},
		{name: "HTTP/2.0", in: "GET / HTTP/2.0\r\n" + host + "\r\n", frameErr: ErrVersion},
		{name: "HTTP/1.10", in: "GET / HTTP/1.10\r\n" + host + "\r\n", frameErr: ErrVersion},
		{name: "lower-case version", in: "GET / http/1.1\r\n" + host + "\r\n", frameErr: ErrVersion},
		{name: "trailing space", in: "GET / HTTP/1.1 \r\n" + host + "\r\n", frameErr: ErrVersion,
			want: kv("Target", "/", "Proto", "HTTP/1.1 ")},
		{name: "version at the first HTTP/", in: "GET /a HTTP/1.1 HTTP/1.1\r\n" + host + "\r\n", frameErr: ErrVersion,
			want: kv("Target", "/a", "Proto", "HTTP/1.1 HTTP/1.1")},
		{name: "HTTP/ inside the target", in: "GET /a?HTTP/1.1 HTTP/1.1\r\n" + host + "\r\n",
			want: kv("Target", "/a?HTTP/1.1", "Proto", "HTTP/1.1")},
		{name: "empty target", in: "GET  HTTP/1.1\r\n" + host + "\r\n", frameErr: ErrRequestLine,
			want: kv("Target", "", "Proto", "HTTP/1.1")},
		{name: "CR before CRLF", in: "GET / HTTP/1.1\r\r\n" + host + "\r\n", frameErr: ErrVersion,
			want: kv("Proto", "HTTP/1.1\r")},
		{name: "leading space", in: " GET / HTTP/1.1\r\n" + host + "\r\n", readErr: ErrRequestLine},
		{name: "no space", in: "GET\r\n" + host + "\r\n", readErr: ErrRequestLine},
		{name: "method and a space", in: "GET \r\n" + host + "\r\n", readErr: ErrRequestLine},
		{name: "NUL in target", in: "GET /\x00 HTTP/1.1\r\n" + host + "\r\n", frameErr: ErrRequestLine},
		{name: "CR in target", in: "GET /\r HTTP/1.1\r\n" + host + "\r\n", frameErr: ErrRequestLine},
		{name: "CR in method", in: "G\rET / HTTP/1.1\r\n" + host + "\r\n", frameErr: ErrRequestLine},
		{name: "leading empty lines", in: "\r\n\n\r\n\nGET / HTTP/1.1\r\n" + host + "\r\n",
			want: kv("Method", "GET", "Target", "/", "Fields", "Host:a")},
		// A bare LF ends the head (so that the head's end is found however
		// the client ends lines) but no line of a request: it stays inside
		// the line, and Frame refuses it.
		{name: "bare LF", in: "GET / HTTP/1.1\nHost: a\nX: b\n\n", frameErr: ErrVersion,
			want: kv("Proto", "HTTP/1.1\nHost: a\nX: b\n\n", "Fields", "")},
		{name: "bare LF in a field", in: "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", frameErr: ErrBareCR,
			want: kv("Fields", "Host:a\nX: b")},
		{name: "bare LF ending the head", in: "GET / HTTP/1.1\r\nHost: a\r\n\n", frameErr: ErrBareCR,
			want: kv("Fields", "Host:a | <nil>\n")},
		{name: "LF then CRLF ends the head", in: "GET / HTTP/1.1\r\nHost: a\nX: b\n\r\n", frameErr: ErrBareCR,
			want: kv("Fields", "Host:a\nX: b\n")},
		{name: "no fields", in: "OPTIONS * HTTP/1.0\r\n\r\n",
			want: kv("Method", "OPTIONS", "Target", "*", "Fields", "", "Kinds", "")},
	})
}

func TestReadRequestFields(t *testing.T) {
	const line = "GET / HTTP/1.1\r\n"
	runRequestCases(t, []requestCase{
		{name: "no spaces", in: line + "Host:a\r\nX-A:b\r\n\r\n", want: kv("Fields", "Host:a | X-A:b")},
		{name: "spaces and tabs around the value", in: line + "Host: \t a \t\r\nX: \tb c\t \r\n\r\n",
			want: kv("Fields", "Host:a | X:b c", "Host", "a")},
		{name: "empty value", in: line + host + "X:\r\n\r\n", want: kv("Fields", "Host:a | X:")},
		{name: "value of spaces", in: line + host + "X:   \t\r\n\r\n", want: kv("Fields", "Host:a | X:")},
		{name: "split at the first colon", in: line + "Host: a:80\r\nX: b: c\r\n\r\n",
			want: kv("Fields", "Host:a:80 | X:b: c", "Host", "a:80")},
		{name: "space before the colon is part of the name", in: line + host + "X-A : b\r\n\r\n",
			want: kv("Fields", "Host:a | X-A :b", "Kinds", "Host,Dropped")},
		{name: "a name that is not a token is dropped", in: line + host + "X(a): b\r\nX\x01: c\r\n\xc3\xa9: d\r\n\r\n",
			want: kv("Kinds", "Host,Dropped,Dropped,Dropped")},
		{name: "an empty name is dropped", in: line + host + ": chunked\r\n\r\n",
			want: kv("Fields", "Host:a | :chunked", "Kinds", "Host,Dropped")},
		{name: "whitespace before the first field is dropped", in: "GET / HTTP/1.0\r\n Transfer-Encoding: chunked\r\n\r\n",
			want: kv("Fields", " Transfer-Encoding:chunked", "Kinds", "Dropped", "Framing", "NoBody")},
		{name: "line without a colon has no name and is dropped", in: line + host + "no colon here\r\n\r\n",
			want: kv("Fields", "Host:a | <nil>no colon here", "Kinds", "Host,Dropped")},
		{name: "obs-fold extends the value, line break included", in: line + host + "X: b\r\n  c\r\n\r\n",
			frameErr: ErrObsFold, want: kv("Fields", "Host:a | X:b\r\n  c")},
		{name: "obs-fold with tabs", in: line + host + "X: b\r\n\tc\r\n\td\r\n\r\n",
			frameErr: ErrObsFold, want: kv("Fields", "Host:a | X:b\r\n\tc\r\n\td")},
		{name: "obs-fold of an empty value", in: line + host + "X:\r\n c\r\n\r\n",
			frameErr: ErrObsFold, want: kv("Fields", "Host:a | X:\r\n c")},
		{name: "obs-fold of Host", in: line + "Host: a\r\n b\r\n\r\n",
			frameErr: ErrObsFold, want: kv("Fields", "Host:a\r\n b")},
		{name: "obs-fold is refused before a missing Host", in: line + "X: a\r\n b\r\n\r\n", frameErr: ErrObsFold},
		{name: "CR in a value", in: line + host + "X: a\rb\r\n\r\n", frameErr: ErrBareCR},
		{name: "CR ending a value", in: line + host + "X: a\r\r\n\r\n", frameErr: ErrBareCR},
		{name: "NUL in a value", in: line + host + "X: a\x00b\r\n\r\n", frameErr: ErrBareCR},
		{name: "NUL in a name", in: line + host + "X\x00Y: a\r\n\r\n", frameErr: ErrBareCR},
		{name: "CR in a name", in: line + host + "X\rY: a\r\n\r\n", frameErr: ErrBareCR},
		{name: "CR in a line without a colon", in: line + host + "a\rb\r\n\r\n", frameErr: ErrBareCR},
		{name: "other control bytes pass", in: line + host + "X: a\x01\x7fb\r\n\r\n", want: kv("Fields", "Host:a | X:a\x01\x7fb")},
		{name: "obs-text passes", in: line + host + "X: caf\xc3\xa9\r\n\r\n", want: kv("Fields", "Host:a | X:caf\xc3\xa9")},
	})
}

func TestReadRequestHost(t *testing.T) {
	runRequestCases(t, []requestCase{
		{name: "missing in HTTP/1.1", in: "GET / HTTP/1.1\r\nX: a\r\n\r\n", frameErr: ErrHost},
		{name: "two", in: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", frameErr: ErrHost},
		{name: "two equal", in: "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", frameErr: ErrHost},
		{name: "two in HTTP/1.0", in: "GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", frameErr: ErrHost},
		{name: "optional in HTTP/1.0", in: "GET / HTTP/1.0\r\n\r\n", want: kv("Host", "<nil>", "HostFromTarget", "false")},
		{name: "HTTP/1.0", in: "GET / HTTP/1.0\r\nHOST: a.example:8080\r\n\r\n", want: kv("Host", "a.example:8080")},
		{name: "empty", in: "GET / HTTP/1.1\r\nHost:\r\n\r\n", want: kv("Host", "")},
		{name: "absolute-form overrides Host", in: "GET http://example.com/x HTTP/1.1\r\nHost: other\r\n\r\n",
			want: kv("Host", "example.com", "HostFromTarget", "true", "Target", "http://example.com/x", "Kinds", "Host")},
		{name: "absolute-form, https, port, query", in: "GET HTTPS://Example.COM:8443?q=1 HTTP/1.1\r\nHost: x\r\n\r\n",
			want: kv("Host", "Example.COM:8443", "HostFromTarget", "true")},
		{name: "absolute-form, fragment", in: "GET http://e.com#f HTTP/1.1\r\nHost: x\r\n\r\n", want: kv("Host", "e.com")},
		{name: "absolute-form without a path, HTTP/1.0 without Host", in: "GET http://example.com HTTP/1.0\r\n\r\n",
			want: kv("Host", "example.com", "HostFromTarget", "true")},
		{name: "absolute-form with an empty authority", in: "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", frameErr: ErrRequestLine},
		{name: "absolute-form with nothing after the scheme", in: "GET http:// HTTP/1.1\r\nHost: a\r\n\r\n", frameErr: ErrRequestLine},
		{name: "absolute-form still needs Host in HTTP/1.1", in: "GET http://example.com/ HTTP/1.1\r\n\r\n", frameErr: ErrHost},
		{name: "other schemes are not absolute-form", in: "GET ftp://x/ HTTP/1.1\r\nHost: a\r\n\r\n",
			want: kv("Host", "a", "HostFromTarget", "false")},
		{name: "authority-form", in: "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
			want: kv("Host", "a.example:443", "HostFromTarget", "false", "Target", "a.example:443")},
	})
}

func TestReadRequestContentLength(t *testing.T) {
	cl := func(vs ...string) string {
		s := "POST / HTTP/1.1\r\nHost: a\r\n"
		for _, v := range vs {
			s += "Content-Length: " + v + "\r\n"
		}
		return s + "\r\n"
	}
	runRequestCases(t, []requestCase{
		{name: "valid", in: cl("5"), want: kv("Framing", "Length", "ContentLength", "5", "Kinds", "Host,ContentLength")},
		{name: "zero", in: cl("0"), want: kv("Framing", "NoBody", "ContentLength", "0")},
		{name: "leading zeros", in: cl("007"), want: kv("Framing", "Length", "ContentLength", "7")},
		{name: "18 digits", in: cl("999999999999999999"), want: kv("Framing", "Length", "ContentLength", "999999999999999999")},
		{name: "18 digits, leading zeros", in: cl("000000000000000005"), want: kv("Framing", "Length", "ContentLength", "5")},
		{name: "19 digits", in: cl("1000000000000000000"), frameErr: ErrContentLength},
		{name: "19 digits, leading zeros", in: cl("0000000000000000005"), frameErr: ErrContentLength},
		{name: "plus", in: cl("+5"), frameErr: ErrContentLength},
		{name: "minus", in: cl("-5"), frameErr: ErrContentLength},
		{name: "spaces around", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:  \t5 \t\r\n\r\n",
			want: kv("Framing", "Length", "ContentLength", "5")},
		{name: "space inside", in: cl("5 5"), frameErr: ErrContentLength},
		{name: "list", in: cl("5,5"), frameErr: ErrContentLength},
		{name: "list with space", in: cl("5, 5"), frameErr: ErrContentLength},
		{name: "empty", in: cl(""), frameErr: ErrContentLength},
		{name: "hex", in: cl("0x5"), frameErr: ErrContentLength},
		{name: "decimal point", in: cl("5.0"), frameErr: ErrContentLength},
		{name: "word", in: cl("five"), frameErr: ErrContentLength},
		{name: "duplicates, equal", in: cl("5", "5"), want: kv("Framing", "Length", "ContentLength", "5")},
		{name: "duplicates, equal numbers", in: cl("5", "05"), want: kv("Framing", "Length", "ContentLength", "5")},
		{name: "duplicates, different", in: cl("5", "6"), frameErr: ErrMultipleLength},
		{name: "duplicates, zero and more", in: cl("0", "5"), frameErr: ErrMultipleLength},
		{name: "duplicates, one invalid", in: cl("5", "+5"), frameErr: ErrContentLength},
		{name: "any case", in: "POST / HTTP/1.1\r\nHost: a\r\ncOnTeNt-LeNgTh: 3\r\n\r\n", want: kv("Framing", "Length", "ContentLength", "3")},
		{name: "HTTP/1.0", in: "POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\n", want: kv("Framing", "Length", "ContentLength", "3")},
		{name: "GET with a body", in: "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n", want: kv("Framing", "Length", "ContentLength", "3")},
	})
}

func TestReadRequestTransferEncoding(t *testing.T) {
	te := func(vs ...string) string {
		s := "POST / HTTP/1.1\r\nHost: a\r\n"
		for _, v := range vs {
			s += "Transfer-Encoding: " + v + "\r\n"
		}
		return s + "\r\n"
	}
	runRequestCases(t, []requestCase{
		{name: "chunked", in: te("chunked"), want: kv("Framing", "Chunked", "BothTEAndCL", "false", "Kinds", "Host,TransferEncoding")},
		{name: "CHUNKED", in: te("CHUNKED"), want: kv("Framing", "Chunked")},
		{name: "chunked with a parameter", in: te("chunked;foo=bar"), want: kv("Framing", "Chunked")},
		{name: "empty list elements", in: te(" , chunked ,"), want: kv("Framing", "Chunked")},
		{name: "identity", in: te("identity"), want: kv("Framing", "NoBody")},
		{name: "identity with Content-Length", in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\nContent-Length: 4\r\n\r\n",
			want: kv("Framing", "Length", "ContentLength", "4", "BothTEAndCL", "false")},
		{name: "empty", in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\nContent-Length: 4\r\n\r\n",
			want: kv("Framing", "Length", "ContentLength", "4")},
		{name: "identity, chunked", in: te("identity, chunked"), want: kv("Framing", "Chunked")},
		{name: "identity then chunked, two fields", in: te("identity", "chunked"), want: kv("Framing", "Chunked")},
		{name: "chunked, identity", in: te("chunked, identity"), frameErr: ErrChunkedNotLast},
		{name: "gzip, chunked", in: te("gzip, chunked"), frameErr: ErrUnsupportedTE},
		{name: "gzip", in: te("gzip"), frameErr: ErrUnsupportedTE},
		{name: "gzip then chunked, two fields", in: te("gzip", "chunked"), frameErr: ErrUnsupportedTE},
		{name: "chunked, gzip", in: te("chunked, gzip"), frameErr: ErrChunkedNotLast},
		{name: "chunked, chunked", in: te("chunked, chunked"), frameErr: ErrChunkedTwice},
		{name: "chunked twice, two fields", in: te("chunked", "chunked"), frameErr: ErrChunkedTwice},
		{name: "HTTP/1.0", in: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", frameErr: ErrHTTP10Chunked},
		{name: "HTTP/1.0, unknown coding", in: "POST / HTTP/1.0\r\nTransfer-Encoding: gzip\r\n\r\n", frameErr: ErrUnsupportedTE},
		{name: "with Content-Length", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
			want: kv("Framing", "Chunked", "BothTEAndCL", "true", "KeepAlive", "true")},
		{name: "with Content-Length after", in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
			want: kv("Framing", "Chunked", "BothTEAndCL", "true")},
		{name: "with an invalid Content-Length", in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n",
			frameErr: ErrContentLength},
		{name: "with conflicting Content-Lengths", in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
			frameErr: ErrMultipleLength},
	})
}

func TestReadRequestConnection(t *testing.T) {
	runRequestCases(t, []requestCase{
		{name: "HTTP/1.1 keeps alive", in: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", want: kv("KeepAlive", "true")},
		{name: "close", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", want: kv("KeepAlive", "false", "Kinds", "Host,Connection")},
		{name: "Close, in a list", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n", want: kv("KeepAlive", "false")},
		{name: "close in a second field", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", want: kv("KeepAlive", "false")},
		{name: "HTTP/1.0 closes", in: "GET / HTTP/1.0\r\n\r\n", want: kv("KeepAlive", "false")},
		{name: "HTTP/1.0 keep-alive", in: "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", want: kv("KeepAlive", "true")},
		{name: "HTTP/1.0 keep-alive and close", in: "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", want: kv("KeepAlive", "false")},
		{name: "upgrade", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
			want: kv("Upgrade", "true", "KeepAlive", "true", "Kinds", "Host,Connection,Upgrade")},
		{name: "upgrade in a list", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, upgrade\r\nUpgrade: websocket\r\n\r\n",
			want: kv("Upgrade", "true")},
		// h2c is never an upgrade latch forwards (h2csmuggler's attack):
		// with nothing else named, the request is an ordinary one, and
		// HTTP2-Settings a hop-by-hop field, named or not.
		{name: "h2c", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
			want: kv("Upgrade", "false", "KeepAlive", "true", "Kinds", "Host,Connection,Upgrade,HTTP2Settings")},
		{name: "h2c in any case, with a version", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: H2C, h2c/1 ,\r\nupgrade: h2C\r\n\r\n",
			want: kv("Upgrade", "false")},
		{name: "h2c beside another protocol", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c, websocket\r\n\r\n",
			want: kv("Upgrade", "true")},
		{name: "HTTP2-Settings without an upgrade", in: "GET / HTTP/1.1\r\nHost: a\r\nhttp2-settings: x\r\n\r\n",
			want: kv("Upgrade", "false", "Kinds", "Host,HTTP2Settings")},
		{name: "Upgrade without Connection: upgrade", in: "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
			want: kv("Upgrade", "false", "Kinds", "Host,Upgrade")},
		{name: "Connection: upgrade without Upgrade", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n",
			want: kv("Upgrade", "false")},
		{name: "named fields are hop-by-hop", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Foo, close\r\nX-Foo: 1\r\nx-foo: 2\r\nX-Bar: 3\r\n\r\n",
			want: kv("KeepAlive", "false", "Kinds", "Host,Connection,NamedInConnection,NamedInConnection,Other")},
		{name: "named before Connection", in: "GET / HTTP/1.1\r\nHost: a\r\nX-Foo: 1\r\nConnection: x-FOO\r\n\r\n",
			want: kv("KeepAlive", "true", "Kinds", "Host,NamedInConnection,Connection")},
		{name: "named in a second Connection field", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: X-A\r\nX-A: 1\r\nX-B: 1\r\n\r\n",
			want: kv("Kinds", "Host,Connection,Connection,NamedInConnection,Other")},
		{name: "never framing, Host or hop-by-hop kinds",
			in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: Host, Content-Length, Transfer-Encoding, TE, Upgrade, Keep-Alive, Proxy-Connection, Connection, Proxy-Authorization, X\r\n" +
				"TE: trailers\r\nUpgrade: x\r\nKeep-Alive: 5\r\nProxy-Connection: x\r\nProxy-Authorization: x\r\n\r\n",
			want: kv("Framing", "Length", "ContentLength", "5", "Host", "a", "WantsTrailers", "true",
				"Kinds", "Host,ContentLength,Connection,TE,Upgrade,KeepAlive,ProxyConnection,ProxyAuthorization")},
		{name: "never chunked framing", in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: transfer-encoding, x\r\n\r\n",
			want: kv("Framing", "Chunked", "Kinds", "Host,TransferEncoding,Connection")},
		{name: "marks Cookie, Trailer, X-Forwarded-*, Expect",
			in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: cookie, trailer, x-forwarded-for, x-forwarded-proto, x-forwarded-port, expect\r\n" +
				"Cookie: a=1\r\nTrailer: x\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 443\r\nExpect: 100-continue\r\n\r\n",
			want: kv("XFFCount", "1", "Expect100", "true",
				"Kinds", "Host,Connection,NamedInConnection,NamedInConnection,NamedInConnection,NamedInConnection,NamedInConnection,NamedInConnection")},
		{name: "close, keep-alive and upgrade name no field", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, keep-alive, upgrade\r\nClose: 1\r\n\r\n",
			want: kv("Kinds", "Host,Connection,Other")},
	})
}

func TestReadRequestExpectTEXFF(t *testing.T) {
	const line = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
	runRequestCases(t, []requestCase{
		{name: "100-continue", in: line + "Expect: 100-continue\r\n\r\n", want: kv("Expect100", "true", "ExpectOther", "false")},
		{name: "100-Continue", in: line + "Expect: 100-Continue\r\n\r\n", want: kv("Expect100", "true", "ExpectOther", "false")},
		{name: "100-CONTINUE", in: line + "expect:100-CONTINUE \r\n\r\n", want: kv("Expect100", "true", "ExpectOther", "false")},
		{name: "other expectation", in: line + "Expect: 200-ok\r\n\r\n", want: kv("Expect100", "false", "ExpectOther", "true")},
		{name: "empty expectation", in: line + "Expect:\r\n\r\n", want: kv("Expect100", "false", "ExpectOther", "true")},
		{name: "100-continue and more", in: line + "Expect: 100-continue, foo\r\n\r\n", want: kv("Expect100", "false", "ExpectOther", "true")},
		{name: "no expectation", in: line + "\r\n", want: kv("Expect100", "false", "ExpectOther", "false")},

		{name: "TE: trailers", in: line + "TE: trailers\r\n\r\n", want: kv("WantsTrailers", "true", "Kinds", "Host,ContentLength,TE")},
		{name: "TE: Trailers in a list with q", in: line + "te: gzip;q=1.0, Trailers;q=0.5\r\n\r\n", want: kv("WantsTrailers", "true")},
		{name: "TE: trailers with spaced parameters", in: line + "TE: trailers ; q=1\r\n\r\n", want: kv("WantsTrailers", "true")},
		{name: "TE without trailers", in: line + "TE: deflate, gzip;q=0.3\r\n\r\n", want: kv("WantsTrailers", "false")},
		{name: "TE: trailersx", in: line + "TE: trailersx\r\n\r\n", want: kv("WantsTrailers", "false")},

		{name: "XFF one", in: line + "X-Forwarded-For: 1.1.1.1\r\n\r\n", want: kv("XFFCount", "1")},
		{name: "XFF two", in: line + "X-Forwarded-For: 1.1.1.1, 2.2.2.2\r\n\r\n", want: kv("XFFCount", "2")},
		{name: "XFF empty elements", in: line + "X-Forwarded-For: a,,b, ,\r\n\r\n", want: kv("XFFCount", "2")},
		{name: "XFF only commas", in: line + "X-Forwarded-For: , ,\r\n\r\n", want: kv("XFFCount", "0")},
		{name: "XFF empty", in: line + "X-Forwarded-For:\r\n\r\n", want: kv("XFFCount", "0")},
		{name: "XFF two fields", in: line + "X-Forwarded-For: a, b\r\nx-forwarded-for: c\r\n\r\n", want: kv("XFFCount", "3")},
	})
}

// TestKindOf classifies every well-known name in any case.
func TestKindOf(t *testing.T) {
	known := map[string]Kind{
		"Host": KindHost, "Content-Length": KindContentLength, "Transfer-Encoding": KindTransferEncoding,
		"Connection": KindConnection, "Keep-Alive": KindKeepAlive, "Proxy-Connection": KindProxyConnection,
		"TE": KindTE, "Trailer": KindTrailer, "Upgrade": KindUpgrade, "Expect": KindExpect,
		"Cookie": KindCookie, "Set-Cookie": KindSetCookie, "X-Forwarded-For": KindXForwardedFor,
		"X-Forwarded-Proto": KindXForwardedProto, "X-Forwarded-Port": KindXForwardedPort,
		"Proxy-Authenticate": KindProxyAuthenticate, "Proxy-Authorization": KindProxyAuthorization,
		"HTTP2-Settings": KindHTTP2Settings,
	}
	alternate := func(s string) string {
		b := []byte(s)
		for i := range b {
			if i%2 == 0 {
				b[i] = strings.ToUpper(string(b[i]))[0]
			} else {
				b[i] = strings.ToLower(string(b[i]))[0]
			}
		}
		return string(b)
	}
	for name, want := range known {
		for _, n := range []string{name, strings.ToLower(name), strings.ToUpper(name), alternate(name)} {
			if got := KindOf([]byte(n)); got != want {
				t.Errorf("KindOf(%q) = %s, want %s", n, kindName(got), kindName(want))
			}
		}
		for _, n := range []string{name + "s", name[1:], " " + name, name + " ", strings.Replace(name, "-", "_", 1), name[:len(name)-1] + "\x00"} {
			if n == name {
				continue
			}
			if got := KindOf([]byte(n)); got != KindOther {
				t.Errorf("KindOf(%q) = %s, want Other", n, kindName(got))
			}
		}
	}
	// The kinds parse assigns are KindOf's.
	in := "GET / HTTP/1.1\r\n"
	var want []string
	for name, k := range known {
		in += alternate(name) + ": x\r\n"
		want = append(want, kindName(k))
	}
	var req Request
	rd, _ := newFeed(in+"\r\n", feeds[0].wrap)
	if _, err := rd.ReadRequest(&req); err != nil {
		t.Fatal(err)
	}
	if got := kindsString(req.Kinds); got != strings.Join(want, ",") {
		t.Errorf("Kinds = %s, want %s", got, strings.Join(want, ","))
	}
}

func TestHopByHop(t *testing.T) {
	hop := map[Kind]bool{
		KindConnection: true, KindKeepAlive: true, KindProxyConnection: true, KindTE: true,
		KindTransferEncoding: true, KindUpgrade: true, KindProxyAuthenticate: true,
		KindProxyAuthorization: true, KindHTTP2Settings: true, KindNamedInConnection: true,
	}
	hop[KindDropped] = true
	for k := KindOther; k <= KindDropped; k++ {
		if got := k.HopByHop(); got != hop[k] {
			t.Errorf("%s.HopByHop() = %v, want %v", kindName(k), got, hop[k])
		}
	}
}

// TestReadRequestReuse reads requests into one Request: nothing of one
// request may leak into the next.
func TestReadRequestReuse(t *testing.T) {
	in := "POST http://x/ HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n" +
		"TE: trailers\r\nX-Forwarded-For: a, b\r\nConnection: upgrade, X\r\nUpgrade: ws\r\nX: 1\r\n\r\n0\r\n\r\n" +
		"GET / HTTP/1.0\r\n\r\n"
	for _, feed := range feeds {
		rd, _ := newFeed(in, feed.wrap)
		var req Request
		var body Body
		if _, err := rd.ReadRequest(&req); err != nil {
			t.Fatal(err)
		}
		if err := req.Frame(); err != nil {
			t.Fatal(err)
		}
		body.Reset(rd, req.Framing, req.ContentLength, false)
		if _, err := readBody(&body, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := rd.ReadRequest(&req); err != nil {
			t.Fatal(err)
		}
		if err := req.Frame(); err != nil {
			t.Fatal(err)
		}
		got := requestProps(&req)
		want := Request{Method: []byte("GET"), Target: []byte("/"), Proto: []byte("HTTP/1.0")}
		checkProps(t, got, requestProps(&want))
	}
}

// TestReadRequestEOF: a connection that closes before a request, or after
// only empty lines, is not a started request.
func TestReadRequestEOF(t *testing.T) {
	for _, tt := range []struct {
		in      string
		started bool
	}{
		{"", false},
		{"\r\n", false},
		{"\r\n\n\r", false},
		{"G", true},
		{"GET / HTTP/1.1\r\nHost: a\r\n", true},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r", true},
	} {
		for _, feed := range feeds {
			rd, _ := newFeed(tt.in, feed.wrap)
			var req Request
			started, err := rd.ReadRequest(&req)
			if started != tt.started || err != io.EOF {
				t.Errorf("%s: ReadRequest(%q) = %v, %v; want %v, EOF", feed.name, tt.in, started, err, tt.started)
			}
		}
	}
}

func TestHelpers(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want bool
	}{
		{"", "", true}, {"Host", "hOST", true}, {"x-A-1", "X-a-1", true}, {"a", "b", false}, {"ab", "a", false},
		{"@", "`", false}, {"[", "{", false}, {"\xc3\xa9", "\xc3\x89", false},
	} {
		if got := EqualFold([]byte(tt.a), []byte(tt.b)); got != tt.want {
			t.Errorf("EqualFold(%q, %q) = %v", tt.a, tt.b, got)
		}
	}
	if e, ok := IsError(ErrHost); !ok || e != ErrHost || e.Error() != ErrHost.Cause || e.Status != 400 {
		t.Errorf("IsError(ErrHost) = %v, %v", e, ok)
	}
	if _, ok := IsError(io.EOF); ok {
		t.Error("IsError(io.EOF) = true")
	}
	for _, e := range []*Error{ErrHeadTooLarge, ErrLineTooLong, ErrFieldTooLong, ErrRequestLine, ErrVersion, ErrObsFold,
		ErrBareCR, ErrHost, ErrContentLength, ErrMultipleLength, ErrChunkedNotLast, ErrChunkedTwice, ErrHTTP10Chunked,
		ErrBodyTooShort, ErrChunkFormat, ErrTrailerTooLarge} {
		if e.Status != 400 {
			t.Errorf("%q: status %d, want 400", e.Cause, e.Status)
		}
	}
	if ErrUnsupportedTE.Status != 501 {
		t.Errorf("ErrUnsupportedTE: status %d, want 501", ErrUnsupportedTE.Status)
	}
	for _, e := range []*Error{ErrResponseTooLarge, ErrStatusLine, ErrResponseField, ErrResponseLength, ErrResponseCoding,
		ErrResponseChunk, ErrResponseTruncated} {
		if e.Status != 502 {
			t.Errorf("%q: status %d, want 502", e.Cause, e.Status)
		}
	}
}

// TestAppendUpgrade: the protocols latch forwards from an Upgrade field are
// the client's, in order and spelling, without h2c.
func TestAppendUpgrade(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"websocket", "websocket"},
		{"h2c", ""},
		{" H2C , h2c/1,", ""},
		{"h2c, websocket", "websocket"},
		{"foo/2, h2c, WebSocket", "foo/2, WebSocket"},
		{"h2cx, xh2c", "h2cx, xh2c"},
		{"", ""},
	} {
		if got := string(AppendUpgrade([]byte("x"), []byte(tc.in))); got != "x"+tc.want {
			t.Errorf("AppendUpgrade(%q) = %q, want %q", tc.in, got[1:], tc.want)
		}
	}
}

// TestSwitchAsked: a 101 may switch only to a protocol the request offered
// and latch forwarded, never to h2c.
func TestSwitchAsked(t *testing.T) {
	for _, tc := range []struct {
		upgrade, switched string // the request's Upgrade, the 101's ("-": none)
		want              bool
	}{
		{"websocket", "websocket", true},
		{"websocket", "WebSocket", true},
		{"foo/2, websocket", "foo/1", true},
		{"websocket", "-", true},
		{"websocket", "h2c", false},
		{"h2c, websocket", "h2c", false},
		{"H2C, websocket", "websocket, h2c", false},
		{"websocket", "foo", false},
	} {
		req, err := frameOf(t, "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: "+tc.upgrade+"\r\n\r\n")
		if err != nil {
			t.Fatal(err)
		}
		in := "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
		if tc.switched != "-" {
			in += "Upgrade: " + tc.switched + "\r\n"
		}
		rd, _ := newFeed(in+"\r\n", feeds[0].wrap)
		var resp Response
		if _, err := rd.ReadResponse(&resp, false); err != nil {
			t.Fatal(err)
		}
		if got := SwitchAsked(req, &resp); got != tc.want {
			t.Errorf("Upgrade %q answered by 101 with Upgrade %q: SwitchAsked = %t, want %t", tc.upgrade, tc.switched, got, tc.want)
		}
	}
}
