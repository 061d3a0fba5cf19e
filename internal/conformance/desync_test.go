package conformance_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/desync"
	"github.com/latch-lb/latch/internal/proxy/proxytest"
	"github.com/latch-lb/latch/internal/server"
)

// Desync mitigation on a raw socket: every request of ALB's own corpus and
// the classic smuggling attacks, sent byte for byte to latch in each mode,
// with a raw target that records every byte latch sends it.
//
// What a request should get is worked out in this file, independently of
// latch's code, from three rules:
//
//  1. ALB's classification, as the corpus states it (desync_corpus_test.go
//     loads it), for the request the bytes on the wire make (see wireFor).
//  2. ALB's table, mode x tier (albTable).
//  3. latch's documented deviation: a request latch cannot forward safely
//     is answered 400 (or 501) in every mode and never reaches the target
//     (forwardable).

// ---------------------------------------------------------------------------
// ALB's table

// albAction is what ALB does with a request.
type albAction uint8

const (
	actAllow      albAction = iota // forward; keep both connections
	actAllowClose                  // forward; then close the client and the target connection
	actBlock                       // answer 400, close the client connection, forward nothing
)

func (a albAction) String() string {
	return [...]string{"Allow", "AllowAndClose", "Block"}[a]
}

var desyncModes = []string{"monitor", "defensive", "strictest"}

// albTable is ALB's desync mitigation table, by mode and tier.
var albTable = map[string]map[string]albAction{
	"monitor":   {"Compliant": actAllow, "Acceptable": actAllow, "Ambiguous": actAllow, "Severe": actAllow},
	"defensive": {"Compliant": actAllow, "Acceptable": actAllow, "Ambiguous": actAllowClose, "Severe": actBlock},
	"strictest": {"Compliant": actAllow, "Acceptable": actBlock, "Ambiguous": actBlock, "Severe": actBlock},
}

// reasonNamed returns the desync.Reason whose String (ALB's reason code)
// is name: latch's counters are indexed by Reason.
func reasonNamed(t testing.TB, name string) desync.Reason {
	t.Helper()
	for r := desync.Reason(0); r < 32; r++ {
		if r.String() == name {
			return r
		}
	}
	t.Fatalf("no desync.Reason is called %q", name)
	return 0
}

// ---------------------------------------------------------------------------
// Requests and what latch must do with them

// desyncRequest is a request head as a recipient reads it off the wire:
// method, request target and version as on the request line, and every
// header field in order, name and value exactly as sent.
type desyncRequest struct {
	method, uri, version string
	headers              []corpusHeader
}

// fieldsNamed returns the values of the fields whose name is exactly name,
// ASCII case-insensitively, trimmed of OWS. A lookalike (" Content-Length",
// "Transfer_Encoding") is another field to an RFC 9112 recipient.
func (r desyncRequest) fieldsNamed(name string) []string {
	var out []string
	for _, h := range r.headers {
		if asciiEqualFold(h.Name, name) {
			out = append(out, strings.Trim(h.Value, " \t"))
		}
	}
	return out
}

// codings returns the transfer codings the Transfer-Encoding fields list,
// in order, lower-cased, without parameters.
func (r desyncRequest) codings() []string {
	var out []string
	for _, v := range r.fieldsNamed("Transfer-Encoding") {
		for _, item := range strings.Split(v, ",") {
			item, _, _ = strings.Cut(item, ";")
			if item = strings.Trim(item, " \t"); item != "" {
				out = append(out, asciiLower(item))
			}
		}
	}
	return out
}

// contentLength returns the length the Content-Length fields agree on:
// every value 1*DIGIT within 63 bits, all the same.
func (r desyncRequest) contentLength() (n int64, present, valid bool) {
	cls := r.fieldsNamed("Content-Length")
	if len(cls) == 0 {
		return 0, false, false
	}
	for i, v := range cls {
		if v == "" || strings.Trim(v, "0123456789") != "" {
			return 0, true, false
		}
		m, err := strconv.ParseInt(v, 10, 64)
		if err != nil || i > 0 && m != n {
			return 0, true, false
		}
		n = m
	}
	return n, true, true
}

// bodyFraming is how the request's own headers delimit its body, read as an
// RFC 9112 recipient reads them (§6.3): a Transfer-Encoding whose codings
// are all known and end in one chunked means a chunked body; otherwise any
// Transfer-Encoding leaves the length undetermined. Without one, valid and
// agreeing Content-Length fields give the length; invalid or conflicting
// ones leave it undetermined. Neither: no body.
type bodyFraming uint8

const (
	noBody bodyFraming = iota
	lengthBody
	chunkedBody
	undetermined
)

func (r desyncRequest) framing() (bodyFraming, int64) {
	if codings := r.codings(); len(r.fieldsNamed("Transfer-Encoding")) > 0 {
		chunks := 0
		for _, c := range codings {
			switch c {
			case "chunked":
				chunks++
			case "identity", "gzip", "deflate", "compress":
			default:
				return undetermined, 0
			}
		}
		if chunks == 1 && codings[len(codings)-1] == "chunked" {
			return chunkedBody, 0
		}
		return undetermined, 0
	}
	n, present, valid := r.contentLength()
	switch {
	case !present:
		return noBody, 0
	case !valid:
		return undetermined, 0
	}
	return lengthBody, n
}

// body is what the client sends after the head: what the headers claim, as
// framing reads them. A chunked body is the last chunk alone
// ("0\r\n\r\n"), a Content-Length one that many bytes. When the headers do
// not determine a length (an unknown or misplaced transfer coding, an
// invalid or conflicting Content-Length), the client sends no body at all.
func (r desyncRequest) body() string {
	switch f, n := r.framing(); f {
	case chunkedBody:
		return "0\r\n\r\n"
	case lengthBody:
		return strings.Repeat("x", int(n))
	}
	return ""
}

// forwardable is latch's documented deviation from ALB: a request that
// latch cannot forward safely is answered with status and never reaches
// the target, in every mode. It returns the first reason that applies, in
// this order:
//
//   - an HTTP version other than exactly HTTP/1.0 or HTTP/1.1: 400 (the
//     request cannot be forwarded as HTTP/1.1 with the same meaning);
//   - CR, LF or NUL inside the method, the request target, or a header
//     name or value: 400. An obs-folded header is one whose value holds
//     CRLF (or LF) and whitespace, so it falls here too. (The method is
//     not in the documented list, but latch's request-line check covers
//     it; no corpus method has these bytes.)
//   - framing latch cannot determine, field by field in order: a
//     Content-Length that is not 1*DIGIT, or one that conflicts with an
//     earlier one: 400; a transfer coding after chunked, or chunked twice:
//     400 (RFC 9112 §6.3: chunked must be the final coding, once); a coding
//     other than chunked and identity before that: 501 (ALB: "The supported
//     values for Transfer-Encoding are chunked and identity").
//   - a chunked HTTP/1.0 request: 400 (RFC 9112 §6.1: its framing is
//     faulty).
//   - an HTTP/1.1 request without exactly one Host: 400 (RFC 9112 §3.2;
//     wireFor adds a Host to every corpus request that has none, so that
//     this rule does not hide the others).
//
// Fields without a name (a line with no colon) are dropped when
// forwarding: they do not make a request unforwardable.
func forwardable(r desyncRequest) (ok bool, status int, why string) {
	if r.version != "HTTP/1.1" && r.version != "HTTP/1.0" {
		return false, 400, fmt.Sprintf("version %q is not HTTP/1.0 or HTTP/1.1", r.version)
	}
	if strings.ContainsAny(r.method, "\r\n\x00") || strings.ContainsAny(r.uri, "\r\n\x00") {
		return false, 400, "CR, LF or NUL in the request line"
	}
	if r.uri == "" {
		// "GET  HTTP/1.1": there is no request target to forward (RFC 9112
		// §3.2 has none empty), though ALB calls it compliant.
		return false, 400, "empty request target"
	}
	for _, h := range r.headers {
		if strings.ContainsAny(h.Name, "\r\n\x00") || strings.ContainsAny(h.Value, "\r\n\x00") {
			return false, 400, fmt.Sprintf("CR, LF or NUL (or an obs-fold) in header %q", h.Name)
		}
	}
	var cl int64
	clSeen, chunked := false, false
	for _, h := range r.headers {
		v := strings.Trim(h.Value, " \t")
		switch {
		case asciiEqualFold(h.Name, "Content-Length"):
			if v == "" || strings.Trim(v, "0123456789") != "" {
				return false, 400, fmt.Sprintf("invalid Content-Length %q", v)
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return false, 400, fmt.Sprintf("Content-Length %q overflows", v)
			}
			if clSeen && n != cl {
				return false, 400, "conflicting Content-Length fields"
			}
			cl, clSeen = n, true
		case asciiEqualFold(h.Name, "Transfer-Encoding"):
			for _, item := range strings.Split(v, ",") {
				item, _, _ = strings.Cut(item, ";")
				item = asciiLower(strings.Trim(item, " \t"))
				switch {
				case item == "":
				case chunked:
					return false, 400, fmt.Sprintf("Transfer-Encoding %q after chunked", item)
				case item == "chunked":
					chunked = true
				case item != "identity":
					return false, 501, fmt.Sprintf("unsupported transfer coding %q", item)
				}
			}
		}
	}
	if chunked && r.version == "HTTP/1.0" {
		return false, 400, "Transfer-Encoding in an HTTP/1.0 request"
	}
	if hosts := len(r.fieldsNamed("Host")); r.version == "HTTP/1.1" && hosts != 1 || hosts > 1 {
		return false, 400, fmt.Sprintf("%d Host fields", hosts)
	}
	return true, 0, ""
}

// keepAlive reports whether the client lets the connection stay open after
// the exchange (RFC 9112 §9.3).
func (r desyncRequest) keepAlive() bool {
	var closeTok, keepTok bool
	for _, v := range r.fieldsNamed("Connection") {
		for _, tok := range strings.Split(v, ",") {
			switch asciiLower(strings.Trim(tok, " \t")) {
			case "close":
				closeTok = true
			case "keep-alive":
				keepTok = true
			}
		}
	}
	return !closeTok && (r.version == "HTTP/1.1" || keepTok)
}

// desyncExpect is what a request must get in one mode.
type desyncExpect struct {
	action       albAction
	status       int  // the status the client gets
	forwarded    bool // the target receives the request
	bodyLen      int  // the body the target receives
	clientClosed bool // latch closes the client connection after the response
	// targetClosed: latch closes the target connection after the response
	// (AllowAndClose). That Allow keeps it pooled is checked by
	// TestDesyncConnectionAfterNonCompliant.
	targetClosed bool
	why          string
}

func expectFor(mode, tier string, r desyncRequest) desyncExpect {
	e := desyncExpect{action: albTable[mode][tier]}
	if e.action == actBlock {
		e.status, e.clientClosed, e.why = 400, true, "blocked by ALB's table"
		return e
	}
	if ok, status, why := forwardable(r); !ok {
		e.status, e.clientClosed, e.why = status, true, "not forwardable: "+why
		return e
	}
	f, n := r.framing()
	_, clPresent, _ := r.contentLength()
	e.status, e.forwarded, e.bodyLen = 200, true, int(n)
	e.targetClosed = e.action == actAllowClose
	// RFC 9112 §6.1: a server MUST close the connection after responding to
	// a request with both Transfer-Encoding and Content-Length.
	bothTECL := f == chunkedBody && clPresent
	e.clientClosed = e.action == actAllowClose || !r.keepAlive() || bothTECL
	e.why = "forwarded (" + e.action.String() + ")"
	return e
}

// ---------------------------------------------------------------------------
// The corpus on the wire

// wireOverrides are the corpus cases whose request cannot be put on the
// wire as the corpus states it: the bytes, however a recipient reads them,
// make a different request. For each, view is the request those bytes
// make, and tier and reason are what the corpus gives that request (by the
// rule of the corpus case named in why).
//
// Two cases are deliberately not here, because one reading of the bytes
// does give the corpus's request, and it is the reading the corpus
// implies for ALB as a whole:
//
//   - "[space] in URI resulted in a bad version" sends
//     "GET /endpoint_a HTTP/1.1 HTTP/1.1". Reading the version from the
//     first " HTTP/" after the method gives the corpus's URI "/endpoint_a"
//     and version "HTTP/1.1 HTTP/1.1" (BadVersion), and gives every other
//     corpus request line as stated too ("[space] in URI", "\t in URI",
//     "Extra spaces in version", "Empty URI"). latch splits at the last
//     space instead and sees SpaceInUri.
//   - "\n in URI" sends "GET /endpoint_a\nHTTP/1.1 HTTP/1.1". Ending lines
//     at CRLF only gives the corpus's URI with an LF in it (BadUri), and
//     gives every other corpus request as stated too. latch also ends a
//     line at a bare LF (RFC 9112 §2.2 allows it) and sees an HTTP/0.9
//     request line and a field line without a colon (EmptyHeader).
var wireOverrides = map[string]struct {
	view         desyncRequest
	tier, reason string
	why          string
}{
	// The second header line starts with a space: after another field line
	// that is an obs-fold (RFC 9112 §5.2) under any reading, so the first
	// field's value runs on over it.
	"ambiguous.yaml/[white-space]Transfer-Encoding and [white-space]Content-Length": {
		view: desyncRequest{method: "POST", uri: "/foo/bar", version: "HTTP/1.1", headers: []corpusHeader{
			{Name: " Transfer-Encoding", Value: "chunked\r\n Content-Length: 1000"},
			{Name: "Host", Value: "example.com"},
		}},
		tier: "Severe", reason: "BadHeader",
		why: `the second field line is an obs-fold of the first; a folded value holds CRLF: BadHeader, as in "Multiline headers are deprecated"`,
	},
	// The URI holds CRLF, which ends the request line under any reading:
	// the first request is "GET /endpoint_a\tHTTP/1.1" with one field,
	// an HTTP/0.9 request line whose target holds a tab.
	"uri-specific-test-cases.yaml/Request Smuggling in URI": {
		view: desyncRequest{method: "GET", uri: "/endpoint_a\tHTTP/1.1", version: "", headers: []corpusHeader{
			{Name: "Host", Value: "localhost"},
		}},
		tier: "Ambiguous", reason: "AmbiguousUri",
		why: `CRLF in the URI ends the request line; the request before it has a tab in its URI: AmbiguousUri, as in "\t in URI"`,
	},
}

// wireFor returns the bytes of a corpus case on the wire, the request
// those bytes make, and the classification the corpus gives it.
//
// The bytes are the request line (METHOD SP URI SP VERSION, or METHOD SP
// URI when the version is empty), each header as "name: value\r\n" exactly
// as given, "Host: example.com\r\n" after them when the case has no Host
// (an HTTP/1.1 request without one is a 400 under RFC 9112 §3.2 whatever
// else it holds; a compliant field added last changes no classification,
// and placed last it cannot turn a case's leading-whitespace first field
// into an obs-fold), the final CRLF, and the body its headers claim (see
// body: nothing when they claim no determinable length).
func wireFor(c corpusCase) (raw []byte, r desyncRequest, tier, reason, note string) {
	r = desyncRequest{method: c.Method, uri: c.URI, version: c.Version, headers: c.Headers}
	if len(r.fieldsNamed("Host")) == 0 {
		r.headers = append(append([]corpusHeader(nil), c.Headers...), corpusHeader{Name: "Host", Value: "example.com"})
	}
	var b strings.Builder
	b.WriteString(r.method + " " + r.uri)
	if r.version != "" {
		b.WriteString(" " + r.version)
	}
	b.WriteString("\r\n")
	for _, h := range r.headers {
		b.WriteString(h.Name + ": " + h.Value + "\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString(r.body())
	tier, reason = c.Tier, c.Reason
	if o, ok := wireOverrides[c.File+"/"+c.Name]; ok {
		r, tier, reason, note = o.view, o.tier, o.reason, o.why
	}
	return []byte(b.String()), r, tier, reason, note
}

// ---------------------------------------------------------------------------
// latch with a desync mitigation mode

type desyncLatch struct {
	b      *server.Server
	obs    *proxytest.Counter
	addr   string
	mode   string
	target *recTarget
}

// startDesyncLatch runs latch with one listener in mode, forwarding to a
// fresh recording target, and stops both when the test ends.
func startDesyncLatch(t *testing.T, mode string) *desyncLatch {
	t.Helper()
	rt := startRecTarget(t)
	y := fmt.Sprintf(`listeners:
  - name: public
    address: 127.0.0.1:0
    default_action: { type: forward, forward: { target_group: web } }
    attributes:
      routing.http.desync_mitigation_mode: %s
      idle_timeout.timeout_seconds: 5
target_groups:
  - name: web
    targets:
      - id: %s
    health_check: { enabled: "false" }
    attributes:
      deregistration_delay.timeout_seconds: "0"
state_dir: %s
`, mode, rt.addr, t.TempDir())
	cfg, err := config.Parse([]byte(y), "")
	if err != nil {
		t.Fatalf("config:\n%s\n%v", y, err)
	}
	b, obs := runLatch(t, cfg, 2*time.Second)
	return &desyncLatch{b: b, obs: obs, addr: b.Addr("public"), mode: mode, target: rt}
}

// shutdown stops latch before the test ends (runLatch stops it again,
// which does nothing).
func (d *desyncLatch) shutdown() { shutdownLatch(d.b, 2*time.Second) }

// counters returns the listener's classification counters.
func (d *desyncLatch) counters() (classified, blocked [32]uint64) {
	for i := range classified {
		classified[i] = d.obs.Classified[i].Load()
		blocked[i] = d.obs.Blocked[i].Load()
	}
	return
}

// checkCounters checks that exactly one request was classified since
// before, for reason, and that it was counted as blocked iff blocked.
func (d *desyncLatch) checkCounters(t *testing.T, beforeC, beforeB [32]uint64, reason desync.Reason, blocked bool) {
	t.Helper()
	c, b := d.counters()
	for r := range c {
		wantC, wantB := uint64(0), uint64(0)
		if desync.Reason(r) == reason {
			wantC = 1
			if blocked {
				wantB = 1
			}
		}
		if got := c[r] - beforeC[r]; got != wantC {
			t.Errorf("classification: Classified[%v] moved by %d, want %d (expected reason %v)", desync.Reason(r), got, wantC, reason)
		}
		if got := b[r] - beforeB[r]; got != wantB {
			t.Errorf("classification: Blocked[%v] moved by %d, want %d (expected reason %v)", desync.Reason(r), got, wantB, reason)
		}
	}
}

// ---------------------------------------------------------------------------
// Client side

// desyncClient is a raw client connection to latch, with ways to send
// that the desync tests need.
type desyncClient struct{ *rawClient }

func dialDesync(t *testing.T, addr string) *desyncClient {
	t.Helper()
	return &desyncClient{dialRaw(t, addr)}
}

// send writes raw in the background (a large body must not block the
// test if latch stops reading) and returns the write's error when done.
func (c *desyncClient) send(raw []byte) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := c.c.Write(raw)
		done <- err
	}()
	return done
}

// sendSlowly writes raw one byte per write, with a pause after each, as a
// slow client (or an attacker probing packet boundaries) would; TCP_NODELAY
// is on, so each byte leaves in a segment of its own. It stops at the first
// failed write (latch closed the connection) and then half-closes.
func (c *desyncClient) sendSlowly(raw []byte) <-chan error {
	done := make(chan error, 1)
	go func() {
		var err error
		for i := range raw {
			if _, err = c.c.Write(raw[i : i+1]); err != nil {
				break
			}
			time.Sleep(20 * time.Microsecond)
		}
		if err == nil {
			c.c.CloseWrite()
		}
		done <- err
	}()
	return done
}

// closedByLatch reads until latch closes the connection or limit passes.
// Bytes read on the way are returned: after a complete response there must
// be none.
func (c *desyncClient) closedByLatch(limit time.Duration) (closed bool, extra []byte) {
	c.c.SetReadDeadline(time.Now().Add(limit))
	defer c.c.SetReadDeadline(time.Now().Add(waitLimit))
	buf := make([]byte, 4096)
	for {
		n, err := c.br.Read(buf)
		extra = append(extra, buf[:n]...)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return false, extra
		}
		return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET), extra
	}
}

// ---------------------------------------------------------------------------
// The recording target

// fwdReq is one complete request a target received, as an RFC 9112
// recipient that is strict about framing reads it.
type fwdReq struct {
	conn    int    // the target connection, numbered from 1
	raw     []byte // every byte of it
	line    string // the request line
	method  string
	fields  []field
	framing string // "none", "length" or "chunked"
	body    []byte
}

// recConn is one connection latch opened to the target.
type recConn struct {
	id     int
	remote string // the peer's address: latch's, or a marker's
	raw    []byte // every byte received
	parsed int    // how much of raw complete requests took
	reqs   []fwdReq
	err    error // raw did not parse as requests; the target answered 400 and closed
	eof    bool  // latch closed the connection (or the target did, after err)
	marker bool
}

// recTarget is a raw TCP target that records every byte it receives per
// connection, parses it strictly (parseForwarded) and answers each complete
// request with 200 and X-Target-Conn naming the connection.
type recTarget struct {
	addr string
	mu   sync.Mutex
	// conns is in the order the connections' goroutines started, which
	// need not be the order of their ids (of their accepts).
	conns []*recConn
}

func startRecTarget(t *testing.T) *recTarget {
	t.Helper()
	rt := &recTarget{}
	rt.addr = startRawTarget(t, func(c *targetConn) {
		rc := &recConn{id: int(c.id), remote: c.RemoteAddr().String()}
		rt.mu.Lock()
		rt.conns = append(rt.conns, rc)
		rt.mu.Unlock()
		rt.serve(c.Conn, rc)
	}).addr
	return rt
}

func (rt *recTarget) serve(nc net.Conn, rc *recConn) {
	buf := make([]byte, 64<<10)
	for {
		n, rerr := nc.Read(buf)
		var out []string
		rt.mu.Lock()
		rc.raw = append(rc.raw, buf[:n]...)
		for rc.err == nil && rc.parsed < len(rc.raw) {
			req, used, err := parseForwarded(rc.raw[rc.parsed:])
			if err == errIncomplete {
				break
			}
			if err != nil {
				rc.err = err
				out = append(out, fmt.Sprintf("HTTP/1.1 400 Bad Request\r\nX-Target-Conn: %d\r\nX-Target-Error: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", rc.id))
				break
			}
			req.conn = rc.id
			req.raw = bytes.Clone(rc.raw[rc.parsed : rc.parsed+used])
			rc.parsed += used
			rc.reqs = append(rc.reqs, req)
			resp := fmt.Sprintf("HTTP/1.1 200 OK\r\nX-Target-Conn: %d\r\nX-Target-Request: %d\r\nContent-Length: 2\r\n\r\n", rc.id, len(rc.reqs))
			if req.method != "HEAD" {
				resp += "ok"
			}
			out = append(out, resp)
		}
		failed := rc.err != nil
		if rerr != nil {
			rc.eof = true
		}
		rt.mu.Unlock()
		for _, s := range out {
			io.WriteString(nc, s)
		}
		if failed {
			rt.mu.Lock()
			rc.eof = true
			rt.mu.Unlock()
			return
		}
		if rerr != nil {
			return
		}
	}
}

var errIncomplete = errors.New("incomplete request")

// parseForwarded reads one request off b as a recipient strict about
// framing does, and checks what latch promises about what it forwards:
// every line ends in CRLF and holds no other CR, LF or NUL; the request
// line is METHOD SP TARGET SP HTTP/1.1; no field line starts with
// whitespace (an obs-fold, or whitespace between the start line and the
// first field, which RFC 9112 §2.2 forbids a sender); every field line has
// a colon (latch drops lines without a name); and the body is framed by
// exactly one Content-Length or Transfer-Encoding: chunked field of
// latch's own, with no other field of either name. It returns
// errIncomplete while b holds no complete request.
func parseForwarded(b []byte) (fwdReq, int, error) {
	var req fwdReq
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if bare := bytes.ReplaceAll(b, []byte("\r\n"), nil); bytes.IndexByte(bare, '\n') >= 0 {
			return req, 0, fmt.Errorf("bare LF in the head: %q", abridge(string(b), 300))
		}
		if len(b) > 1<<20 {
			return req, 0, errors.New("no end of head in 1 MiB")
		}
		return req, 0, errIncomplete
	}
	lines := strings.Split(string(b[:end]), "\r\n")
	for _, l := range lines {
		if strings.ContainsAny(l, "\r\n\x00") {
			return req, 0, fmt.Errorf("bare CR, LF or NUL in forwarded line %q", l)
		}
	}
	req.line = lines[0]
	sp1, sp2 := strings.IndexByte(req.line, ' '), strings.LastIndexByte(req.line, ' ')
	if sp1 <= 0 || sp1 == sp2 || req.line[sp2+1:] != "HTTP/1.1" {
		return req, 0, fmt.Errorf("malformed forwarded request line %q", req.line)
	}
	req.method = req.line[:sp1]
	var cl, te []string
	for _, l := range lines[1:] {
		if l == "" || l[0] == ' ' || l[0] == '\t' {
			return req, 0, fmt.Errorf("forwarded field line %q starts with whitespace (an obs-fold, or whitespace before the first field: RFC 9112 §2.2, §5.2)", l)
		}
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			return req, 0, fmt.Errorf("forwarded field line %q has no colon", l)
		}
		value = strings.Trim(value, " \t")
		req.fields = append(req.fields, field{Name: name, Value: value})
		switch asciiLower(name) {
		case "content-length":
			cl = append(cl, value)
		case "transfer-encoding":
			te = append(te, value)
		}
	}
	rest := b[end+4:]
	switch {
	case len(cl)+len(te) > 1:
		return req, 0, fmt.Errorf("forwarded head has %d Content-Length and %d Transfer-Encoding fields", len(cl), len(te))
	case len(te) == 1:
		if te[0] != "chunked" {
			return req, 0, fmt.Errorf("forwarded Transfer-Encoding %q", te[0])
		}
		req.framing = "chunked"
		body, n, err := parseChunkedBody(rest)
		if err != nil {
			return req, 0, err
		}
		req.body = body
		return req, end + 4 + n, nil
	case len(cl) == 1:
		n, err := strconv.ParseInt(cl[0], 10, 64)
		if err != nil || n < 0 || strings.Trim(cl[0], "0123456789") != "" {
			return req, 0, fmt.Errorf("forwarded Content-Length %q", cl[0])
		}
		req.framing = "length"
		if int64(len(rest)) < n {
			return req, 0, errIncomplete
		}
		req.body = rest[:n]
		return req, end + 4 + int(n), nil
	}
	req.framing = "none"
	return req, end + 4, nil
}

// parseChunkedBody reads a chunked body strictly: hex sizes without
// extensions (latch writes its own chunks), CRLF everywhere, a trailer of
// name:value lines.
func parseChunkedBody(b []byte) (body []byte, n int, err error) {
	i := 0
	for {
		j := bytes.Index(b[i:], []byte("\r\n"))
		if j < 0 {
			return nil, 0, errIncomplete
		}
		size, err := strconv.ParseUint(string(b[i:i+j]), 16, 32)
		if err != nil {
			return nil, 0, fmt.Errorf("forwarded chunk size line %q", b[i:i+j])
		}
		i += j + 2
		if size == 0 {
			for {
				k := bytes.Index(b[i:], []byte("\r\n"))
				if k < 0 {
					return nil, 0, errIncomplete
				}
				line := b[i : i+k]
				i += k + 2
				if len(line) == 0 {
					return body, i, nil
				}
				if bytes.IndexByte(line, ':') <= 0 || bytes.ContainsAny(line, "\r\n\x00") {
					return nil, 0, fmt.Errorf("forwarded trailer line %q", line)
				}
			}
		}
		if len(b) < i+int(size)+2 {
			return nil, 0, errIncomplete
		}
		body = append(body, b[i:i+int(size)]...)
		i += int(size)
		if !bytes.HasPrefix(b[i:], []byte("\r\n")) {
			return nil, 0, fmt.Errorf("forwarded chunk not followed by CRLF")
		}
		i += 2
	}
}

// targetMark is the target's state at one moment, to tell what came after.
type targetMark struct{ bytes, reqs []int }

func (rt *recTarget) mark() targetMark {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var m targetMark
	for _, rc := range rt.conns {
		m.bytes = append(m.bytes, len(rc.raw))
		m.reqs = append(m.reqs, len(rc.reqs))
	}
	return m
}

// flushAccepts makes sure that every connection latch has opened so far has
// been accepted (accepts are in order: a marker connection of the test's
// own comes after them), then waits until every connection that received
// bytes since m has either been answered in full or been closed: then the
// target has seen everything latch sent it.
func (rt *recTarget) flushAccepts(t *testing.T, m targetMark) {
	t.Helper()
	mc, err := net.DialTimeout("tcp", rt.addr, waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	local := mc.LocalAddr().String()
	// Wait for the marker and every connection accepted before it: their
	// ids are below the marker's.
	if !waitUntil(waitLimit, func() bool {
		rt.mu.Lock()
		defer rt.mu.Unlock()
		var marker *recConn
		for _, rc := range rt.conns {
			if rc.remote == local {
				marker = rc
			}
		}
		if marker == nil {
			return false
		}
		marker.marker = true
		before := 0
		for _, rc := range rt.conns {
			if rc.id < marker.id {
				before++
			}
		}
		return before == marker.id-1
	}) {
		t.Fatal("the target never accepted the marker connection")
	}
	mc.Close()
	if !waitUntil(5*time.Second, func() bool {
		rt.mu.Lock()
		defer rt.mu.Unlock()
		for i, rc := range rt.conns {
			if rc.marker || i < len(m.bytes) && len(rc.raw) == m.bytes[i] {
				continue
			}
			if !rc.eof && rc.err == nil && rc.parsed < len(rc.raw) {
				return false
			}
		}
		return true
	}) {
		t.Errorf("the target holds a partial request that latch neither completed nor closed:\n%s", rt.dumpSince(m))
	}
}

// targetDelta is what the target received since a mark.
type targetDelta struct {
	reqs    []fwdReq
	partial []string // connections that got bytes that never made a complete request
	errs    []string // connections whose bytes did not parse
	touched []int    // connections that got any byte
}

func (rt *recTarget) since(m targetMark) targetDelta {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var d targetDelta
	for i, rc := range rt.conns {
		if rc.marker {
			continue
		}
		b0, r0 := 0, 0
		if i < len(m.bytes) {
			b0, r0 = m.bytes[i], m.reqs[i]
		}
		if len(rc.raw) == b0 {
			continue
		}
		d.touched = append(d.touched, rc.id)
		d.reqs = append(d.reqs, rc.reqs[r0:]...)
		if rc.err != nil {
			d.errs = append(d.errs, fmt.Sprintf("conn %d: %v", rc.id, rc.err))
		} else if rc.parsed < len(rc.raw) {
			d.partial = append(d.partial, fmt.Sprintf("conn %d: %q", rc.id, abridge(string(rc.raw[max(rc.parsed, b0):]), 400)))
		}
	}
	return d
}

func (rt *recTarget) dumpSince(m targetMark) string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var b strings.Builder
	for i, rc := range rt.conns {
		b0 := 0
		if i < len(m.bytes) {
			b0 = m.bytes[i]
		}
		if rc.marker || len(rc.raw) == b0 {
			continue
		}
		fmt.Fprintf(&b, "  conn %d (closed %v, err %v): %q\n", rc.id, rc.eof, rc.err, abridge(string(rc.raw[b0:]), 600))
	}
	return b.String()
}

func (rt *recTarget) closed(id int) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, rc := range rt.conns {
		if rc.id == id {
			return rc.eof
		}
	}
	return false
}

// allRequests returns every complete request the target received.
func (rt *recTarget) allRequests() []fwdReq {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var out []fwdReq
	for _, rc := range rt.conns {
		out = append(out, rc.reqs...)
	}
	return out
}

// waitUntil polls cond until it holds or limit passes.
func waitUntil(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
}

// netHTTPCheck parses a forwarded request with net/http, as a Go target
// would, and returns what went wrong, if anything.
func netHTTPCheck(req fwdReq, bodyLen int) error {
	hr, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(req.raw)))
	if err != nil {
		return fmt.Errorf("net/http refuses it: %v", err)
	}
	body, err := io.ReadAll(hr.Body)
	if err != nil {
		return fmt.Errorf("net/http cannot read its body: %v", err)
	}
	if len(body) != bodyLen {
		return fmt.Errorf("net/http reads a body of %d bytes, want %d", len(body), bodyLen)
	}
	return nil
}

// framingLookalikes returns the forwarded field lines that a target which
// trims whitespace around field names would take for Transfer-Encoding or
// Content-Length although a strict one does not: what a lenient back end
// could frame differently from latch.
func framingLookalikes(fs []field) []string {
	var out []string
	for _, f := range fs {
		n := asciiLower(strings.Trim(f.Name, " \t\v\f"))
		if (n == "transfer-encoding" || n == "content-length") && !asciiEqualFold(f.Name, n) {
			out = append(out, fmt.Sprintf("%q: %q", f.Name, f.Value))
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// 1. The corpus

// TestDesyncCorpusOnRawSocket sends every request of ALB's desync corpus to
// latch on a raw socket, in each mode, and checks what the client got, what
// the target received, latch's classification counters, and which
// connections latch closed.
func TestDesyncCorpusOnRawSocket(t *testing.T) {
	t.Parallel()
	cases := loadCorpusFiles(t)
	for _, mode := range desyncModes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			d := startDesyncLatch(t, mode)
			for _, c := range cases {
				t.Run(c.File+"/"+c.Name, func(t *testing.T) {
					runCorpusCase(t, d, c)
				})
			}
		})
	}
}

func runCorpusCase(t *testing.T, d *desyncLatch, c corpusCase) {
	raw, r, tier, reasonName, note := wireFor(c)
	reason := reasonNamed(t, reasonName)
	want := expectFor(d.mode, tier, r)
	if note != "" {
		t.Logf("sent as %q: %s", abridge(string(raw), 200), note)
	}
	explain := func() string {
		return fmt.Sprintf("\n  sent: %q\n  corpus: %s/%s; mode %s: %s, want status %d, forwarded %v, client closed %v",
			abridge(string(raw), 300), tier, reasonName, d.mode, want.why, want.status, want.forwarded, want.clientClosed)
	}

	beforeC, beforeB := d.counters()
	m := d.target.mark()
	cl := dialDesync(t, d.addr)
	wrote := cl.send(raw)
	resp, err := readResponse(cl.br, r.method)
	if err != nil {
		d.target.flushAccepts(t, m)
		t.Fatalf("no response: %v%s\n  the target received:\n%s", err, explain(), d.target.dumpSince(m))
	}
	if werr := await(t, wrote, "the request to be written"); werr != nil && want.forwarded {
		t.Errorf("writing the request: %v", werr)
	}

	// What the target received.
	d.target.flushAccepts(t, m)
	delta := d.target.since(m)
	for _, e := range delta.errs {
		t.Errorf("the target could not parse what latch forwarded: %s%s", e, explain())
	}
	switch {
	case !want.forwarded:
		if len(delta.touched) > 0 {
			t.Errorf("the target received bytes, want none:\n%s%s", d.target.dumpSince(m), explain())
		}
	case len(delta.reqs) != 1 || len(delta.partial) > 0:
		t.Errorf("the target received %d complete requests (partial: %q), want exactly 1:\n%s%s",
			len(delta.reqs), delta.partial, d.target.dumpSince(m), explain())
	default:
		fr := delta.reqs[0]
		if wantLine := r.method + " " + r.uri + " HTTP/1.1"; fr.line != wantLine {
			t.Errorf("the target received request line %q, want %q", fr.line, wantLine)
		}
		if len(fr.body) != want.bodyLen {
			t.Errorf("the target received a body of %d bytes (%s), want %d", len(fr.body), fr.framing, want.bodyLen)
		}
		if err := netHTTPCheck(fr, want.bodyLen); err != nil {
			if tier == "Compliant" {
				t.Errorf("a Compliant request reached the target malformed: %v\n  forwarded: %q", err, abridge(string(fr.raw), 400))
			} else {
				t.Logf("note: %v (forwarded: %q)", err, abridge(string(fr.head()), 300))
			}
		}
		if la := framingLookalikes(fr.fields); len(la) > 0 {
			t.Logf("note: forwarded framing lookalikes %s beside latch's framing %q", la, fr.framing)
		}
		if want.targetClosed && !waitUntil(5*time.Second, func() bool { return d.target.closed(fr.conn) }) {
			t.Errorf("AllowAndClose: latch did not close the target connection after the response%s", explain())
		}
	}

	// What the client got.
	if resp.status() != want.status {
		t.Errorf("status %d, want %d%s\n  response:\n%s", resp.status(), want.status, explain(), resp)
	}
	if got := resp.has("X-Target-Conn"); got != want.forwarded {
		t.Errorf("the response came from the target: %v, want %v", got, want.forwarded)
	}
	d.checkCounters(t, beforeC, beforeB, reason, want.action == actBlock)

	if want.clientClosed {
		if !hasToken(resp.Header, "Connection", "close") {
			t.Errorf("the response has no Connection: close, want the connection closed")
		}
		closed, extra := cl.closedByLatch(2 * time.Second)
		if len(extra) > 0 {
			t.Errorf("bytes after the response to %s: %q", r.method, abridge(string(extra), 200))
		}
		if !closed {
			t.Errorf("latch did not close the client connection after the response%s", explain())
		}
		return
	}
	// A connection kept open must still be in step: a compliant request
	// on it gets the target's answer. (Which pooled target connection
	// carries it is not fixed here: a connection that another client's
	// exchange is still putting back may be missing from the pool, so
	// TestDesyncConnectionAfterNonCompliant checks Allow's kept target
	// connection on a latch of its own.)
	if hasToken(resp.Header, "Connection", "close") {
		t.Errorf("the response has Connection: close, want the connection kept%s", explain())
	}
	m2 := d.target.mark()
	cl.send([]byte("GET /desync-probe HTTP/1.1\r\nHost: example.com\r\n\r\n"))
	probe, err := readResponse(cl.br, "GET")
	if err != nil {
		t.Fatalf("the connection was not kept: the next request got %v%s", err, explain())
	}
	if probe.status() != 200 || !probe.has("X-Target-Conn") {
		t.Fatalf("the next request on the connection got\n%s", probe)
	}
	if got := d.target.since(m2).reqs; len(got) != 1 || got[0].line != "GET /desync-probe HTTP/1.1" {
		t.Errorf("the next request reached the target as %+v", got)
	}
}

// head returns the request's head, for notes.
func (r fwdReq) head() []byte {
	if i := bytes.Index(r.raw, []byte("\r\n\r\n")); i >= 0 {
		return r.raw[:i+4]
	}
	return r.raw
}

// ---------------------------------------------------------------------------
// 2. Smuggling

// smuggling is one attack: bytes written as one request (by latch's
// framing or the attacker's), with a request hidden in them.
type smuggling struct {
	name string
	raw  string
	slow bool // written one byte at a time
	// reason is ALB's classification of the (first) request.
	reason string
	// status is the status of the first response, per mode (monitor,
	// defensive, strictest), from ALB's table and latch's rule.
	status [3]int
	// smuggled is the request line hidden in raw: in defensive and
	// strictest the target must never receive it as a request.
	smuggled string
}

// The hidden request, and the prefix of the classic CL.TE poisoning.
const (
	adminReq = "GET /admin HTTP/1.1\r\nHost: example.com\r\n\r\n"
	adminRL  = "GET /admin HTTP/1.1"
)

func smugglingAttacks() []smuggling {
	post := "POST /search HTTP/1.1\r\nHost: example.com\r\n"
	// clte: a Content-Length covering "0\r\n\r\n" and the hidden request,
	// and a Transfer-Encoding field te (however obfuscated): a front end
	// reading the length forwards both, a back end honouring te sees the
	// chunked body end at the 0 and the hidden request after it.
	clte := func(te string) string {
		body := "0\r\n\r\n" + adminReq
		return post + fmt.Sprintf("Content-Length: %d\r\n", len(body)) + te + "\r\n\r\n" + body
	}
	// tecl: Transfer-Encoding: chunked and a Content-Length covering only
	// the chunk-size line: a back end reading the length sees the chunk's
	// data, a hidden request, as the next request.
	hidden := "GPOST /admin HTTP/1.1\r\nHost: example.com\r\nContent-Length: 15\r\n\r\nx=1"
	sizeLine := fmt.Sprintf("%x\r\n", len(hidden))
	tecl := post + fmt.Sprintf("Content-Length: %d\r\n", len(sizeLine)) + "Transfer-Encoding: chunked\r\n\r\n" +
		sizeLine + hidden + "\r\n0\r\n\r\n"
	chunked := func(body string) string { return post + "Transfer-Encoding: chunked\r\n\r\n" + body + adminReq }
	// Statuses by mode: monitor, defensive, strictest.
	ambiguous := [3]int{200, 200, 400} // Allow; AllowAndClose; Block
	severe := func(monitor int) [3]int { return [3]int{monitor, 400, 400} }
	badBody := [3]int{400, 400, 400} // a compliant head, then a body latch cannot frame
	return []smuggling{
		{name: "CL.TE G prefix", raw: post + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
			reason: "BothTeClPresent", status: ambiguous, smuggled: "G"},
		{name: "CL.TE", raw: clte("Transfer-Encoding: chunked"), slow: true,
			reason: "BothTeClPresent", status: ambiguous, smuggled: adminRL},
		{name: "TE.CL", raw: tecl, slow: true,
			reason: "BothTeClPresent", status: ambiguous, smuggled: "GPOST /admin HTTP/1.1"},
		// TE.TE: obfuscated Transfer-Encoding fields.
		{name: "TE.TE xchunked", raw: clte("Transfer-Encoding: xchunked"),
			reason: "BadTransferEncoding", status: severe(501), smuggled: adminRL},
		{name: "TE.TE tab before chunked", raw: clte("Transfer-Encoding:\tchunked"),
			reason: "BothTeClPresent", status: ambiguous, smuggled: adminRL},
		{name: "TE.TE space before chunked", raw: clte("Transfer-Encoding:  chunked"),
			reason: "BothTeClPresent", status: ambiguous, smuggled: adminRL},
		{name: "TE.TE chunked VT", raw: clte("Transfer-Encoding: chunked\x0b"),
			reason: "BadTransferEncoding", status: severe(501), smuggled: adminRL},
		{name: "TE.TE space before colon", raw: clte("Transfer-Encoding : chunked"), slow: true,
			reason: "SuspiciousHeader", status: ambiguous, smuggled: adminRL},
		{name: "TE.TE two fields", raw: clte("Transfer-Encoding: chunked\r\nTransfer-Encoding: x"),
			reason: "BadTransferEncoding", status: severe(400), smuggled: adminRL},
		// A field line starting with a space, after another: an obs-fold.
		{name: "TE.TE folded field", raw: clte(" Transfer-Encoding: chunked"),
			reason: "BadHeader", status: severe(400), smuggled: adminRL},
		// A bare LF inside a field line. ALB (whose corpus has "\n in URI"
		// as BadUri and "Http Engine missed LF" as BadHeader) reads a bare
		// LF as a byte inside the line: X's value holds an LF, BadHeader.
		// And an LF in a value is not forwardable: 400 in every mode.
		{name: "TE.TE bare LF before the field", raw: clte("X: X\nTransfer-Encoding: chunked"),
			reason: "BadHeader", status: [3]int{400, 400, 400}, smuggled: adminRL},
		// Content-Length.
		{name: "duplicate Content-Length", raw: post + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello" + adminReq,
			reason: "DuplicateContentLength", status: ambiguous, smuggled: adminRL},
		{name: "conflicting Content-Length", raw: post + fmt.Sprintf("Content-Length: 5\r\nContent-Length: %d\r\n\r\nhello", 5+len(adminReq)) + adminReq, slow: true,
			reason: "MultipleContentLength", status: severe(400), smuggled: adminRL},
		{name: "Content-Length list", raw: post + "Content-Length: 5, 5\r\n\r\nhello" + adminReq,
			reason: "BadContentLength", status: severe(400), smuggled: adminRL},
		// obs-fold of Transfer-Encoding itself.
		{name: "obs-fold of Transfer-Encoding", raw: clte("Transfer-Encoding:\r\n chunked"),
			reason: "BadHeader", status: severe(400), smuggled: adminRL},
		// Bad chunk framing behind a compliant head: every mode allows the
		// head, and the body is a 400.
		{name: "chunk size +5", raw: chunked("+5\r\nhello\r\n0\r\n\r\n"), reason: "Compliant", status: badBody, smuggled: adminRL},
		{name: "chunk size 0x5", raw: chunked("0x5\r\nhello\r\n0\r\n\r\n"), slow: true, reason: "Compliant", status: badBody, smuggled: adminRL},
		// RFC 9112 §7.1.1: chunk-ext = *( BWS ";" BWS chunk-ext-name ... ),
		// and chunk-ext-name is a token: a ";" with no name is malformed.
		{name: "chunk size 5 SP ;", raw: chunked("5 ;\r\nhello\r\n0\r\n\r\n"), reason: "Compliant", status: badBody, smuggled: adminRL},
		{name: "chunk size huge hex", raw: chunked("fffffffffffffffff5\r\nhello\r\n0\r\n\r\n"), reason: "Compliant", status: badBody, smuggled: adminRL},
		{name: "chunk size negative", raw: chunked("-5\r\nhello\r\n0\r\n\r\n"), reason: "Compliant", status: badBody, smuggled: adminRL},
		{name: "chunk without its CRLF", raw: chunked("5\r\nhello0\r\n\r\n"), slow: true, reason: "Compliant", status: badBody, smuggled: adminRL},
		{name: "chunk longer than its size", raw: chunked("3\r\nhello\r\n0\r\n\r\n"), reason: "Compliant", status: badBody, smuggled: adminRL},
		{name: "bare LF after chunk size", raw: chunked("5\nhello\r\n0\r\n\r\n"), slow: true, reason: "Compliant", status: badBody, smuggled: adminRL},
		{name: "bare LF after last chunk", raw: chunked("5\r\nhello\r\n0\n\n"), reason: "Compliant", status: badBody, smuggled: adminRL},
		// A request hidden in the body of a GET: a back end that ignores a
		// GET's Content-Length reads it as the next request.
		{name: "GET with a body", raw: fmt.Sprintf("GET / HTTP/1.1\r\nHost: example.com\r\nContent-Length: %d\r\n\r\n", len(adminReq)) + adminReq, slow: true,
			reason: "UndefinedContentLengthSemantics", status: ambiguous, smuggled: adminRL},
		// A whitespace-led first field behind an absolute-form target: latch
		// writes its own Host first, so the line must not follow it as is
		// (it would be an obs-fold at the target).
		{name: "leading-space Transfer-Encoding behind an absolute-form target",
			raw: func() string {
				body := "0\r\n\r\n" + adminReq
				return "POST http://example.com/search HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: example.com\r\n" +
					fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)) + body
			}(),
			reason: "SuspiciousHeader", status: ambiguous, smuggled: adminRL},
	}
}

// TestSmugglingNeverReachesTarget sends the classic request smuggling
// attacks to latch, some one byte per write, in each mode. In defensive and
// strictest the hidden request never reaches the target and the client gets
// the documented status; in every mode the target receives exactly the
// requests latch answered with the target's responses (latch re-frames what
// it forwards, so the target never reads two requests where latch sent one),
// and a victim's request afterwards is answered cleanly.
func TestSmugglingNeverReachesTarget(t *testing.T) {
	t.Parallel()
	for _, a := range smugglingAttacks() {
		for mi, mode := range desyncModes {
			t.Run(mode+"/"+a.name, func(t *testing.T) {
				t.Parallel()
				runSmuggling(t, mode, a, a.status[mi])
			})
		}
	}
}

func runSmuggling(t *testing.T, mode string, a smuggling, wantStatus int) {
	d := startDesyncLatch(t, mode)
	reason := reasonNamed(t, a.reason)
	strict := mode != "monitor"
	beforeC, _ := d.counters()

	cl := dialDesync(t, d.addr)
	var wrote <-chan error
	if a.slow {
		wrote = cl.sendSlowly([]byte(a.raw))
	} else {
		wrote = cl.send([]byte(a.raw))
		go func() { <-wrote; cl.c.CloseWrite() }()
	}
	// Every response until latch closes the connection (the client
	// half-closes once all is written, so latch sees the end).
	var resps []*message
	for {
		m, err := readResponse(cl.br, "POST")
		if err != nil {
			if len(resps) == 0 {
				t.Fatalf("no response: %v\n  sent %q", err, abridge(a.raw, 300))
			}
			break
		}
		resps = append(resps, m)
	}
	if a.slow {
		<-wrote
	}
	if got := resps[0].status(); got != wantStatus {
		t.Errorf("status %d, want %d (%s, %s)\n%s", got, wantStatus, mode, a.reason, resps[0])
	}
	// Responses the target gave to complete requests (not its 400 to a
	// head it could not parse).
	fromTarget := 0
	for _, r := range resps {
		if r.has("X-Target-Request") {
			fromTarget++
		}
	}
	if strict && len(resps) != 1 {
		t.Errorf("%d responses, want 1: latch must close the connection after it", len(resps))
	}
	c, _ := d.counters()
	if got := c[reason] - beforeC[reason]; got < 1 {
		var moved []string
		for r := range c {
			if c[r] != beforeC[r] {
				moved = append(moved, fmt.Sprintf("%v+%d", desync.Reason(r), c[r]-beforeC[r]))
			}
		}
		t.Errorf("classification: Classified[%v] did not move; moved: %v", reason, moved)
	}
	if total := sumDelta(c, beforeC); strict && total != 1 {
		t.Errorf("latch classified %d requests on the connection, want 1", total)
	}

	// A victim's request on a connection of its own: a target connection
	// poisoned by the attack would answer it wrongly.
	victim := dialDesync(t, d.addr)
	victim.send([]byte("GET /victim HTTP/1.1\r\nHost: example.com\r\n\r\n"))
	vr, err := readResponse(victim.br, "GET")
	if err != nil || vr.status() != 200 || !vr.has("X-Target-Conn") {
		t.Errorf("the victim's request got %v %v", vr, err)
	}

	// A target connection left with part of a request (latch streams a
	// head before it reads the body, so a bad body can leave one) must
	// have been closed by latch already: flushAccepts fails otherwise.
	d.target.flushAccepts(t, targetMark{})
	// Everything the target received, once latch has closed every target
	// connection.
	d.shutdown()
	d.target.flushAccepts(t, targetMark{})
	if !waitUntil(5*time.Second, func() bool {
		d.target.mu.Lock()
		defer d.target.mu.Unlock()
		for _, rc := range d.target.conns {
			if !rc.eof {
				return false
			}
		}
		return true
	}) {
		t.Errorf("latch left target connections open after shutting down")
	}
	delta := d.target.since(targetMark{})
	for _, e := range delta.errs {
		t.Errorf("the target could not parse what latch forwarded: %s", e)
	}
	reqs := d.target.allRequests()
	var lines []string
	for _, r := range reqs {
		lines = append(lines, r.line)
		if la := framingLookalikes(r.fields); len(la) > 0 {
			t.Logf("note: %q was forwarded with framing lookalikes %s beside latch's own framing (%s): "+
				"a target that trims field names reads it differently", r.line, la, r.framing)
		}
	}
	t.Logf("the target received: %q", lines)
	for _, l := range lines {
		if strings.HasPrefix(l, a.smuggled) && l != "GET /victim HTTP/1.1" && strict {
			t.Errorf("the hidden request reached the target: %q\n%s", l, d.target.dumpSince(targetMark{}))
		}
		if strings.HasPrefix(l, "G") && strings.Contains(l, "victim") && l != "GET /victim HTTP/1.1" {
			t.Errorf("the victim's request reached the target poisoned: %q", l)
		}
	}
	if victimSeen := countLines(lines, "GET /victim HTTP/1.1"); victimSeen != 1 {
		t.Errorf("the target received the victim's request %d times, want once", victimSeen)
	}
	// The target's requests are those latch answered with its responses:
	// the attacker's (fromTarget) and the victim's.
	if len(reqs) != fromTarget+1 {
		t.Errorf("the target received %d requests, the clients %d responses from it: latch and the target framed the bytes differently\n%s",
			len(reqs), fromTarget+1, d.target.dumpSince(targetMark{}))
	}
	if wantStatus != 200 {
		for _, r := range reqs {
			if r.line != "GET /victim HTTP/1.1" && strict {
				t.Errorf("a refused request reached the target: %q", r.line)
			}
		}
	}
	if len(delta.partial) > 0 {
		t.Logf("partial requests at the target, closed by latch: %q", delta.partial)
	}
}

func sumDelta(after, before [32]uint64) uint64 {
	var n uint64
	for i := range after {
		n += after[i] - before[i]
	}
	return n
}

func countLines(lines []string, l string) int {
	n := 0
	for _, x := range lines {
		if x == l {
			n++
		}
	}
	return n
}

// ---------------------------------------------------------------------------
// 3. Connections after non-compliant requests

// TestDesyncConnectionAfterNonCompliant: in defensive mode, an Acceptable
// request leaves both connections open (a compliant request after it is
// answered on the same target connection), and an Ambiguous one closes
// both after its response, so that a request pipelined behind it never
// reaches the target.
func TestDesyncConnectionAfterNonCompliant(t *testing.T) {
	t.Parallel()
	d := startDesyncLatch(t, "defensive")

	t.Run("acceptable", func(t *testing.T) {
		cl := dialDesync(t, d.addr)
		m := d.target.mark()
		steps := []struct{ raw, line, reason string }{
			{"GET /zero HTTP/1.1\r\nHost: example.com\r\nContent-Length: 0\r\n\r\n", "GET /zero HTTP/1.1", "GetHeadZeroContentLength"},
			{"GET /compliant-1 HTTP/1.1\r\nHost: example.com\r\n\r\n", "GET /compliant-1 HTTP/1.1", "Compliant"},
			{"GET /ctl HTTP/1.1\r\nHost: example.com\r\nX-Note: a\x01b\r\n\r\n", "GET /ctl HTTP/1.1", "NonCompliantHeader"},
			{"GET /compliant-2 HTTP/1.1\r\nHost: example.com\r\n\r\n", "GET /compliant-2 HTTP/1.1", "Compliant"},
		}
		conn := ""
		for i, s := range steps {
			bc, bb := d.counters()
			cl.send([]byte(s.raw))
			resp, err := readResponse(cl.br, "GET")
			if err != nil {
				t.Fatalf("request %d (%s): %v: latch closed the connection", i, s.line, err)
			}
			if resp.status() != 200 || hasToken(resp.Header, "Connection", "close") {
				t.Errorf("request %d (%s): want 200 and the connection kept, got\n%s", i, s.line, resp)
			}
			if conn == "" {
				conn = resp.get("X-Target-Conn")
			} else if got := resp.get("X-Target-Conn"); got != conn {
				t.Errorf("request %d (%s) went on target connection %s, want %s: the target connection was not kept", i, s.line, got, conn)
			}
			d.checkCounters(t, bc, bb, reasonNamed(t, s.reason), false)
		}
		d.target.flushAccepts(t, m)
		var got []string
		for _, r := range d.target.since(m).reqs {
			got = append(got, r.line)
		}
		if want := []string{steps[0].line, steps[1].line, steps[2].line, steps[3].line}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("the target received %q, want %q", got, want)
		}
	})

	t.Run("ambiguous", func(t *testing.T) {
		cl := dialDesync(t, d.addr)
		m := d.target.mark()
		bc, bb := d.counters()
		// An Ambiguous request with a compliant one pipelined behind it, in
		// one write.
		cl.send([]byte("POST /ambiguous HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc" +
			"GET /pipelined HTTP/1.1\r\nHost: example.com\r\n\r\n"))
		resp, err := readResponse(cl.br, "POST")
		if err != nil {
			t.Fatal(err)
		}
		if resp.status() != 200 || !hasToken(resp.Header, "Connection", "close") {
			t.Errorf("want 200 with Connection: close, got\n%s", resp)
		}
		if closed, extra := cl.closedByLatch(2 * time.Second); !closed || len(extra) > 0 {
			t.Errorf("latch did not close the client connection after the response (closed %v, then %q)", closed, extra)
		}
		d.checkCounters(t, bc, bb, desync.DuplicateContentLength, false)
		d.target.flushAccepts(t, m)
		delta := d.target.since(m)
		if len(delta.reqs) != 1 || delta.reqs[0].line != "POST /ambiguous HTTP/1.1" || string(delta.reqs[0].body) != "abc" {
			t.Fatalf("the target received %+v, want only POST /ambiguous with body abc\n%s", delta.reqs, d.target.dumpSince(m))
		}
		if id := delta.reqs[0].conn; !waitUntil(5*time.Second, func() bool { return d.target.closed(id) }) {
			t.Errorf("latch did not close the target connection after the response")
		}
	})
}

// ---------------------------------------------------------------------------
// latch's own answers to HEAD

// TestDesyncHeadRefusalHasNoContent: latch's own answer to a HEAD request it
// refuses (a desync block, or any other refusal) carries no content (RFC
// 9110 §9.3.2). Content there is read by the client as the start of the
// next response: when latch keeps the connection open, every later
// response on it is out of step.
func TestDesyncHeadRefusalHasNoContent(t *testing.T) {
	t.Parallel()
	t.Run("blocked in strictest", func(t *testing.T) {
		d := startDesyncLatch(t, "strictest")
		cl := dialDesync(t, d.addr)
		cl.send([]byte("HEAD /zero HTTP/1.1\r\nHost: example.com\r\nContent-Length: 0\r\n\r\n"))
		resp, err := readResponse(cl.br, "HEAD")
		if err != nil || resp.status() != 400 {
			t.Fatalf("want 400, got %v %v", resp, err)
		}
		if closed, extra := cl.closedByLatch(2 * time.Second); len(extra) > 0 || !closed {
			t.Errorf("after the response head to HEAD: content %q, then closed %v", extra, closed)
		}
	})
	t.Run("refused with the connection kept", func(t *testing.T) {
		d := startDesyncLatch(t, "defensive")
		cl := dialDesync(t, d.addr)
		// A compliant HEAD that latch answers itself (417: an expectation
		// it does not support), with a GET pipelined behind it.
		cl.send([]byte("HEAD / HTTP/1.1\r\nHost: example.com\r\nExpect: x-unknown\r\n\r\n" +
			"GET /next HTTP/1.1\r\nHost: example.com\r\n\r\n"))
		resp, err := readResponse(cl.br, "HEAD")
		if err != nil || resp.status() != 417 {
			t.Fatalf("want 417, got %v %v", resp, err)
		}
		next, err := readResponse(cl.br, "GET")
		if err != nil || next.status() != 200 || !next.has("X-Target-Conn") {
			t.Errorf("the response to the pipelined GET is out of step: got %v (%v)", next, err)
		}
	})
}
