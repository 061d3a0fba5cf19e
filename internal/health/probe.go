package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/latch-lb/latch/internal/h1"
	"github.com/latch-lb/latch/internal/target"
)

// A probe's verdict on a response is the data path's: what a request
// through latch would answer 502 for (a head over 32 KiB, a malformed
// status line or field, bad framing, an unrequested 101, a body cut short)
// fails the check with Target.FailedHealthChecks and a description of what
// was wrong.

// Probe sends one health check to the target at addr: a GET of the spec's
// path with Host: addr (its port the spec's, if it names one), on a
// connection of its own, within the spec's timeout.
func (c *Checker) Probe(ctx context.Context, addr string) target.Result {
	if c.reqErr != nil {
		return target.Result{Reason: target.ReasonInternalError, Description: c.reqErr.Error()}
	}
	if c.spec.Port != 0 {
		host, _, _ := net.SplitHostPort(addr)
		addr = net.JoinHostPort(host, strconv.Itoa(c.spec.Port))
	}
	ctx, cancel := context.WithTimeout(ctx, c.spec.Timeout)
	defer cancel()
	if c.h2 != nil {
		return c.probeH2(ctx, addr)
	}
	return c.probeH1(ctx, addr)
}

var dialer net.Dialer

// aLongTimeAgo is a deadline in the past, to unblock reads and writes at once.
var aLongTimeAgo = time.Unix(1, 0)

// probeH1 speaks HTTP/1.1 through internal/h1, as the data path does with
// the group's targets: the same parser, head limit and framing rules, and
// interim responses skipped as it skips them.
func (c *Checker) probeH1(ctx context.Context, addr string) target.Result {
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return failure(ctx, err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	// Stop and Close end a probe at once, whatever its timeout.
	defer context.AfterFunc(ctx, func() { conn.SetDeadline(aLongTimeAgo) })()

	req := make([]byte, 0, len(c.reqStart)+len(addr)+len(c.reqEnd))
	req = append(append(append(req, c.reqStart...), addr...), c.reqEnd...)
	if _, err := conn.Write(req); err != nil {
		return failure(ctx, err)
	}
	rd := h1.NewReader(conn, false)
	defer rd.Close()
	var resp h1.Response
	for {
		started, err := rd.ReadResponse(&resp, false)
		if errors.Is(err, io.EOF) {
			err = errNoResponse
			if started {
				err = errHeadCut
			}
		}
		if err != nil {
			return failure(ctx, err)
		}
		if resp.Status >= 200 {
			break
		}
		if resp.Status == http.StatusSwitchingProtocols {
			return failure(ctx, errSwitched) // the data path's 502 too
		}
	}
	if !c.spec.Matcher.Match(resp.Status) {
		return mismatch(resp.Status)
	}
	var body h1.Body
	body.Reset(rd, resp.Framing, resp.ContentLength, true)
	for n := 0; n < maxBody; {
		p, err := body.Next()
		n += len(p)
		if err == io.EOF {
			break
		}
		if err != nil {
			return failure(ctx, err)
		}
	}
	return target.Result{OK: true}
}

// probeH2 speaks HTTP/2 through net/http's client, set as the data path's
// (see NewChecker).
func (c *Checker) probeH2(ctx context.Context, addr string) target.Result {
	rec := new(h2Record)
	req, err := http.NewRequestWithContext(context.WithValue(ctx, h2RecordKey{}, rec), http.MethodGet, "http://"+addr+c.spec.Path, nil)
	if err != nil {
		return target.Result{Reason: target.ReasonInternalError, Description: err.Error()}
	}
	req.Header.Set("User-Agent", c.spec.UserAgent)
	resp, err := c.h2.Do(req)
	if err != nil {
		return failure(ctx, h2Cause(err, rec))
	}
	defer resp.Body.Close()
	if code, _, _ := strings.Cut(resp.Status, " "); !h1.ValidStatus(code) {
		return target.Result{Reason: target.ReasonFailedHealthChecks,
			Description: fmt.Sprintf("Health checks failed: the status code %q is not three digits", code)}
	}
	if !c.spec.Matcher.Match(resp.StatusCode) {
		return mismatch(resp.StatusCode)
	}
	if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody)); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return failure(ctx, errShortBody)
		}
		return failure(ctx, h2Cause(err, rec))
	}
	return target.Result{OK: true}
}

// h2Cause words what net/http's HTTP/2 client says of a response it
// refused, with what rec saw of the connection where the client does not
// say (it often has only "client conn could not be established").
//
// net/http tells of a head over its limit in one of three ways, by where
// the head crosses it: past the last frame of the head, as too large a
// header list; a field larger than the limit by itself, as an HPACK
// decoding error; a head that goes on for frames past it, as a protocol
// error. Only the first is sure to mean the limit, and none is an exported
// error: TestHeadLimitVerdict notices if their wording changes.
func h2Cause(err error, rec *h2Record) error {
	switch msg := err.Error(); {
	case strings.Contains(msg, "response header list larger than"):
		return h1.ErrResponseTooLarge
	case strings.Contains(msg, "connection error: COMPRESSION_ERROR"):
		return errH2Compression
	case strings.Contains(msg, "connection error: PROTOCOL_ERROR"):
		return errH2Protocol
	}
	if seen := rec.cause(); seen != nil {
		return seen
	}
	return err
}

var (
	errH2Compression = fmt.Errorf("connection error: COMPRESSION_ERROR (a header field over %d KiB, or HPACK that cannot be decoded)", h1.MaxResponseHead>>10)
	errH2Protocol    = fmt.Errorf("connection error: PROTOCOL_ERROR (a response head far over %d KiB, or another breach of HTTP/2)", h1.MaxResponseHead>>10)
)

// h2Record is what a probe's HTTP/2 connection saw: the start of the
// target's first frame, and whether the target reset the connection or
// closed it. The connection is dialed, read and written by net/http's
// goroutines; the probe reads the record once the request has failed.
type h2Record struct {
	mu     sync.Mutex
	first  []byte
	reset  bool
	closed bool
}

type h2RecordKey struct{}

// dialH2 dials an HTTP/2 probe's connection, recorded if the request's
// context carries a record (net/http keeps the request's values in the
// context it dials with).
func dialH2(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := dialer.DialContext(ctx, network, addr)
	if rec, ok := ctx.Value(h2RecordKey{}).(*h2Record); ok && err == nil {
		return &recordedConn{Conn: c, rec: rec}, nil
	}
	return c, err
}

type recordedConn struct {
	net.Conn
	rec *h2Record
}

// frameHead is the length of an HTTP/2 frame's header.
const frameHead = 9

func (c *recordedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	r := c.rec
	r.mu.Lock()
	if len(r.first) < frameHead {
		r.first = append(r.first, p[:min(n, frameHead-len(r.first))]...)
	}
	r.note(err)
	r.mu.Unlock()
	return n, err
}

func (c *recordedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil {
		c.rec.mu.Lock()
		c.rec.note(err)
		c.rec.mu.Unlock()
	}
	return n, err
}

// note records err. A reset is told once, to a read or a write: on Linux a
// read may even find the end first, and a write the reset after it.
func (r *h2Record) note(err error) {
	switch {
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		r.reset = true
	case errors.Is(err, io.EOF):
		r.closed = true
	}
}

// cause says what went wrong on the connection, if it knows: the target
// answered with something other than HTTP/2 (whose server preface is a
// SETTINGS frame, RFC 9113 §3.4), reset the connection, or closed it
// without a word.
func (r *h2Record) cause() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case len(r.first) > 3 && r.first[3] != 0x4:
		return fmt.Errorf("the target does not speak HTTP/2 (its answer began %q)", r.first)
	case r.reset:
		return syscall.ECONNRESET
	case r.closed && len(r.first) == 0:
		return errNoResponse
	}
	return nil
}

func mismatch(code int) target.Result {
	return target.Result{Reason: target.ReasonResponseCodeMismatch,
		Description: fmt.Sprintf("Health checks failed with these codes: [%d]", code)}
}

// What else ends a probe without a response.
var (
	errNoResponse = errors.New("the target closed the connection without a response")
	errHeadCut    = errors.New("the target closed the connection before the end of the response head")
	errSwitched   = errors.New("the target switched protocols unasked (101)")
	errShortBody  = errors.New("the response body is shorter than its Content-Length")
)

// failure is the result of a probe that err ended.
func failure(ctx context.Context, err error) target.Result {
	var he *h1.Error
	switch {
	case errors.As(err, &he):
		// An invalid response, however late it came.
	case errors.Is(ctx.Err(), context.Canceled):
		return target.Result{Reason: target.ReasonFailedHealthChecks, Description: "Health checks failed: the check was canceled"}
	case ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded):
		return target.Result{Reason: target.ReasonTimeout, Description: "Request timed out"}
	}
	return target.Result{Reason: target.ReasonFailedHealthChecks, Description: "Health checks failed: " + describe(err)}
}

// invalid words what the data path's errors for an invalid response say,
// as a health check's description says it.
var invalid = map[*h1.Error]string{
	h1.ErrResponseTooLarge:  fmt.Sprintf("the response head is over %d KiB", h1.MaxResponseHead>>10),
	h1.ErrStatusLine:        "the status line is malformed",
	h1.ErrResponseField:     "a header field is malformed",
	h1.ErrResponseLength:    "the Content-Length is invalid",
	h1.ErrResponseCoding:    "the Transfer-Encoding is chunked twice",
	h1.ErrResponseChunk:     "the chunked body is malformed",
	h1.ErrResponseTruncated: "the target closed the connection before the end of the response body",
}

func describe(err error) string {
	var he *h1.Error
	switch {
	case errors.As(err, &he):
		if d, ok := invalid[he]; ok {
			return d
		}
		return he.Cause
	case errors.Is(err, syscall.ECONNRESET):
		return "the target reset the connection"
	case errors.Is(err, syscall.EPIPE):
		return "the target closed the connection before the request was sent"
	}
	return unwrapAll(err).Error()
}

// unwrapAll drops url.Error's "Get <url>:" prefix and the like, keeping the
// innermost cause (for example "connect: connection refused").
func unwrapAll(err error) error {
	for {
		var op *net.OpError
		if errors.As(err, &op) {
			return op
		}
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

// requestH1 returns the HTTP/1.1 probe's request head in two parts, which
// the target's address (the Host field's value) joins. The path goes as
// net/http sent it when it made the probes (escaped where it must be); a
// path or user agent no request can carry is an error.
func requestH1(path, userAgent string) (start, end string, err error) {
	u, err := url.Parse("http://target" + path)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", "", fmt.Errorf("the health check path %q cannot be sent: %v", path, err)
	}
	for _, b := range []byte(userAgent) {
		if b < ' ' && b != '\t' || b == 0x7f {
			return "", "", fmt.Errorf("the health check user agent %q cannot be sent: it holds a control character", userAgent)
		}
	}
	start = "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: "
	end = "\r\nUser-Agent: " + userAgent + "\r\nConnection: close\r\n\r\n"
	return start, end, nil
}
