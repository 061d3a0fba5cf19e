package h1

import (
	"io"
	"testing"
)

type responseCase struct {
	name string
	in   string
	head bool // the response answers HEAD
	err  error
	want map[string]string // see responseProps
}

func runResponseCases(t *testing.T, tests []responseCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var first map[string]string
			for _, feed := range feeds {
				rd, _ := newFeed(tt.in, feed.wrap)
				var resp Response
				started, err := rd.ReadResponse(&resp, tt.head)
				if !started {
					t.Errorf("%s: started = false, want true", feed.name)
				}
				if !sameErr(err, tt.err) {
					t.Fatalf("%s: ReadResponse error = %s, want %s", feed.name, errName(err), errName(tt.err))
				}
				if err != nil {
					if e, ok := IsError(err); !ok || e.Status != 502 {
						t.Errorf("%s: error %s is not a 502", feed.name, errName(err))
					}
					continue
				}
				got := responseProps(&resp)
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

func TestReadResponseStatusLine(t *testing.T) {
	const end = "Content-Length: 0\r\n\r\n"
	runResponseCases(t, []responseCase{
		{name: "valid", in: "HTTP/1.1 200 OK\r\n" + end,
			want: kv("Proto", "HTTP/1.1", "Minor", "1", "Status", "200", "Reason", "OK", "Close", "false")},
		{name: "long reason", in: "HTTP/1.1 404 Not Found At All\r\n" + end, want: kv("Status", "404", "Reason", "Not Found At All")},
		{name: "reason with obs-text and tab", in: "HTTP/1.1 200 \xc3\xa9\tt\r\n" + end, want: kv("Reason", "\xc3\xa9\tt")},
		{name: "no reason", in: "HTTP/1.1 204\r\n\r\n", want: kv("Status", "204", "Reason", "<nil>")},
		{name: "empty reason", in: "HTTP/1.1 204 \r\n\r\n", want: kv("Status", "204", "Reason", "")},
		{name: "HTTP/1.0", in: "HTTP/1.0 200 OK\r\n" + end, want: kv("Proto", "HTTP/1.0", "Minor", "0", "Close", "true")},
		{name: "status 599", in: "HTTP/1.1 599 X\r\n" + end, want: kv("Status", "599")},
		{name: "status 999", in: "HTTP/1.1 999 X\r\n" + end, want: kv("Status", "999")},
		{name: "bare LF", in: "HTTP/1.1 200 OK\nContent-Length: 0\n\n", want: kv("Status", "200", "Fields", "Content-Length:0")},
		{name: "HTTP/2.0", in: "HTTP/2.0 200 OK\r\n" + end, err: ErrStatusLine},
		{name: "HTTP/1.2", in: "HTTP/1.2 200 OK\r\n" + end, err: ErrStatusLine},
		{name: "HTTP/1.10", in: "HTTP/1.10 200 OK\r\n" + end, err: ErrStatusLine},
		{name: "lower case", in: "http/1.1 200 OK\r\n" + end, err: ErrStatusLine},
		{name: "ICY", in: "ICY 200 OK\r\n" + end, err: ErrStatusLine},
		{name: "two digits", in: "HTTP/1.1 20 OK\r\n" + end, err: ErrStatusLine},
		{name: "four digits", in: "HTTP/1.1 2000 OK\r\n" + end, err: ErrStatusLine},
		{name: "letters", in: "HTTP/1.1 2x0 OK\r\n" + end, err: ErrStatusLine},
		{name: "leading zero", in: "HTTP/1.1 099 OK\r\n" + end, err: ErrStatusLine},
		{name: "sign", in: "HTTP/1.1 +20 OK\r\n" + end, err: ErrStatusLine},
		{name: "missing space", in: "HTTP/1.1200 OK\r\n" + end, err: ErrStatusLine},
		{name: "two spaces", in: "HTTP/1.1  200 OK\r\n" + end, err: ErrStatusLine},
		{name: "tab", in: "HTTP/1.1 200\tOK\r\n" + end, err: ErrStatusLine},
		{name: "only a version", in: "HTTP/1.1\r\n" + end, err: ErrStatusLine},
		{name: "control byte in the reason", in: "HTTP/1.1 200 O\x01K\r\n" + end, err: ErrStatusLine},
		{name: "CR in the reason", in: "HTTP/1.1 200 O\rK\r\n" + end, err: ErrStatusLine},
	})
}

func TestReadResponseFields(t *testing.T) {
	const line = "HTTP/1.1 200 OK\r\n"
	runResponseCases(t, []responseCase{
		{name: "fields", in: line + "Content-Length: 0\r\nset-cookie: a=1\r\nX:\r\nY:  b  c \t\r\n\r\n",
			want: kv("Fields", "Content-Length:0 | set-cookie:a=1 | X: | Y:b  c", "Kinds", "ContentLength,SetCookie,Other,Other")},
		{name: "obs-text and tab in a value", in: line + "X: a\tb\x80\xff\r\n\r\n", want: kv("Fields", "X:a\tb\x80\xff")},
		{name: "space in a name", in: line + "Bad Name: x\r\n\r\n", err: ErrResponseField},
		{name: "space before the colon", in: line + "Content-Length : 0\r\n\r\n", err: ErrResponseField},
		{name: "empty name", in: line + ": x\r\n\r\n", err: ErrResponseField},
		{name: "no colon", in: line + "NoColon\r\n\r\n", err: ErrResponseField},
		{name: "obs-fold", in: line + "X: a\r\n b\r\n\r\n", err: ErrResponseField},
		{name: "whitespace before the first field", in: line + " X: a\r\n\r\n", err: ErrResponseField},
		{name: "name with a slash", in: line + "X/Y: a\r\n\r\n", err: ErrResponseField},
		{name: "NUL in a value", in: line + "X: a\x00b\r\n\r\n", err: ErrResponseField},
		{name: "CR in a value", in: line + "X: a\rb\r\n\r\n", err: ErrResponseField},
		{name: "DEL in a value", in: line + "X: a\x7f\r\n\r\n", err: ErrResponseField},
		{name: "control byte in a value", in: line + "X: \x01\r\n\r\n", err: ErrResponseField},
		{name: "non-ASCII name", in: line + "X\xc3\xa9: a\r\n\r\n", err: ErrResponseField},
		{name: "named in Connection", in: line + "Connection: X-A, close\r\nX-A: 1\r\nX-B: 2\r\nContent-Length: 0\r\n\r\n",
			want: kv("Kinds", "Connection,NamedInConnection,Other,ContentLength", "Close", "true")},
		{name: "Connection never names framing", in: line + "Connection: content-length, transfer-encoding\r\nContent-Length: 2\r\n\r\n",
			want: kv("Kinds", "Connection,ContentLength", "Framing", "Length")},
	})
}

// TestReadResponseFraming follows RFC 9112 §6.3.
func TestReadResponseFraming(t *testing.T) {
	runResponseCases(t, []responseCase{
		{name: "Content-Length", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
			want: kv("Framing", "Length", "ContentLength", "5", "HasLength", "true", "Close", "false")},
		{name: "Content-Length 0", in: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
			want: kv("Framing", "NoBody", "HasLength", "true", "Close", "false")},
		{name: "Content-Length twice, equal", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
			want: kv("Framing", "Length", "ContentLength", "5")},
		{name: "Content-Length twice, different", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", err: ErrResponseLength},
		{name: "Content-Length list", in: "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", err: ErrResponseLength},
		{name: "Content-Length negative", in: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", err: ErrResponseLength},
		{name: "Content-Length empty", in: "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", err: ErrResponseLength},
		{name: "Content-Length 19 digits", in: "HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000000\r\n\r\n", err: ErrResponseLength},
		{name: "HEAD", head: true, in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
			want: kv("Framing", "NoBody", "ContentLength", "5", "HasLength", "true", "Close", "false")},
		{name: "HEAD, chunked", head: true, in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
			want: kv("Framing", "NoBody", "HasLength", "false", "Close", "false")},
		{name: "HEAD, no length", head: true, in: "HTTP/1.1 200 OK\r\n\r\n",
			want: kv("Framing", "NoBody", "Close", "false")},
		{name: "100", in: "HTTP/1.1 100 Continue\r\n\r\n", want: kv("Status", "100", "Framing", "NoBody", "Close", "false")},
		{name: "101", in: "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
			want: kv("Status", "101", "Framing", "NoBody", "Kinds", "Connection,Upgrade")},
		{name: "103 with a length", in: "HTTP/1.1 103 Early Hints\r\nContent-Length: 5\r\nLink: </a>\r\n\r\n",
			want: kv("Framing", "NoBody")},
		{name: "204 with a length", in: "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
			want: kv("Framing", "NoBody", "HasLength", "true")},
		{name: "204 chunked", in: "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
			want: kv("Framing", "NoBody", "Close", "false")},
		{name: "304 with a length", in: "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
			want: kv("Framing", "NoBody", "ContentLength", "5", "HasLength", "true")},
		{name: "304 without a length", in: "HTTP/1.1 304 Not Modified\r\n\r\n", want: kv("Framing", "NoBody", "Close", "false")},
		{name: "chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
			want: kv("Framing", "Chunked", "Close", "false", "Kinds", "TransferEncoding")},
		{name: "Chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n", want: kv("Framing", "Chunked")},
		{name: "gzip, chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", want: kv("Framing", "Chunked", "Close", "false")},
		{name: "gzip then chunked, two fields", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
			want: kv("Framing", "Chunked")},
		{name: "chunked, gzip", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", want: kv("Framing", "UntilClose", "Close", "true")},
		{name: "gzip", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", want: kv("Framing", "UntilClose", "Close", "true")},
		{name: "identity", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n", want: kv("Framing", "UntilClose", "Close", "true")},
		{name: "identity with Content-Length", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n\r\n",
			want: kv("Framing", "UntilClose", "Close", "true", "HasLength", "false")},
		{name: "chunked, chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", err: ErrResponseCoding},
		{name: "chunked twice, two fields", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", err: ErrResponseCoding},
		{name: "chunked with Content-Length", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
			want: kv("Framing", "Chunked", "HasLength", "false")},
		{name: "gzip with Content-Length", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\n",
			want: kv("Framing", "UntilClose", "HasLength", "false", "Close", "true")},
		{name: "chunked with an invalid Content-Length", in: "HTTP/1.1 200 OK\r\nContent-Length: x\r\nTransfer-Encoding: chunked\r\n\r\n", err: ErrResponseLength},
		{name: "no length", in: "HTTP/1.1 200 OK\r\n\r\n", want: kv("Framing", "UntilClose", "Close", "true", "HasLength", "false")},
		{name: "HTTP/1.0, no length", in: "HTTP/1.0 200 OK\r\n\r\n", want: kv("Framing", "UntilClose", "Close", "true")},
		{name: "HTTP/1.0 closes", in: "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", want: kv("Framing", "Length", "Close", "true")},
		{name: "HTTP/1.0 keep-alive", in: "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\n",
			want: kv("Framing", "Length", "Close", "false")},
		{name: "Connection: close", in: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", want: kv("Close", "true")},
		{name: "Connection: close in a list", in: "HTTP/1.1 200 OK\r\nConnection: keep-alive, CLOSE\r\nContent-Length: 1\r\n\r\n", want: kv("Close", "true")},
		{name: "304 closes", in: "HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n", want: kv("Close", "true", "Framing", "NoBody")},
	})
}

func TestReadResponseEOF(t *testing.T) {
	for _, tt := range []struct {
		in      string
		started bool
	}{
		{"", false},
		{"\r\n", false},
		{"H", true},
		{"HTTP/1.1 200 OK\r\n", true},
	} {
		for _, feed := range feeds {
			rd, _ := newFeed(tt.in, feed.wrap)
			var resp Response
			started, err := rd.ReadResponse(&resp, false)
			if started != tt.started || err != io.EOF {
				t.Errorf("%s: ReadResponse(%q) = %v, %v; want %v, EOF", feed.name, tt.in, started, err, tt.started)
			}
		}
	}
}

// TestHTTP10ResponseTransferEncodingCloses: RFC 9112 §6.1, "A server or
// client that receives an HTTP/1.0 message containing a Transfer-Encoding
// header field MUST treat the message as if the framing is faulty, even if
// a Content-Length is present, and close the connection after processing
// the message." net/http ignores Transfer-Encoding in an HTTP/1.0 message
// altogether (and reads by Content-Length): such a target connection must
// not go back to the pool.
func TestHTTP10ResponseTransferEncodingCloses(t *testing.T) {
	for _, in := range []string{
		"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
	} {
		rd, _ := newFeed(in, feeds[0].wrap)
		var resp Response
		if _, err := rd.ReadResponse(&resp, false); err != nil {
			continue // refusing it is fine too
		}
		if !resp.Close {
			t.Errorf("%q: Close = false, want true", in)
		}
	}
}

func TestValidStatus(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"200", true}, {"100", true}, {"101", true}, {"599", true}, {"999", true},
		{"099", false}, {"000", false}, {"0", false}, {"20", false}, {"1000", false},
		{"-10", false}, {"+20", false}, {"2a0", false}, {" 200", false}, {"", false},
	} {
		if got := ValidStatus(tt.in); got != tt.want {
			t.Errorf("ValidStatus(%q) = %v, want %v", tt.in, got, tt.want)
		}
		if got := ValidStatus([]byte(tt.in)); got != tt.want {
			t.Errorf("ValidStatus([]byte(%q)) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
