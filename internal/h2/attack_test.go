package h2

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawClient speaks HTTP/2 frame by frame, as an attacker would, with
// x/net/http2's Framer and HPACK encoder.
type rawClient struct {
	t    testing.TB
	nc   net.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
	sent int64 // bytes written
}

type countWriter struct {
	w io.Writer
	n *int64
}

func (c countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	*c.n += int64(n)
	return n, err
}

// dialRaw connects, sends the preface and settings, and reads nothing.
func dialRaw(t testing.TB, srv *testServer, settings ...http2.Setting) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	rc := &rawClient{t: t, nc: nc}
	rc.fr = http2.NewFramer(countWriter{nc, &rc.sent}, nc)
	rc.fr.SetMaxReadFrameSize(maxMaxFrame)
	rc.fr.ReadMetaHeaders = nil
	rc.enc = hpack.NewEncoder(&rc.hbuf)
	if _, err := io.WriteString(countWriter{nc, &rc.sent}, Preface); err != nil {
		t.Fatal(err)
	}
	if err := rc.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	// The server's SETTINGS, acknowledged here, so that no ACK is written
	// later in the middle of what a test sends.
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the server's SETTINGS: %v", err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			break
		}
	}
	if err := rc.fr.WriteSettingsAck(); err != nil {
		t.Fatal(err)
	}
	return rc
}

// block encodes a request head: pseudo-fields for GET / and then pairs
// of names and values.
func (rc *rawClient) block(path string, fields ...string) []byte {
	rc.hbuf.Reset()
	rc.enc.WriteField(hpack.HeaderField{Name: ":method", Value: "GET"})
	rc.enc.WriteField(hpack.HeaderField{Name: ":scheme", Value: "http"})
	rc.enc.WriteField(hpack.HeaderField{Name: ":authority", Value: "a"})
	rc.enc.WriteField(hpack.HeaderField{Name: ":path", Value: path})
	for i := 0; i+1 < len(fields); i += 2 {
		rc.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return bytes.Clone(rc.hbuf.Bytes())
}

func (rc *rawClient) request(id uint32, path string, end bool, fields ...string) error {
	return rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: rc.block(path, fields...),
		EndStream: end, EndHeaders: true})
}

// until reads frames until match returns true, and returns that frame;
// it fails on the connection's end or after 5 s.
func (rc *rawClient) until(what string, match func(http2.Frame) bool) http2.Frame {
	rc.t.Helper()
	rc.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			rc.t.Fatalf("waiting for %s: %v", what, err)
		}
		if match(f) {
			return f
		}
	}
}

// goAway waits for the server's GOAWAY and wants its code.
func (rc *rawClient) goAway(want http2.ErrCode) {
	rc.t.Helper()
	f := rc.until("GOAWAY", func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
	if f.ErrCode != want {
		rc.t.Errorf("got GOAWAY %v, want %v", f.ErrCode, want)
	}
}

// closed wants the server to close the connection within 5 s.
func (rc *rawClient) closed() {
	rc.t.Helper()
	rc.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, err := rc.fr.ReadFrame(); err != nil {
			if errors.Is(err, io.EOF) || strings.Contains(err.Error(), "reset by peer") {
				return
			}
			rc.t.Fatalf("got %v, want the connection closed", err)
		}
	}
}

func (rc *rawClient) rst(id uint32, want http2.ErrCode) {
	rc.t.Helper()
	f := rc.until("RST_STREAM", func(f http2.Frame) bool {
		if g, ok := f.(*http2.GoAwayFrame); ok {
			rc.t.Fatalf("got GOAWAY %v, want RST_STREAM %v on stream %d", g.ErrCode, want, id)
		}
		r, ok := f.(*http2.RSTStreamFrame)
		return ok && r.StreamID == id
	}).(*http2.RSTStreamFrame)
	if f.ErrCode != want {
		rc.t.Errorf("got RST_STREAM %v on stream %d, want %v", f.ErrCode, id, want)
	}
}

// TestRapidReset: streams opened and reset at once (CVE-2023-44487) reach
// the handler a bounded number of times, and the connection is closed
// with GOAWAY ENHANCE_YOUR_CALM.
func TestRapidReset(t *testing.T) {
	srv := startServer(t, Config{}, false)
	rc := dialRaw(t, srv)
	blk := rc.block("/hold")
	var err error
	for id := uint32(1); id < 20000 && err == nil; id += 2 {
		err = rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: blk, EndStream: true, EndHeaders: true})
		if err == nil {
			err = rc.fr.WriteRSTStream(id, http2.ErrCodeCancel)
		}
	}
	rc.goAway(http2.ErrCodeEnhanceYourCalm)
	if got := srv.heads.Load(); got > 300 {
		t.Errorf("the handler got %d requests of 10,000 reset at once, want at most 300", got)
	}
	if got := srv.ctr.RapidResets.Load(); got != 1 {
		t.Errorf("got RapidResets %d, want 1", got)
	}
}

// TestContinuationFlood: a header block that never ends is cut off once
// it passes twice the header list limit on the wire, with GOAWAY, and the
// handler never sees it; zero-length CONTINUATION frames too.
func TestContinuationFlood(t *testing.T) {
	for _, size := range []int{16 << 10, 0} {
		srv := startServer(t, Config{}, false)
		rc := dialRaw(t, srv)
		rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: rc.block("/"), EndHeaders: false})
		// Each fragment is whole literal fields, never indexed: valid
		// HPACK, only endless.
		rc.hbuf.Reset()
		for rc.hbuf.Len() < size-120 {
			rc.enc.WriteField(hpack.HeaderField{Name: "x", Value: strings.Repeat("x", 100), Sensitive: true})
		}
		frag := bytes.Clone(rc.hbuf.Bytes())
		go func() {
			for i := 0; i < 100000; i++ {
				if rc.fr.WriteContinuation(1, false, frag) != nil {
					return
				}
			}
		}()
		rc.goAway(http2.ErrCodeEnhanceYourCalm)
		if got := srv.heads.Load(); got != 0 {
			t.Errorf("fragments of %d bytes: the handler got %d requests, want 0", size, got)
		}
		if got := srv.ctr.ContinuationFloods.Load(); got != 1 {
			t.Errorf("fragments of %d bytes: got ContinuationFloods %d, want 1", size, got)
		}
	}
}

// TestHPACKBomb: a 4 KiB field put in the dynamic table once and then
// named by a one-byte index a hundred times decodes to 400 KiB: the
// request is refused with 431 after a bounded decode, and the connection
// goes on.
func TestHPACKBomb(t *testing.T) {
	srv := startServer(t, Config{}, false)
	rc := dialRaw(t, srv)
	blk := rc.block("/", "x-bomb", strings.Repeat("b", 4000))
	// The table's newest entry is index 62: 0x80|62 names it.
	for range 100 {
		blk = append(blk, 0x80|62)
	}
	rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk, EndStream: true, EndHeaders: true})
	f := rc.until("the response", func(f http2.Frame) bool { _, ok := f.(*http2.HeadersFrame); return ok }).(*http2.HeadersFrame)
	fields, err := hpack.NewDecoder(4096, nil).DecodeFull(f.HeaderBlockFragment())
	if err != nil || len(fields) == 0 || fields[0].Value != "431" {
		t.Errorf("got %v (%v), want :status 431", fields, err)
	}
	if got := srv.ctr.HeaderListTooLarge.Load(); got != 1 {
		t.Errorf("got HeaderListTooLarge %d, want 1", got)
	}
	rc.request(3, "/", true)
	rc.until("the next response", func(f http2.Frame) bool { h, ok := f.(*http2.HeadersFrame); return ok && h.StreamID == 3 })
}

// TestPingAndSettingsFloods: PING and SETTINGS frames past FloodLimit a
// second end the connection with ENHANCE_YOUR_CALM, having been answered
// at most that many times.
func TestPingAndSettingsFloods(t *testing.T) {
	for _, kind := range []string{"PING", "SETTINGS"} {
		srv := startServer(t, Config{FloodLimit: 500}, false)
		rc := dialRaw(t, srv)
		go func() {
			for i := 0; i < 20000; i++ {
				var err error
				if kind == "PING" {
					err = rc.fr.WritePing(false, [8]byte{byte(i)})
				} else {
					err = rc.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 16})
				}
				if err != nil {
					return
				}
			}
		}()
		acks := 0
		rc.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		var code http2.ErrCode = 99
		for code == 99 {
			f, err := rc.fr.ReadFrame()
			if err != nil {
				t.Fatalf("%s flood: %v before a GOAWAY", kind, err)
			}
			switch f := f.(type) {
			case *http2.PingFrame:
				acks++
			case *http2.SettingsFrame:
				if f.IsAck() {
					acks++
				}
			case *http2.GoAwayFrame:
				code = f.ErrCode
			}
		}
		if code != http2.ErrCodeEnhanceYourCalm || acks > 501 {
			t.Errorf("%s flood: got GOAWAY %v after %d answers; want ENHANCE_YOUR_CALM after at most 501", kind, code, acks)
		}
		ctr := &srv.ctr.PingFloods
		if kind == "SETTINGS" {
			ctr = &srv.ctr.SettingsFloods
		}
		if ctr.Load() != 1 {
			t.Errorf("%s flood: got its counter at %d, want 1", kind, ctr.Load())
		}
	}
}

// TestZeroWindowStall: a client that shuts its window and asks for a
// large response holds nothing in the engine (the handler keeps what it
// cannot send), and the stream is reset after StallTimeout.
func TestZeroWindowStall(t *testing.T) {
	srv := startServer(t, Config{StallTimeout: 200 * time.Millisecond}, false)
	rc := dialRaw(t, srv, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	rc.request(1, "/big?100000000", true)
	rc.rst(1, http2.ErrCodeCancel)
	if got := srv.ctr.Stalls.Load(); got != 1 {
		t.Errorf("got Stalls %d, want 1", got)
	}
	select {
	case code := <-srv.done:
		if code != Cancel {
			t.Errorf("got Done with %v, want CANCEL", code)
		}
	case <-time.After(5 * time.Second):
		t.Error("the handler was not told of the stalled stream's reset")
	}
}

// TestConnWindowBoundsBuffering: body bytes a handler holds and has not
// used count against the connection's window until it uses them, so that
// a client cannot make a connection buffer more than that window (1 MiB)
// over many streams, each within its own (256 KiB). (The window was given
// back as frames came, which let 128 streams hold 32 MiB.)
func TestConnWindowBoundsBuffering(t *testing.T) {
	srv := startServer(t, Config{}, false)
	rc := dialRaw(t, srv)
	for id := uint32(1); id <= 9; id += 2 {
		if err := rc.request(id, "/hold", false); err != nil {
			t.Fatal(err)
		}
	}
	chunk := make([]byte, 16<<10)
	for id := uint32(1); id <= 7; id += 2 {
		for range 16 { // 256 KiB, the stream's window; 1 MiB in all
			if err := rc.fr.WriteData(id, false, chunk); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := rc.fr.WriteData(9, false, []byte{1}); err != nil {
		t.Fatal(err)
	}
	rc.goAway(http2.ErrCodeFlowControl)
	if got := srv.heads.Load(); got != 5 {
		t.Errorf("got %d requests, want 5", got)
	}
}

// TestTooManyStreams: streams past the 128 advertised are refused with
// REFUSED_STREAM, and those within are served.
func TestTooManyStreams(t *testing.T) {
	srv := startServer(t, Config{}, false)
	rc := dialRaw(t, srv)
	for id := uint32(1); id <= 2*129-1; id += 2 {
		rc.request(id, "/hold", true)
	}
	rc.rst(2*129-1, http2.ErrCodeRefusedStream)
	if got := srv.ctr.RefusedStreams.Load(); got != 1 {
		t.Errorf("got RefusedStreams %d, want 1", got)
	}
	if got := len(srv.held); got != 128 {
		t.Errorf("got %d streams held, want 128", got)
	}
}

// TestBadPreface: a client that does not begin with the preface (HTTP/1.1
// here) gets GOAWAY PROTOCOL_ERROR and the connection closes.
func TestBadPreface(t *testing.T) {
	srv := startServer(t, Config{}, false)
	nc, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	io.WriteString(nc, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(nc)
	if err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(nil, bytes.NewReader(got))
	var code http2.ErrCode = 99
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			break
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			code = g.ErrCode
		}
	}
	if code != http2.ErrCodeProtocol {
		t.Errorf("got GOAWAY %v, want PROTOCOL_ERROR", code)
	}
}

// TestMalformedRequests: fields HTTP/2 forbids are stream errors
// (RST_STREAM PROTOCOL_ERROR, RFC 9113 §8.2), and the connection goes on.
func TestMalformedRequests(t *testing.T) {
	srv := startServer(t, Config{}, false)
	rc := dialRaw(t, srv)
	id := uint32(1)
	for _, fields := range [][]string{
		{"X-Upper", "a"},
		{"connection", "keep-alive"},
		{"keep-alive", "5"},
		{"transfer-encoding", "chunked"},
		{"upgrade", "websocket"},
		{"http2-settings", "AAA"},
		{"te", "gzip"},
		{"x-bad", "a\x00b"},
		{"x-bad", " padded"},
		{":unknown", "x"},
	} {
		rc.request(id, "/", true, fields...)
		rc.rst(id, http2.ErrCodeProtocol)
		id += 2
	}
	// te: trailers is allowed.
	rc.request(id, "/", true, "te", "trailers")
	rc.until("the response", func(f http2.Frame) bool { h, ok := f.(*http2.HeadersFrame); return ok && h.StreamID == id })
	// A body longer than its content-length.
	id += 2
	rc.request(id, "/", false, "content-length", "2")
	rc.fr.WriteData(id, true, []byte("abc"))
	rc.rst(id, http2.ErrCodeProtocol)
}

// TestLargeFramesAndRepeatedSettings: a client's SETTINGS_MAX_FRAME_SIZE
// up to 2^24-1 is honoured (DATA frames above 16 KiB come), and repeated
// values in one SETTINGS frame are taken, the last winning.
func TestLargeFramesAndRepeatedSettings(t *testing.T) {
	srv := startServer(t, Config{}, false)
	rc := dialRaw(t, srv,
		http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 16},
		http2.Setting{ID: http2.SettingMaxFrameSize, Val: maxMaxFrame},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 22})
	rc.fr.WriteWindowUpdate(0, 1<<22)
	rc.request(1, "/big?1000000", true)
	largest := 0
	rc.until("the end of the body", func(f http2.Frame) bool {
		d, ok := f.(*http2.DataFrame)
		if ok {
			largest = max(largest, len(d.Data()))
		}
		return ok && d.StreamEnded()
	})
	if largest <= minMaxFrame {
		t.Errorf("got DATA frames of at most %d bytes, want larger than 16,384", largest)
	}
}

// TestIdleTimeout: a connection with no stream for IdleTimeout gets
// GOAWAY NO_ERROR and is closed.
func TestIdleTimeout(t *testing.T) {
	srv := startServer(t, Config{IdleTimeout: 100 * time.Millisecond}, false)
	rc := dialRaw(t, srv)
	rc.goAway(http2.ErrCodeNo)
	rc.closed()
	if got := srv.ctr.IdleClosed.Load(); got != 1 {
		t.Errorf("got IdleClosed %d, want 1", got)
	}
}

// recorder is a handler that records which streams it had a Head for and
// which it was told are Done.
type recorder struct {
	mu           sync.Mutex
	heads, dones []uint32
}

func (r *recorder) Head(s *Stream, h *Head) {
	r.mu.Lock()
	r.heads = append(r.heads, s.ID)
	r.mu.Unlock()
}
func (r *recorder) Data(*Stream, []byte, bool) {}
func (r *recorder) Trailers(*Stream, []Field)  {}
func (r *recorder) Writable(*Stream)           {}
func (r *recorder) Done(s *Stream, code ErrCode) {
	r.mu.Lock()
	r.dones = append(r.dones, s.ID)
	r.mu.Unlock()
}

// TestNoDoneWithoutHead: a connection that fails while a stream's header
// block is still coming (h2spec 4.3/3: a HEADERS frame for another stream
// in its middle) tells the handler nothing of that stream: it never had
// its Head. (latch's handler took every Done for one of its streams, and
// crashed.)
func TestNoDoneWithoutHead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	rec := &recorder{}
	served := make(chan struct{})
	go func() {
		defer close(served)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		NewConn(rec, Config{}).Serve(nc)
	}()
	rc := dialRaw(t, &testServer{addr: ln.Addr().String()})
	// Stream 1 complete, then stream 3's block left open and stream 5's
	// HEADERS in its middle.
	rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: rc.block("/"), EndHeaders: true})
	rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: rc.block("/"), EndHeaders: false})
	rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: rc.block("/"), EndHeaders: true})
	rc.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			t.Fatalf("no GOAWAY: %v", err)
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			if ga.ErrCode != http2.ErrCodeProtocol {
				t.Errorf("GOAWAY %v, want PROTOCOL_ERROR", ga.ErrCode)
			}
			break
		}
	}
	rc.nc.Close()
	<-served
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.heads) != 1 || rec.heads[0] != 1 {
		t.Fatalf("heads %v, want stream 1's", rec.heads)
	}
	for _, id := range rec.dones {
		if id != 1 {
			t.Errorf("Done for stream %d, whose Head the handler never had (dones %v)", id, rec.dones)
		}
	}
}

// TestTrailersAfterOurReset: request trailers that cross latch's
// RST_STREAM NO_ERROR (the response ended before the body did) are
// ignored, as RFC 9113 §5.1 says, and the connection's other streams go
// on: a GOAWAY there closed every stream of the connection.
func TestTrailersAfterOurReset(t *testing.T) {
	srv := startServer(t, Config{}, false)
	rc := dialRaw(t, srv)
	if err := rc.request(1, "/early", false); err != nil {
		t.Fatal(err)
	}
	rc.rst(1, http2.ErrCodeNo)
	// The client's trailers, sent before it saw the reset.
	rc.hbuf.Reset()
	rc.enc.WriteField(hpack.HeaderField{Name: "x-checksum", Value: "abc"})
	if err := rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: rc.hbuf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	if err := rc.request(3, "/", true); err != nil {
		t.Fatal(err)
	}
	f := rc.until("stream 3's response", func(f http2.Frame) bool {
		if g, ok := f.(*http2.GoAwayFrame); ok {
			t.Fatalf("GOAWAY %v after trailers on a stream latch reset", g.ErrCode)
		}
		h, ok := f.(*http2.HeadersFrame)
		return ok && h.StreamID == 3
	})
	if f.Header().StreamID != 3 {
		t.Fatalf("got %v", f)
	}
}
