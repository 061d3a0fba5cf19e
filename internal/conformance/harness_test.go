package conformance_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/leaktest"
	"github.com/latch-lb/latch/internal/proxy/proxytest"
	"github.com/latch-lb/latch/internal/server"
)

// waitLimit bounds every wait in the suite: a read from a socket, a message
// on a channel, a whole exchange. A test that hits it has failed.
const waitLimit = 10 * time.Second

// ---------------------------------------------------------------------------
// latch

// latch is a running latch with one HTTP listener forwarding to one target
// group with lb_cookie stickiness and health checks off.
type latch struct {
	addr string             // the listener's bound host:port
	port string             // the listener's port, as X-Forwarded-Port should carry it
	obs  *proxytest.Counter // what its data path saw
}

// startLatch runs latch in front of targets (host:port each) and stops it
// when the test ends.
func startLatch(t *testing.T, targets ...string) *latch {
	t.Helper()
	var y strings.Builder
	y.WriteString(`listeners:
  - name: public
    address: 127.0.0.1:0
    default_action: { type: forward, forward: { target_group: web } }
target_groups:
  - name: web
    targets:
`)
	for _, id := range targets {
		fmt.Fprintf(&y, "      - id: %s\n", id)
	}
	fmt.Fprintf(&y, `    health_check: { enabled: "false" }
    attributes:
      stickiness.enabled: "true"
      stickiness.type: lb_cookie
      deregistration_delay.timeout_seconds: "0"
state_dir: %s
`, t.TempDir())
	cfg, err := config.Parse([]byte(y.String()), "")
	if err != nil {
		t.Fatalf("config:\n%s\n%v", y.String(), err)
	}
	b, obs := runLatch(t, cfg, 2*time.Second)
	addr := b.Addr("public")
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("listener address %q: %v", addr, err)
	}
	return &latch{addr: addr, port: port, obs: obs}
}

func (l *latch) url(path string) string { return "http://" + l.addr + path }

// dataPath is the data path of the latches the tests start: TestMain runs
// every test on each.
var dataPath = server.Loops

// TestMain runs the suite twice in this one process: first with latch's
// plain-HTTP connections on event loops, then with a goroutine per
// connection (the path of HTTPS listeners, of connections a loop handed
// off, and of systems without epoll).
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		fmt.Println("=== the same suite with a goroutine per connection (data path goroutines)")
		dataPath = server.Goroutines
		code = m.Run()
	}
	os.Exit(code)
}

// runLatch runs latch on cfg, logging to stderr if LATCH_CONFORMANCE_LOG
// is set, with a counting observer, and shuts it down when the test ends,
// giving it grace: with every client gone, nothing should be in flight,
// and a failed test need not wait long for latch to give up on its
// requests. No goroutine of latch's may outlive the shutdown.
func runLatch(t *testing.T, cfg *config.Config, grace time.Duration) (*server.Server, *proxytest.Counter) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("LATCH_CONFORMANCE_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	leaktest.Check(t)
	obs := &proxytest.Counter{}
	b, err := server.New(server.Options{Log: log, DataPath: dataPath, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		shutdownLatch(b, grace)
		// Every client connection the observer saw open, it saw close
		// (HTTP/2 ones when the HTTP/2 server let them go, a moment after).
		for deadline := time.Now().Add(5 * time.Second); obs.Opened.Load() != obs.Closed.Load(); {
			if time.Now().After(deadline) {
				t.Errorf("the observer saw %d client connections open and %d close", obs.Opened.Load(), obs.Closed.Load())
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	if err := b.Apply(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	return b, obs
}

// shutdownLatch stops b, waiting at most grace for its connections.
func shutdownLatch(b *server.Server, grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	b.Shutdown(ctx)
}

// ---------------------------------------------------------------------------
// HTTP/1.1 messages as bytes on the wire

// field is one header or trailer field line as it appeared on the wire: the
// name with its case, the value without surrounding whitespace.
type field struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// asciiLower lower-cases ASCII letters only. HTTP field names and tokens
// are case-insensitive in ASCII alone: strings.EqualFold would take
// "Tranſfer-Encoding" (a long s, one of the desync corpus's lookalikes) for
// Transfer-Encoding, and strings.ToLower turns a Kelvin sign into a k.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func asciiEqualFold(a, b string) bool { return asciiLower(a) == asciiLower(b) }

// fieldValues returns the value of every line named name (ASCII
// case-insensitively), in wire order.
func fieldValues(fs []field, name string) []string {
	var out []string
	for _, f := range fs {
		if asciiEqualFold(f.Name, name) {
			out = append(out, f.Value)
		}
	}
	return out
}

// fieldList is the field's combined value, as RFC 9110 §5.3 defines it: every
// line's value, in order, joined with ", ".
func fieldList(fs []field, name string) string { return strings.Join(fieldValues(fs, name), ", ") }

// fieldTokens returns the comma-separated elements of every line named name,
// lower-cased, without parameters (for Connection, TE, Transfer-Encoding).
func fieldTokens(fs []field, name string) []string {
	var out []string
	for _, v := range fieldValues(fs, name) {
		for _, tok := range strings.Split(v, ",") {
			tok, _, _ = strings.Cut(tok, ";")
			if tok = asciiLower(strings.TrimSpace(tok)); tok != "" {
				out = append(out, tok)
			}
		}
	}
	return out
}

func hasToken(fs []field, name, token string) bool {
	for _, tok := range fieldTokens(fs, name) {
		if tok == asciiLower(token) {
			return true
		}
	}
	return false
}

// TestFieldLookalikes: the harness reads field names and tokens as an
// RFC 9112 recipient does, so that a lookalike forwarded by latch is not
// taken for framing or a hop-by-hop field.
func TestFieldLookalikes(t *testing.T) {
	fs := []field{{"Tran\u017Ffer-Encoding", "chunked"}, {"\u212Aeep-Alive", "5"}, {"Connection", "\u212Aeep-Alive"}, {"TRANSFER-encoding", "gzip"}}
	if got := fieldValues(fs, "Transfer-Encoding"); len(got) != 1 || got[0] != "gzip" {
		t.Errorf("Transfer-Encoding: got %q, want only the ASCII one's gzip", got)
	}
	if fieldValues(fs, "Keep-Alive") != nil || hasToken(fs, "Connection", "keep-alive") {
		t.Errorf("a Kelvin sign taken for a K")
	}
}

// message is an HTTP/1.x request or response read off a socket by hand.
type message struct {
	StartLine string
	Header    []field
	Body      []byte
	Trailer   []field
	// Framing is how the body was delimited: "none", "length", "chunked" or
	// "close" (read until the connection closed).
	Framing string
}

func (m *message) values(name string) []string { return fieldValues(m.Header, name) }
func (m *message) get(name string) string      { return fieldList(m.Header, name) }
func (m *message) has(name string) bool        { return len(m.values(name)) > 0 }

// status is a response's status code (0 if the status line is malformed).
func (m *message) status() int {
	_, rest, _ := strings.Cut(m.StartLine, " ")
	code, _ := strconv.Atoi(strings.SplitN(rest, " ", 2)[0])
	return code
}

// version is the HTTP version of a response's status line.
func (m *message) version() string { v, _, _ := strings.Cut(m.StartLine, " "); return v }

func (m *message) String() string {
	var b strings.Builder
	b.WriteString(abridge(m.StartLine, 200) + "\n")
	for _, f := range m.Header {
		fmt.Fprintf(&b, "%s: %s\n", f.Name, abridge(f.Value, 200))
	}
	fmt.Fprintf(&b, "\n[%s] %s", m.Framing, abridge(string(m.Body), 300))
	return b.String()
}

// abridge cuts s to at most n bytes for a failure message, saying how long it was.
func abridge(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s... (%d bytes)", s[:n], len(s))
}

func readLine(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		if err == io.EOF && line != "" {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	line = strings.TrimSuffix(line, "\n")
	return strings.TrimSuffix(line, "\r"), nil
}

func readFields(br *bufio.Reader) ([]field, error) {
	var fs []field
	for {
		line, err := readLine(br)
		if err != nil {
			return fs, err
		}
		if line == "" {
			return fs, nil
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return fs, fmt.Errorf("malformed field line %q", line)
		}
		fs = append(fs, field{Name: name, Value: strings.Trim(value, " \t")})
	}
}

func readHead(br *bufio.Reader) (*message, error) {
	line, err := readLine(br)
	if err != nil {
		return nil, err
	}
	m := &message{StartLine: line, Framing: "none"}
	if m.Header, err = readFields(br); err != nil {
		return m, fmt.Errorf("header of %q: %w", line, err)
	}
	return m, nil
}

func readChunked(br *bufio.Reader, m *message) error {
	var body []byte
	for {
		line, err := readLine(br)
		if err != nil {
			return fmt.Errorf("chunk size: %w", err)
		}
		sz, _, _ := strings.Cut(line, ";")
		n, err := strconv.ParseInt(strings.TrimSpace(sz), 16, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("bad chunk size line %q", line)
		}
		if n == 0 {
			m.Body = body
			m.Trailer, err = readFields(br)
			if err != nil {
				return fmt.Errorf("trailer: %w", err)
			}
			return nil
		}
		start := len(body)
		body = append(body, make([]byte, n)...)
		if _, err := io.ReadFull(br, body[start:]); err != nil {
			m.Body = body[:start]
			return fmt.Errorf("chunk data: %w", err)
		}
		if crlf, err := readLine(br); err != nil || crlf != "" {
			return fmt.Errorf("chunk not followed by CRLF: %q, %v", crlf, err)
		}
	}
}

func readBody(br *bufio.Reader, m *message, untilClose bool) error {
	te := fieldTokens(m.Header, "Transfer-Encoding")
	switch {
	case len(te) > 0 && te[len(te)-1] == "chunked":
		m.Framing = "chunked"
		return readChunked(br, m)
	case m.has("Content-Length"):
		m.Framing = "length"
		n, err := strconv.ParseInt(m.get("Content-Length"), 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("bad Content-Length %q", m.get("Content-Length"))
		}
		m.Body = make([]byte, n)
		got, err := io.ReadFull(br, m.Body)
		m.Body = m.Body[:got]
		return err
	case untilClose:
		m.Framing = "close"
		var err error
		m.Body, err = io.ReadAll(br)
		return err
	}
	return nil
}

// readRequest reads one request, body and trailers included.
func readRequest(br *bufio.Reader) (*message, error) {
	m, err := readHead(br)
	if err != nil {
		return m, err
	}
	return m, readBody(br, m, false)
}

// method is a request's method.
func (m *message) method() string { meth, _, _ := strings.Cut(m.StartLine, " "); return meth }

// readResponse reads one response (an interim 1xx one too) to a request
// made with method.
func readResponse(br *bufio.Reader, method string) (*message, error) {
	m, err := readHead(br)
	if err != nil {
		return m, err
	}
	code := m.status()
	if code < 200 || code == 204 || code == 304 || method == "HEAD" {
		return m, nil
	}
	return m, readBody(br, m, true)
}

func chunk(s string) string { return fmt.Sprintf("%x\r\n%s\r\n", len(s), s) }

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// ---------------------------------------------------------------------------
// Raw clients

// rawClient is a client connection to latch on which the test writes and
// reads bytes itself.
type rawClient struct {
	t  *testing.T
	c  *net.TCPConn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(waitLimit))
	return &rawClient{t: t, c: c.(*net.TCPConn), br: bufio.NewReaderSize(c, 64<<10)}
}

func (c *rawClient) write(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("writing to latch: %v", err)
	}
}

// next reads the next response, an interim one included.
func (c *rawClient) next(method string) *message {
	c.t.Helper()
	m, err := readResponse(c.br, method)
	if err != nil {
		if m != nil {
			c.t.Fatalf("reading the response to %s: got %v after\n%s", method, err, m)
		}
		c.t.Fatalf("reading the response to %s: %v", method, err)
	}
	return m
}

// response reads the next final response, skipping interim (1xx) ones.
func (c *rawClient) response(method string) *message {
	c.t.Helper()
	for {
		m := c.next(method)
		if m.status() >= 200 {
			return m
		}
	}
}

// closedByPeer reports whether latch closed the connection: the next read
// ends (EOF or reset) without data. Bytes instead are an error.
func (c *rawClient) closedByPeer() (bool, error) {
	buf := make([]byte, 512)
	n, err := c.br.Read(buf)
	if n > 0 {
		return false, fmt.Errorf("unexpected bytes %q", buf[:n])
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false, nil
	}
	return err != nil, nil
}

// ---------------------------------------------------------------------------
// Raw targets

// rawTarget is a TCP server standing in for a target, for tests that must
// write the exact response bytes or see the exact request bytes.
type rawTarget struct {
	addr  string
	conns atomic.Int64 // connections accepted so far
}

// targetConn is one connection latch opened to a raw target.
type targetConn struct {
	net.Conn
	br *bufio.Reader
	id int64 // 1 for the target's first connection, 2 for the next...
}

func (c *targetConn) write(s string) error {
	_, err := io.WriteString(c.Conn, s)
	return err
}

// startRawTarget runs serve on every connection, in its own goroutine, and
// closes the connection when serve returns. Each connection has a deadline
// of twice waitLimit, so that no target goroutine outlives a failed test
// for long.
func startRawTarget(t *testing.T, serve func(*targetConn)) *rawTarget {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rt := &rawTarget{addr: ln.Addr().String()}
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(2 * waitLimit))
			tc := &targetConn{Conn: c, br: bufio.NewReaderSize(c, 64<<10), id: rt.conns.Add(1)}
			mu.Lock()
			open[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					c.Close()
					mu.Lock()
					delete(open, c)
					mu.Unlock()
				}()
				serve(tc)
			}()
		}
	}()
	return rt
}

// startResponder runs a raw target that reads each request of a connection
// in full and writes respond's answer to it, until a read or a write fails.
func startResponder(t *testing.T, respond func(c *targetConn, m *message) string) *rawTarget {
	t.Helper()
	return startRawTarget(t, func(c *targetConn) {
		for {
			m, err := readRequest(c.br)
			if err != nil {
				return
			}
			if c.write(respond(c, m)) != nil {
				return
			}
		}
	})
}

// echo is what an echo target saw of one request, sent back as JSON.
type echo struct {
	Line    string  `json:"line"`
	Header  []field `json:"header"`
	Trailer []field `json:"trailer"`
	Framing string  `json:"framing"`
	BodyLen int     `json:"body_len"`
	BodySHA string  `json:"body_sha256"`
	Body    string  `json:"body"`
	Conn    int64   `json:"conn"`
}

func (e echo) get(name string) string { return fieldList(e.Header, name) }

// echoTarget answers every request with a JSON echo of it (see echo), also
// summed up in the headers X-Echo-Line and X-Echo-Body-Sha256, and counts
// the requests it read in full.
type echoTarget struct {
	*rawTarget
	requests atomic.Int64
}

func startEchoTarget(t *testing.T) *echoTarget {
	t.Helper()
	et := &echoTarget{}
	et.rawTarget = startRawTarget(t, func(c *targetConn) {
		for {
			m, err := readRequest(c.br)
			if err != nil {
				return
			}
			et.requests.Add(1)
			e := echo{Line: m.StartLine, Header: m.Header, Trailer: m.Trailer, Framing: m.Framing,
				BodyLen: len(m.Body), BodySHA: sha(m.Body), Conn: c.id}
			if len(m.Body) <= 64<<10 {
				e.Body = string(m.Body)
			}
			body, _ := json.Marshal(e)
			resp := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Echo-Line: %s\r\nX-Echo-Body-Sha256: %s\r\nContent-Length: %d\r\n\r\n",
				m.StartLine, e.BodySHA, len(body))
			if m.method() != "HEAD" {
				resp += string(body)
			}
			if c.write(resp) != nil || hasToken(m.Header, "Connection", "close") {
				return
			}
		}
	})
	return et
}

// decodeEcho reads an echo target's answer out of a response.
func decodeEcho(t *testing.T, resp *message) echo {
	t.Helper()
	if !resp.has("X-Echo-Line") {
		t.Fatalf("the request did not reach the target; latch answered\n%s", resp)
	}
	var e echo
	if err := json.Unmarshal(resp.Body, &e); err != nil {
		t.Fatalf("not an echo from the target: %v\n%s", err, resp)
	}
	return e
}

// ---------------------------------------------------------------------------
// net/http targets and clients

// startHTTPTarget runs a net/http server on 127.0.0.1 and returns its address.
func startHTTPTarget(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		// Cut every connection first: Close waits for handlers, and a
		// handler reading from a latch that misbehaves would wait long.
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv.Listener.Addr().String()
}

// newClient is a net/http client of the test's own (no shared connection
// pool), which neither asks for compression nor follows redirects.
func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       2 * waitLimit,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// ---------------------------------------------------------------------------
// Waiting

// await waits for a value on ch, failing the test after waitLimit.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("timed out after %v waiting for %s", waitLimit, what)
		panic("unreachable")
	}
}

// gate is something a target waits for until the test opens it. A test
// also opens it in a cleanup registered after the target's, so that a
// failed test leaves no target waiting.
type gate struct {
	ch   chan struct{}
	once sync.Once
}

func newGate() *gate { return &gate{ch: make(chan struct{})} }

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

// wait blocks until the gate opens; false if waitLimit passed first.
func (g *gate) wait() bool {
	select {
	case <-g.ch:
		return true
	case <-time.After(waitLimit):
		return false
	}
}
