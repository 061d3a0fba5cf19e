package conformance_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/server"
	"github.com/latch-lb/latch/internal/sticky"
	"github.com/latch-lb/latch/internal/tlsconf/tlstest"
)

// ---------------------------------------------------------------------------
// latch with an HTTP/2 listener

// h2Mode is how a client reaches latch over HTTP/2: cleartext with prior
// knowledge (h2c), or TLS with ALPN h2.
type h2Mode struct {
	name string
	tls  bool
}

var h2Modes = []h2Mode{{name: "h2c"}, {name: "tls", tls: true}}

// h2ServerName is the name on the test certificate, which TLS clients ask
// for by SNI.
const h2ServerName = "latch.example.test"

// h2CookieKey seals latch's sticky cookies in these tests, so that a test
// can open them and compare sessions.
var h2CookieKey = sticky.Key{ID: 7, Secret: []byte("latch-conformance-http2-cookies!")}

// h2Options is what varies between the configurations of the tests.
type h2Options struct {
	targets       []string
	listenerAttrs map[string]string // on top of h2c (on HTTP) and the defaults
	groupAttrs    map[string]string // on top of lb_cookie stickiness
	rules         string            // the listener's rules, YAML indented for a listener's keys
}

// h2Latch is a running latch whose listener public speaks HTTP/2 in the
// test's mode, forwarding to the group web (lb_cookie stickiness, health
// checks off, no deregistration delay unless groupAttrs set one).
type h2Latch struct {
	mode     h2Mode
	b        *server.Server
	addr     string // host:port
	port     string
	ca       *tlstest.CA // TLS only
	certDir  string      // TLS only
	stateDir string
}

func startH2Latch(t *testing.T, mode h2Mode, o h2Options) *h2Latch {
	t.Helper()
	l := &h2Latch{mode: mode, stateDir: t.TempDir()}
	if mode.tls {
		l.ca = tlstest.NewCA(t)
		l.certDir = t.TempDir()
		l.ca.Issue(t, tlstest.Options{DNSNames: []string{h2ServerName}}).Write(t, l.certDir, "front")
	}
	l.b, _ = runLatch(t, l.config(t, o), 3*time.Second)
	l.addr = l.b.Addr("public")
	var err error
	if _, l.port, err = net.SplitHostPort(l.addr); err != nil {
		t.Fatalf("listener address %q: %v", l.addr, err)
	}
	return l
}

// config renders o as a configuration for this latch's mode.
func (l *h2Latch) config(t *testing.T, o h2Options) *config.Config {
	t.Helper()
	var y strings.Builder
	y.WriteString("listeners:\n  - name: public\n    address: 127.0.0.1:0\n")
	attrs := map[string]string{}
	if l.mode.tls {
		fmt.Fprintf(&y, "    protocol: HTTPS\n    certificates:\n      - cert_file: %s\n        key_file: %s\n",
			filepath.Join(l.certDir, "front.crt"), filepath.Join(l.certDir, "front.key"))
	} else {
		attrs["routing.http2.h2c.enabled"] = "true"
	}
	y.WriteString("    default_action: { type: forward, forward: { target_group: web } }\n")
	y.WriteString(o.rules)
	for k, v := range o.listenerAttrs {
		attrs[k] = v
	}
	writeAttrs(&y, "    ", attrs)
	y.WriteString("target_groups:\n  - name: web\n")
	if len(o.targets) == 0 {
		y.WriteString("    targets: []\n")
	} else {
		y.WriteString("    targets:\n")
		for _, id := range o.targets {
			fmt.Fprintf(&y, "      - id: %s\n", id)
		}
	}
	y.WriteString("    health_check: { enabled: \"false\" }\n")
	gattrs := map[string]string{
		"stickiness.enabled":                   "true",
		"stickiness.type":                      "lb_cookie",
		"deregistration_delay.timeout_seconds": "0",
	}
	for k, v := range o.groupAttrs {
		gattrs[k] = v
	}
	writeAttrs(&y, "    ", gattrs)
	fmt.Fprintf(&y, "state_dir: %s\ncookie_keys:\n  - id: %d\n    secret: %s\n",
		l.stateDir, h2CookieKey.ID, base64.StdEncoding.EncodeToString(h2CookieKey.Secret))
	cfg, err := config.Parse([]byte(y.String()), "")
	if err != nil {
		t.Fatalf("config:\n%s\n%v", y.String(), err)
	}
	return cfg
}

func writeAttrs(y *strings.Builder, indent string, attrs map[string]string) {
	if len(attrs) == 0 {
		return
	}
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	y.WriteString(indent + "attributes:\n")
	for _, k := range keys {
		fmt.Fprintf(y, "%s  %s: %q\n", indent, k, attrs[k])
	}
}

// reload applies a new configuration to the running latch, as SIGHUP does.
func (l *h2Latch) reload(t *testing.T, o h2Options) {
	t.Helper()
	if err := l.b.Apply(t.Context(), l.config(t, o)); err != nil {
		t.Fatalf("reload: %v", err)
	}
}

func (l *h2Latch) url(path string) string {
	if l.mode.tls {
		return "https://" + l.addr + path
	}
	return "http://" + l.addr + path
}

// scheme is what X-Forwarded-Proto should say.
func (l *h2Latch) scheme() string {
	if l.mode.tls {
		return "https"
	}
	return "http"
}

// ---------------------------------------------------------------------------
// net/http clients

// h2Client is a client of the test's own that opens at most one connection
// at a time and counts the connections it opened.
type h2Client struct {
	*http.Client
	dials atomic.Int64
}

// client returns a client that speaks only HTTP/2 (version 2) or only
// HTTP/1.1 (version 1) to l, in l's mode.
func (l *h2Latch) client(t *testing.T, version int) *h2Client {
	var p http.Protocols
	switch {
	case version == 1:
		p.SetHTTP1(true)
	case l.mode.tls:
		p.SetHTTP2(true)
	default:
		p.SetUnencryptedHTTP2(true)
	}
	return l.clientWith(t, &p)
}

func (l *h2Latch) clientWith(t *testing.T, p *http.Protocols) *h2Client {
	c := &h2Client{}
	d := &net.Dialer{Timeout: waitLimit}
	var mu sync.Mutex
	var conns []net.Conn
	tr := &http.Transport{
		Protocols:          p,
		DisableCompression: true,
		MaxConnsPerHost:    1,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c.dials.Add(1)
			nc, err := d.DialContext(ctx, network, addr)
			if err == nil {
				mu.Lock()
				conns = append(conns, nc)
				mu.Unlock()
			}
			return nc, err
		},
	}
	if l.mode.tls {
		tr.TLSClientConfig = &tls.Config{RootCAs: l.ca.Pool, ServerName: h2ServerName}
	}
	// The client goes away before latch shuts down (cleanups run last
	// first): otherwise latch's graceful shutdown of an HTTP/2 connection
	// the client keeps open waits net/http's second for the client to
	// leave after GOAWAY.
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		mu.Lock()
		defer mu.Unlock()
		for _, nc := range conns {
			nc.Close()
		}
	})
	c.Client = &http.Client{
		Transport:     tr,
		Timeout:       2 * waitLimit,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c
}

// fetched is a response read in full.
type fetched struct {
	*http.Response
	body []byte
}

// do sends req and reads the whole response, failing the test on an error.
func (c *h2Client) do(t *testing.T, req *http.Request) *fetched {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL, err)
	}
	return &fetched{Response: resp, body: body}
}

func (c *h2Client) get(t *testing.T, url string) *fetched {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c.do(t, req)
}

// wantH2 fails the test unless the response came over HTTP/2.
func wantH2(t *testing.T, r *fetched) {
	t.Helper()
	if r.ProtoMajor != 2 {
		t.Fatalf("response over %s, want HTTP/2", r.Proto)
	}
}

// wantOneConn fails the test unless the client opened exactly one
// connection: everything it sent shared one HTTP/2 connection.
func wantOneConn(t *testing.T, c *h2Client) {
	t.Helper()
	if n := c.dials.Load(); n != 1 {
		t.Errorf("the client opened %d connections, want 1 (every stream on one HTTP/2 connection)", n)
	}
}

// session opens the AWSALB cookie of a response.
func session(t *testing.T, resp *http.Response) sticky.Session {
	t.Helper()
	kr, err := sticky.NewKeyring([]sticky.Key{h2CookieKey})
	if err != nil {
		t.Fatal(err)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == "AWSALB" {
			s, err := kr.Decode(ck.Value)
			if err != nil {
				t.Fatalf("AWSALB %q does not open with the configured key: %v", ck.Value, err)
			}
			return s
		}
	}
	t.Fatalf("no AWSALB cookie; Set-Cookie: %q", resp.Header.Values("Set-Cookie"))
	panic("unreachable")
}

// within runs f and fails the test if it has not returned after waitLimit.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	await(t, done, what)
}

// bigBody is 8 MiB of pseudo-random bytes, the same every run.
var bigBody = sync.OnceValue(func() []byte {
	b := make([]byte, 8<<20)
	r := rand.New(rand.NewPCG(20, 26))
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b
})

// unknownLength hides a reader's length from net/http, so that the body
// goes without Content-Length.
type unknownLength struct{ r io.Reader }

func (u unknownLength) Read(p []byte) (int, error) { return u.r.Read(p) }

// ---------------------------------------------------------------------------
// Raw HTTP/2: frames written and read by hand, for what net/http's client
// does not show (GOAWAY, SETTINGS) or will not send (malformed requests).
// Only what the tests need: requests as one HEADERS frame of literal
// fields, responses read for their :status (when indexed), DATA and ends.

const (
	frameData         = 0x0
	frameHeaders      = 0x1
	frameRSTStream    = 0x3
	frameSettings     = 0x4
	framePing         = 0x6
	frameGoAway       = 0x7
	frameWindowUpdate = 0x8
	frameContinuation = 0x9

	flagEndStream  = 0x1
	flagAck        = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8
	flagPriority   = 0x20

	errCodeNo       = 0x0
	errCodeProtocol = 0x1
)

type h2Frame struct {
	typ, flags byte
	stream     uint32
	payload    []byte
}

func (f h2Frame) String() string {
	names := map[byte]string{frameData: "DATA", frameHeaders: "HEADERS", 0x2: "PRIORITY", frameRSTStream: "RST_STREAM",
		frameSettings: "SETTINGS", 0x5: "PUSH_PROMISE", framePing: "PING", frameGoAway: "GOAWAY",
		frameWindowUpdate: "WINDOW_UPDATE", frameContinuation: "CONTINUATION"}
	return fmt.Sprintf("%s flags=%#x stream=%d len=%d", names[f.typ], f.flags, f.stream, len(f.payload))
}

// block is a HEADERS frame's field block, without padding and priority.
func (f h2Frame) block() []byte {
	p := f.payload
	pad := 0
	if f.flags&flagPadded != 0 && len(p) > 0 {
		pad, p = int(p[0]), p[1:]
	}
	if f.flags&flagPriority != 0 && len(p) >= 5 {
		p = p[5:]
	}
	if pad <= len(p) {
		p = p[:len(p)-pad]
	}
	return p
}

// status reads :status from a response HEADERS frame when the server sent
// it as an index into HPACK's static table (Go's encoder does, for the
// codes the table holds), or as the literal Go's encoder sends first for
// any other three-digit code whose Huffman coding is no shorter; 0
// otherwise.
func (f h2Frame) status() int {
	b := f.block()
	for len(b) > 0 && b[0] == 0x20 {
		// A dynamic table size update to 0, which an encoder without a
		// dynamic table (latch's) sends first.
		b = b[1:]
	}
	if len(b) == 0 {
		return 0
	}
	if (0x48 <= b[0] && b[0] <= 0x4e || 0x08 <= b[0] && b[0] <= 0x0e) && len(b) >= 5 && b[1] == 3 {
		// A literal with an indexed name, :status (static indexes 8 to
		// 14), and a three-digit value without Huffman coding: how Go's
		// encoder first sends a status the static table lacks (431,
		// 463...), with indexing, or without (an encoder without a
		// dynamic table).
		n := 0
		for _, c := range b[2:5] {
			if c < '0' || c > '9' {
				return 0
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	switch b[0] {
	case 0x88:
		return 200
	case 0x89:
		return 204
	case 0x8a:
		return 206
	case 0x8b:
		return 304
	case 0x8c:
		return 400
	case 0x8d:
		return 404
	case 0x8e:
		return 500
	}
	return 0
}

// errCode is a RST_STREAM's or GOAWAY's error code.
func (f h2Frame) errCode() uint32 {
	switch {
	case f.typ == frameRSTStream && len(f.payload) >= 4:
		return binary.BigEndian.Uint32(f.payload)
	case f.typ == frameGoAway && len(f.payload) >= 8:
		return binary.BigEndian.Uint32(f.payload[4:])
	}
	return 0xffffffff
}

// settings returns a SETTINGS frame's parameters.
func (f h2Frame) settings() map[uint16]uint32 {
	m := map[uint16]uint32{}
	for p := f.payload; len(p) >= 6; p = p[6:] {
		m[binary.BigEndian.Uint16(p)] = binary.BigEndian.Uint32(p[2:])
	}
	return m
}

// rawH2 is an HTTP/2 client connection driven frame by frame.
type rawH2 struct {
	t        *testing.T
	c        net.Conn
	frames   chan h2Frame // closed when reading fails
	readErr  error        // why, once frames is closed
	settings map[uint16]uint32
}

// dialRawH2 connects to l (TLS with ALPN h2 in the tls mode), sends the
// client preface with empty SETTINGS and reads the server's SETTINGS.
func dialRawH2(t *testing.T, l *h2Latch) *rawH2 {
	t.Helper()
	c, err := net.DialTimeout("tcp", l.addr, waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(2 * waitLimit))
	if l.mode.tls {
		tc := tls.Client(c, &tls.Config{RootCAs: l.ca.Pool, ServerName: h2ServerName, NextProtos: []string{"h2"}})
		if err := tc.Handshake(); err != nil {
			t.Fatalf("TLS handshake: %v", err)
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
			t.Fatalf("ALPN: latch chose %q, want h2", p)
		}
		c = tc
	}
	h := &rawH2{t: t, c: c, frames: make(chan h2Frame, 256)}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		defer close(h.frames)
		for {
			f, err := readH2Frame(c)
			if err != nil {
				h.readErr = err
				return
			}
			select {
			case h.frames <- f:
			case <-stop:
				return
			}
		}
	}()
	h.write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	h.writeFrame(frameSettings, 0, 0, nil)
	for {
		f := h.next("the server's SETTINGS")
		if f.typ == frameSettings && f.flags&flagAck == 0 {
			h.settings = f.settings()
			h.writeFrame(frameSettings, flagAck, 0, nil)
			return h
		}
	}
}

func readH2Frame(r io.Reader) (h2Frame, error) {
	var hdr [9]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return h2Frame{}, err
	}
	n := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
	f := h2Frame{typ: hdr[3], flags: hdr[4], stream: binary.BigEndian.Uint32(hdr[5:]) & (1<<31 - 1), payload: make([]byte, n)}
	_, err := io.ReadFull(r, f.payload)
	return f, err
}

func (h *rawH2) write(b []byte) {
	h.t.Helper()
	if _, err := h.c.Write(b); err != nil {
		h.t.Fatalf("writing to latch: %v", err)
	}
}

func (h *rawH2) writeFrame(typ, flags byte, stream uint32, payload []byte) {
	h.t.Helper()
	b := []byte{byte(len(payload) >> 16), byte(len(payload) >> 8), byte(len(payload)), typ, flags, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[5:], stream)
	h.write(append(b, payload...))
}

// request opens a stream with the fields given as name, value pairs (the
// pseudo-fields first), each as an HPACK literal without indexing.
func (h *rawH2) request(stream uint32, endStream bool, fields ...string) {
	h.t.Helper()
	var block []byte
	for i := 0; i+1 < len(fields); i += 2 {
		block = append(block, 0x00)
		block = hpackString(block, fields[i])
		block = hpackString(block, fields[i+1])
	}
	// In frames of the largest size latch takes (SETTINGS_MAX_FRAME_SIZE,
	// 16 KiB unless it said more): HEADERS, then CONTINUATION.
	most := 16 << 10
	if v := h.settings[0x5]; v > 0 {
		most = int(v)
	}
	typ, flags := byte(frameHeaders), byte(0)
	if endStream {
		flags = flagEndStream
	}
	for {
		k := min(len(block), most)
		if k == len(block) {
			flags |= flagEndHeaders
		}
		h.writeFrame(typ, flags, stream, block[:k])
		block = block[k:]
		if len(block) == 0 {
			return
		}
		typ, flags = frameContinuation, 0
	}
}

func hpackString(dst []byte, s string) []byte {
	// The length is an HPACK integer with a 7-bit prefix (RFC 7541 §5.1);
	// the high bit clear says no Huffman coding.
	n := len(s)
	if n < 127 {
		dst = append(dst, byte(n))
	} else {
		dst = append(dst, 127)
		for n -= 127; n >= 128; n >>= 7 {
			dst = append(dst, byte(n&0x7f)|0x80)
		}
		dst = append(dst, byte(n))
	}
	return append(dst, s...)
}

// next returns the next frame, answering PINGs on the way, and fails the
// test after waitLimit or if the connection ends.
func (h *rawH2) next(what string) h2Frame {
	h.t.Helper()
	for {
		select {
		case f, ok := <-h.frames:
			if !ok {
				h.t.Fatalf("waiting for %s: the connection ended: %v", what, h.readErr)
			}
			if f.typ == framePing && f.flags&flagAck == 0 {
				h.writeFrame(framePing, flagAck, 0, f.payload)
				continue
			}
			return f
		case <-time.After(waitLimit):
			h.t.Fatalf("timed out after %v waiting for %s", waitLimit, what)
		}
	}
}

// rawH2Response is what came back on one stream.
type rawH2Response struct {
	status int    // from the HEADERS frame; 0 if not read (see h2Frame.status)
	body   []byte // the DATA frames' payloads
	reset  uint32 // the RST_STREAM error code, if the stream was reset
	wasRst bool
}

// awaitStream reads frames until stream ends (END_STREAM or RST_STREAM)
// and returns what it carried, passing over the frames of other streams
// and of the connection.
func (h *rawH2) awaitStream(stream uint32, what string) rawH2Response {
	h.t.Helper()
	var r rawH2Response
	for {
		f := h.next(what)
		if f.stream != stream {
			continue
		}
		switch f.typ {
		case frameHeaders:
			if r.status == 0 {
				r.status = f.status()
			}
		case frameData:
			r.body = append(r.body, f.payload...)
			if len(f.payload) > 0 {
				// Give the flow-control credit back at once.
				var inc [4]byte
				binary.BigEndian.PutUint32(inc[:], uint32(len(f.payload)))
				h.writeFrame(frameWindowUpdate, 0, 0, inc[:])
				h.writeFrame(frameWindowUpdate, 0, stream, inc[:])
			}
		case frameRSTStream:
			r.reset, r.wasRst = f.errCode(), true
			return r
		}
		if f.flags&flagEndStream != 0 && (f.typ == frameHeaders || f.typ == frameData) {
			return r
		}
	}
}

// closedByPeer waits for latch to close the connection, passing over the
// frames before the end, and fails the test after waitLimit.
func (h *rawH2) closedByPeer(what string) {
	h.t.Helper()
	deadline := time.After(waitLimit)
	for {
		select {
		case _, ok := <-h.frames:
			if !ok {
				if h.readErr != nil && !errors.Is(h.readErr, io.EOF) && !errors.Is(h.readErr, net.ErrClosed) &&
					!strings.Contains(h.readErr.Error(), "reset by peer") {
					h.t.Errorf("%s: the connection ended with %v, want a clean close", what, h.readErr)
				}
				return
			}
		case <-deadline:
			h.t.Fatalf("timed out after %v waiting for %s", waitLimit, what)
		}
	}
}

// ---------------------------------------------------------------------------
// Targets

// namedTarget is a net/http target that says its name in X-Target and
// answers with f.
func namedTarget(t *testing.T, name string, f http.HandlerFunc) string {
	return startHTTPTarget(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Target", name)
		f(w, r)
	}))
}

// holdOrAbort waits for the request's context to end (the target's
// connection closed under it) and reports whether it did within waitLimit.
func holdOrAbort(r *http.Request) bool {
	select {
	case <-r.Context().Done():
		return true
	case <-time.After(waitLimit):
		return false
	}
}
