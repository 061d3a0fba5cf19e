package server

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2BenchClient speaks HTTP/2 with prior knowledge on one connection, one
// request at a time, without allocating once set up. Its fields are
// indexed in HPACK's dynamic table as browsers' and nghttp2's are: the
// first request adds them (first), and every request after it names them
// by index (req), the same bytes for every stream. Its windows are opened
// wide at the start.
type h2BenchClient struct {
	c     net.Conn
	r     *bufio.Reader
	first []byte // the first HEADERS frame
	req   []byte // a HEADERS frame; its stream id is set for each request
	id    uint32
	hdr   [9]byte
	buf   []byte
	body  []byte // the last response's body
	post  bool   // a POST, its body in a DATA frame after the head
}

// postBody is what an h2BenchClient made with post sends with each request.
var postBody = []byte("a=1&b=2\n")

func newH2BenchClient(tb testing.TB, addr, cookie string, post bool) *h2BenchClient {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	bc := &h2BenchClient{c: c, r: bufio.NewReaderSize(c, 16<<10), id: 1, buf: make([]byte, 16<<10), post: post}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	method, length, flags := "GET", "", http2.FlagHeadersEndStream|http2.FlagHeadersEndHeaders
	if post {
		method, length, flags = "POST", fmt.Sprint(len(postBody)), http2.FlagHeadersEndHeaders
	}
	frame := func() []byte {
		block.Reset()
		for _, f := range [][2]string{{":method", method}, {":scheme", "http"}, {":authority", "bench.example"},
			{":path", "/index.html"}, {"user-agent", "bench"}, {"accept", "*/*"}, {"cookie", cookie},
			{"content-length", length}} {
			if f[1] != "" {
				enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
			}
		}
		p := make([]byte, 9, 9+block.Len())
		p = append(p, block.Bytes()...)
		n := block.Len()
		p[0], p[1], p[2] = byte(n>>16), byte(n>>8), byte(n)
		p[3] = byte(http2.FrameHeaders)
		p[4] = byte(flags)
		if post {
			// The body in a DATA frame that ends the stream, in the same
			// write as the head.
			p = append(p, 0, 0, byte(len(postBody)), byte(http2.FrameData), byte(http2.FlagDataEndStream), 0, 0, 0, 0)
			p = append(p, postBody...)
		}
		return p
	}
	bc.first, bc.req = frame(), frame()
	fr := http2.NewFramer(c, bc.r)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		tb.Fatal(err)
	}
	if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30}); err != nil {
		tb.Fatal(err)
	}
	if err := fr.WriteWindowUpdate(0, 1<<30); err != nil {
		tb.Fatal(err)
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			tb.Fatalf("reading latch's SETTINGS: %v", err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			break
		}
	}
	if err := fr.WriteSettingsAck(); err != nil {
		tb.Fatal(err)
	}
	c.SetDeadline(time.Time{})
	return bc
}

// do sends a request on a new stream and reads frames until its response
// ends; it fails on a status other than 200.
func (bc *h2BenchClient) do() error {
	id := bc.id
	bc.id += 2
	req := bc.req
	if id == 1 {
		req = bc.first
	}
	binary.BigEndian.PutUint32(req[5:9], id)
	if bc.post {
		binary.BigEndian.PutUint32(req[len(req)-len(postBody)-4:], id) // the DATA frame's
	}
	if _, err := bc.c.Write(req); err != nil {
		return err
	}
	bc.body = bc.body[:0]
	for {
		if _, err := io.ReadFull(bc.r, bc.hdr[:]); err != nil {
			return err
		}
		n := int(bc.hdr[0])<<16 | int(bc.hdr[1])<<8 | int(bc.hdr[2])
		typ, flags := http2.FrameType(bc.hdr[3]), http2.Flags(bc.hdr[4])
		sid := binary.BigEndian.Uint32(bc.hdr[5:]) & (1<<31 - 1)
		if n > len(bc.buf) {
			return fmt.Errorf("a frame of %d bytes", n)
		}
		p := bc.buf[:n]
		if _, err := io.ReadFull(bc.r, p); err != nil {
			return err
		}
		switch {
		case typ == http2.FrameGoAway || typ == http2.FrameRSTStream:
			return fmt.Errorf("got %v from latch", typ)
		case sid != id:
			continue // the connection's (SETTINGS' ACK, WINDOW_UPDATE)
		case typ == http2.FrameHeaders && !status200(p):
			return fmt.Errorf("a response other than 200: HPACK % x", p)
		case typ == http2.FrameData:
			bc.body = append(bc.body, p...)
		}
		if flags&http2.FlagDataEndStream != 0 && (typ == http2.FrameData || typ == http2.FrameHeaders) {
			return nil
		}
	}
}

// status200 reports whether a response's header block begins with
// :status 200 (static index 8), past a dynamic table size update of 0 (a
// connection's first block says latch keeps no table).
func status200(block []byte) bool {
	if len(block) > 0 && block[0] == 0x20 {
		block = block[1:]
	}
	return len(block) > 0 && block[0] == 0x88
}

// h2ProxyRequest is proxyRequest on a listener that takes h2c too; it
// returns the session cookie the case sends, if any.
func h2ProxyRequest(tb testing.TB, c proxyCase) (addr, cookie string) {
	c.h2c = true
	addr, req, _ := proxyRequest(tb, c)
	for _, line := range strings.Split(string(req), "\r\n") {
		if v, ok := strings.CutPrefix(line, "Cookie: "); ok {
			cookie = v
		}
	}
	return addr, cookie
}

// h2Cases are the cases TestProxyH2DoesNotAllocate checks and
// BenchmarkProxyH2Raw measures over h2c.
var h2Cases = []proxyCase{
	{name: "plain"},
	{name: "sticky/new-session", sticky: true},
	{name: "sticky/session", sticky: true, cookie: true},
	{name: "metrics/sticky/session", sticky: true, cookie: true, metrics: true},
	// A POST whose small body comes with its head: served on the loop too.
	{name: "post", post: true},
}

// TestProxyH2DoesNotAllocate: once its pools are warm, latch serves an
// HTTP/2 request (h2c, the stream's request without a body, answered by
// an HTTP/1.1 target) on a warm connection without allocating, as
// TestProxyDoesNotAllocate checks for HTTP/1.1. On the goroutine data
// path a stream's exchange runs on a goroutine of its own, which
// allocates: the check is for the event loops.
func TestProxyH2DoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items at random, so latch's pools allocate again")
	}
	if dataPath != Loops {
		t.Skip("HTTP/2 streams are served without allocating on the event loops")
	}
	for _, c := range h2Cases {
		t.Run(c.name, func(t *testing.T) {
			addr, cookie := h2ProxyRequest(t, c)
			client := newH2BenchClient(t, addr, cookie, c.post)
			defer client.c.Close()
			steadyAllocs(t, "proxied HTTP/2 requests", client.do)
			if body := "hello, world\n"; string(client.body) != body {
				t.Fatalf("the last response body was %q, want the target's %q", client.body, body)
			}
		})
	}
}

// BenchmarkProxyH2Raw measures latch serving HTTP/2 requests (h2c) with a
// client that allocates nothing, so that the allocations reported are
// latch's and its target's (which allocates none either): serial, one
// stream at a time on one connection, and parallel, 16 connections.
func BenchmarkProxyH2Raw(b *testing.B) {
	for _, bc := range h2Cases {
		b.Run(dataPath.String()+"/"+bc.name, func(b *testing.B) {
			addr, cookie := h2ProxyRequest(b, bc)
			b.Run("serial", func(b *testing.B) {
				c := newH2BenchClient(b, addr, cookie, bc.post)
				defer c.c.Close()
				if err := c.do(); err != nil { // warm the pools
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				cpu := cpuTime()
				for b.Loop() {
					if err := c.do(); err != nil {
						b.Fatal(err)
					}
				}
				reportCPU(b, cpu)
			})
			b.Run("parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(16)
				cpu := cpuTime()
				b.RunParallel(func(pb *testing.PB) {
					c := newH2BenchClient(b, addr, cookie, bc.post)
					defer c.c.Close()
					for pb.Next() {
						if err := c.do(); err != nil {
							b.Error(err)
							return
						}
					}
				})
				reportCPU(b, cpu)
			})
		})
	}
}

// TestHTTP2BodyInOneWrite: a request whose head and body come in one
// write is served on the loop, the body reaching the target whole; one
// whose body ends with trailers, or is reset before it ends, in that same
// write, is handed on or dropped without harm, and the connection serves
// on.
func TestHTTP2BodyInOneWrite(t *testing.T) {
	var got []string
	var mu sync.Mutex
	target := serveH2CEcho(t, &mu, &got)
	lb := startLB(t, lbConfig{targets: []string{target}, listenAttrs: map[string]string{"routing.http2.h2c.enabled": "true"}})
	c, err := net.Dial("tcp", strings.TrimPrefix(lb.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var out bytes.Buffer
	fr := http2.NewFramer(&out, c)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	head := func(id uint32, path string, n int) {
		hb.Reset()
		for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "x"}, {":path", path},
			{"content-length", fmt.Sprint(n)}} {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true})
	}
	io.WriteString(&out, http2.ClientPreface)
	fr.WriteSettings()
	head(1, "/whole", 10)
	fr.WriteData(1, false, []byte("01234"))
	fr.WriteData(1, true, []byte("56789"))
	head(3, "/reset", 10)
	fr.WriteData(3, false, []byte("01234"))
	fr.WriteRSTStream(3, http2.ErrCodeCancel)
	head(5, "/trailers", 4)
	fr.WriteData(5, false, []byte("abcd"))
	hb.Reset()
	enc.WriteField(hpack.HeaderField{Name: "x-sum", Value: "1"})
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: hb.Bytes(), EndHeaders: true, EndStream: true})
	if _, err := c.Write(out.Bytes()); err != nil {
		t.Fatal(err)
	}
	rd := http2.NewFramer(io.Discard, c)
	ended := map[uint32]bool{}
	for len(ended) < 2 {
		f, err := rd.ReadFrame()
		if err != nil {
			t.Fatalf("reading latch's answers: %v", err)
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			if f.StreamEnded() {
				ended[f.StreamID] = true
			}
		case *http2.HeadersFrame:
			if f.StreamEnded() {
				ended[f.StreamID] = true
			}
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v", f.ErrCode)
		case *http2.RSTStreamFrame:
			t.Fatalf("RST_STREAM %v on stream %d", f.ErrCode, f.StreamID)
		}
	}
	if !ended[1] || !ended[5] {
		t.Errorf("answers ended on streams %v, want 1 and 5", ended)
	}
	mu.Lock()
	defer mu.Unlock()
	want := map[string]bool{"/whole 0123456789": true, "/trailers abcd": true}
	for _, g := range got {
		// A goroutine may have begun sending the reset stream's request
		// before the reset was read; the loop never does.
		if dataPath != Loops && strings.HasPrefix(g, "/reset ") {
			continue
		}
		if !want[g] {
			t.Errorf("the target got %q, want only %v", g, want)
		}
		delete(want, g)
	}
	if len(want) > 0 {
		t.Errorf("the target did not get %v", want)
	}
}

// serveH2CEcho is an HTTP/1.1 target recording each request's path and
// body.
func serveH2CEcho(t *testing.T, mu *sync.Mutex, got *[]string) string {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/" { // not a health check
			mu.Lock()
			*got = append(*got, r.URL.Path+" "+string(b))
			mu.Unlock()
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(ts.Close)
	return strings.TrimPrefix(ts.URL, "http://")
}
