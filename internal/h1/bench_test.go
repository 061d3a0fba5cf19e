package h1

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
)

// browserHead is a typical browser request: 12 fields, about 600 bytes.
const browserHead = "GET /products/12345?ref=home HTTP/1.1\r\n" +
	"Host: www.example.com\r\n" +
	"Connection: keep-alive\r\n" +
	"sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n" +
	"sec-ch-ua-mobile: ?0\r\n" +
	"sec-ch-ua-platform: \"macOS\"\r\n" +
	"Upgrade-Insecure-Requests: 1\r\n" +
	"User-Agent: Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n" +
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n" +
	"Sec-Fetch-Site: same-origin\r\n" +
	"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
	"Accept-Language: en-US,en;q=0.9\r\n" +
	"Cookie: session=abc123def456ghi789; theme=dark; consent=1\r\n" +
	"\r\n"

// wrkHead is what wrk sends by default.
const wrkHead = "GET / HTTP/1.1\r\nHost: localhost:8080\r\n\r\n"

// responseHead is a typical response head.
const responseHead = "HTTP/1.1 200 OK\r\n" +
	"Date: Wed, 25 Nov 2026 15:00:00 GMT\r\n" +
	"Content-Type: text/html; charset=utf-8\r\n" +
	"Content-Length: 1024\r\n" +
	"Connection: keep-alive\r\n" +
	"Cache-Control: no-cache, private\r\n" +
	"Set-Cookie: sid=0123456789abcdef; Path=/; HttpOnly; Secure\r\n" +
	"Vary: Accept-Encoding\r\n" +
	"X-Request-Id: 3f2a9c1e-7b4d-4e8f-a1c2-9d8e7f6a5b4c\r\n" +
	"\r\n"

// headLoop reads the same bytes as one message per iteration: its source
// is rewound before each, and the Reader keeps its buffer.
type headLoop struct {
	src  bytes.Reader
	data []byte
	rd   *Reader
}

func newHeadLoop(s string) *headLoop {
	l := &headLoop{data: []byte(s)}
	l.rd = NewReader(&l.src, false)
	return l
}

func (l *headLoop) rewind() { l.src.Reset(l.data) }

func (l *headLoop) request(req *Request) error {
	l.rewind()
	if _, err := l.rd.ReadRequest(req); err != nil {
		return err
	}
	return req.Frame()
}

func (l *headLoop) response(resp *Response) error {
	l.rewind()
	_, err := l.rd.ReadResponse(resp, false)
	return err
}

func benchRequest(b *testing.B, head string) {
	l := newHeadLoop(head)
	var req Request
	b.ReportAllocs()
	b.SetBytes(int64(len(head)))
	for b.Loop() {
		if err := l.request(&req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRequestBrowser(b *testing.B) { benchRequest(b, browserHead) }
func BenchmarkRequestWrk(b *testing.B)     { benchRequest(b, wrkHead) }

func BenchmarkResponse(b *testing.B) {
	l := newHeadLoop(responseHead)
	var resp Response
	b.ReportAllocs()
	b.SetBytes(int64(len(responseHead)))
	for b.Loop() {
		if err := l.response(&resp); err != nil {
			b.Fatal(err)
		}
	}
}

// bodyLoop relays a body, read through Body.Next, into a Writer, and checks
// that it relayed n body bytes and, for a chunked body, trailers fields.
type bodyLoop struct {
	headLoop
	body     Body
	w        *Writer
	framing  Framing
	length   int64
	n        int
	trailers int
}

func newBodyLoop(enc string, framing Framing, length int64, n, trailers int) *bodyLoop {
	l := &bodyLoop{headLoop: *newHeadLoop(enc), framing: framing, length: length, n: n, trailers: trailers}
	l.rd = NewReader(&l.src, false)
	l.w = NewWriter(io.Discard)
	return l
}

func (l *bodyLoop) relay() error {
	l.rewind()
	l.body.Reset(l.rd, l.framing, l.length, true)
	n := 0
	for {
		p, err := l.body.Next()
		n += len(p)
		if len(p) > 0 {
			if l.framing == Chunked {
				l.w.WriteChunk(p)
			} else {
				l.w.Write(p)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if n != l.n || len(l.body.Trailers()) != l.trailers {
		return fmt.Errorf("relayed %d bytes and %d trailer fields, want %d and %d", n, len(l.body.Trailers()), l.n, l.trailers)
	}
	if l.framing == Chunked {
		l.w.WriteLastChunk(l.body.Trailers())
	}
	return l.w.Flush()
}

var chunked4x256 = encodeChunked(strings.Repeat("c", 1024), []int{256, 256, 256, 256})

func benchBody(b *testing.B, l *bodyLoop, n int) {
	b.ReportAllocs()
	b.SetBytes(int64(n))
	for b.Loop() {
		if err := l.relay(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBodyLength1K(b *testing.B) {
	benchBody(b, newBodyLoop(strings.Repeat("b", 1024), Length, 1024, 1024, 0), 1024)
}

func BenchmarkBodyChunked1K(b *testing.B) {
	benchBody(b, newBodyLoop(chunked4x256, Chunked, 0, 1024, 0), 1024)
}

// writeHead writes a request head as the proxy forwards one.
func writeHead(w *Writer, req *Request) {
	w.Write(req.Method)
	w.WriteByte(' ')
	w.Write(req.Target)
	w.WriteString(" HTTP/1.1\r\n")
	for i, f := range req.Fields {
		if !req.Kinds[i].HopByHop() {
			w.WriteField(f.Name, f.Value)
		}
	}
	w.WriteString("X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: 80\r\nContent-Length: ")
	w.WriteInt(req.ContentLength)
	w.WriteString("\r\n\r\n")
}

func BenchmarkWriterHead(b *testing.B) {
	l := newHeadLoop(browserHead)
	var req Request
	if err := l.request(&req); err != nil {
		b.Fatal(err)
	}
	w := NewWriter(io.Discard)
	b.ReportAllocs()
	for b.Loop() {
		writeHead(w, &req)
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestZeroAllocs: the hot paths allocate nothing once a connection's
// Request, Response and buffers are warm. The checks through a sync.Pool
// skip under the race detector; .ci/run runs this test again without it.
func TestZeroAllocs(t *testing.T) {
	check := func(name string, pooled bool, f func() error) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			if pooled && raceEnabled {
				if err := f(); err != nil {
					t.Fatal(err)
				}
				t.Skip("allocations not counted under the race detector (sync.Pool drops items)")
			}
			var err error
			allocs := testing.AllocsPerRun(200, func() {
				if e := f(); e != nil {
					err = e
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if allocs != 0 {
				t.Errorf("%v allocs per run, want 0", allocs)
			}
		})
	}
	var req Request
	browser, wrk := newHeadLoop(browserHead), newHeadLoop(wrkHead)
	check("browser request + Frame", false, func() error { return browser.request(&req) })
	check("wrk request + Frame", false, func() error { return wrk.request(&req) })
	// Every kind of field, and Connection naming one.
	all := newHeadLoop("POST http://x/y HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n" +
		"Connection: keep-alive, upgrade, X-Hop\r\nX-Hop: 1\r\nUpgrade: ws\r\nKeep-Alive: 5\r\nProxy-Connection: x\r\nTE: trailers;q=1\r\n" +
		"Trailer: g\r\nExpect: 100-continue\r\nCookie: a=1\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2\r\nX-Forwarded-Proto: https\r\n" +
		"X-Forwarded-Port: 443\r\nProxy-Authorization: x\r\n\r\n")
	check("request with every kind + Frame", false, func() error { return all.request(&req) })

	var resp Response
	rl := newHeadLoop(responseHead)
	check("response", false, func() error { return rl.response(&resp) })
	rc := newHeadLoop("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close, X-A\r\nX-A: 1\r\n\r\n")
	check("chunked response naming a field", false, func() error { return rc.response(&resp) })

	check("Length body relay", true, newBodyLoop(strings.Repeat("b", 1024), Length, 1024, 1024, 0).relay)
	check("chunked body relay", true, newBodyLoop(chunked4x256, Chunked, 0, 1024, 0).relay)
	check("chunked body relay with a trailer", true,
		newBodyLoop(encodeChunked("abc", []int{3}, "Grpc-Status: 0", "Grpc-Message: ok"), Chunked, 0, 3, 2).relay)

	w := NewWriter(io.Discard)
	if err := browser.request(&req); err != nil {
		t.Fatal(err)
	}
	check("writing a head", true, func() error { writeHead(w, &req); return w.Flush() })
}
