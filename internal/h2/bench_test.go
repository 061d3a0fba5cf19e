package h2

import (
	"bytes"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// answerer answers every request at once from fixed bytes, taking its
// body as it comes: the least a forwarding core would do.
type answerer struct{ reqs, data int }

var (
	answerFields = []Field{
		{Name: []byte("Content-Type"), Value: []byte("text/plain")},
		{Name: []byte("cache-control"), Value: []byte("no-cache")},
		{Name: []byte("set-cookie"), Value: []byte("AWSALB=0123456789abcdef0123456789abcdef; Path=/; Max-Age=604800")},
	}
	answerBody = bytes.Repeat([]byte("latch "), 100)
)

func (a *answerer) Head(s *Stream, h *Head) {
	a.reqs++
	s.WriteHead(200, answerFields, false)
	if h.End {
		s.Write(answerBody, true)
	}
}

func (a *answerer) Data(s *Stream, p []byte, end bool) {
	a.data += len(p)
	s.Consume(len(p))
	if end {
		s.Write(answerBody, true)
	}
}
func (a *answerer) Trailers(s *Stream, _ []Field) { s.Write(answerBody, true) }
func (a *answerer) Writable(*Stream)              {}
func (a *answerer) Done(*Stream, ErrCode)         {}

// wire builds what a client sends, frame by frame, with x/net's Framer
// and an HPACK encoder that keeps its table, as a browser's would.
type wire struct {
	buf bytes.Buffer
	fr  *http2.Framer
	hb  bytes.Buffer
	enc *hpack.Encoder
}

func newWire() *wire {
	w := &wire{}
	w.fr = http2.NewFramer(&w.buf, nil)
	w.enc = hpack.NewEncoder(&w.hb)
	return w
}

// requestBlock encodes a browser-like GET.
func (w *wire) requestBlock() []byte {
	w.hb.Reset()
	for _, f := range [][2]string{
		{":method", "GET"}, {":scheme", "https"}, {":authority", "www.example.com"}, {":path", "/index.html"},
		{"user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"},
		{"accept", "text/html,application/xhtml+xml"}, {"accept-language", "en-GB,en;q=0.5"},
		{"accept-encoding", "gzip, deflate, br"}, {"cookie", "AWSALB=0123456789abcdef0123456789abcdef"},
	} {
		w.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return bytes.Clone(w.hb.Bytes())
}

// warmConn returns a connection past its preface and settings, having
// served one request, with its output written.
func warmConn(tb testing.TB, h Handler, w *wire) *Conn {
	c := NewConn(h, Config{})
	w.buf.WriteString(Preface)
	w.fr.WriteSettings()
	w.fr.WriteSettingsAck()
	w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: w.requestBlock(), EndStream: true, EndHeaders: true})
	feed(c, w.buf.Bytes())
	w.buf.Reset()
	c.Wrote(len(c.Pending()))
	if c.Done() {
		tb.Fatal("the connection ended in its warm-up")
	}
	return c
}

func feed(c *Conn, p []byte) {
	for len(p) > 0 {
		n := copy(c.ReadBuf(), p)
		c.Received(n)
		p = p[n:]
	}
}

// exchange is one request on a new stream and its answer written out,
// with the WINDOW_UPDATE a client sends for what it received.
type exchange struct {
	c   *Conn
	req []byte // HEADERS, then WINDOW_UPDATE; the stream id is patched
	id  uint32
}

func newExchange(tb testing.TB) *exchange {
	w := newWire()
	c := warmConn(tb, &answerer{}, w)
	blk := w.requestBlock() // all indexed now: the table holds the fields
	w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: blk, EndStream: true, EndHeaders: true})
	w.fr.WriteWindowUpdate(0, uint32(len(answerBody)))
	return &exchange{c: c, req: bytes.Clone(w.buf.Bytes()), id: 3}
}

func (x *exchange) run() {
	r := x.req
	r[5], r[6], r[7], r[8] = byte(x.id>>24), byte(x.id>>16), byte(x.id>>8), byte(x.id)
	x.id += 2
	feed(x.c, r)
	x.c.Wrote(len(x.c.Pending()))
}

// BenchmarkExchange is a request and its answer on a warm connection
// through the engine: a browser's GET decoded (HPACK, fields checked and
// measured), a head of three fields and 600 bytes of body encoded.
func BenchmarkExchange(b *testing.B) {
	x := newExchange(b)
	b.ReportAllocs()
	for b.Loop() {
		x.run()
	}
}

// TestExchangeDoesNotAllocate: an exchange on a warm connection
// allocates nothing.
func TestExchangeDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	x := newExchange(t)
	if got := testing.AllocsPerRun(1000, x.run); got != 0 {
		t.Errorf("got %v allocations per exchange, want 0", got)
	}
}

// BenchmarkDataFrames is an upload's frames parsed: 16 KiB DATA frames on
// one stream, each handed to the handler and given back.
func BenchmarkDataFrames(b *testing.B) {
	w := newWire()
	c := warmConn(b, &answerer{}, w)
	w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: w.requestBlock(), EndHeaders: true})
	feed(c, w.buf.Bytes())
	w.buf.Reset()
	c.Wrote(len(c.Pending()))
	chunk := make([]byte, minMaxFrame)
	for range 4 {
		w.fr.WriteData(3, false, chunk)
	}
	frames := bytes.Clone(w.buf.Bytes())
	b.ReportAllocs()
	b.SetBytes(int64(len(frames)))
	for b.Loop() {
		feed(c, frames)
		c.Wrote(len(c.Pending()))
	}
}

// BenchmarkParseHeader is a frame header's parse alone.
func BenchmarkParseHeader(b *testing.B) {
	hdr := []byte{0, 0x40, 0, 0, 1, 0, 0, 0, 3}
	var sum uint32
	b.ReportAllocs()
	for b.Loop() {
		sum += ParseHeader(hdr).Length
	}
	if sum == 0 {
		b.Fatal("parsed nothing")
	}
}
