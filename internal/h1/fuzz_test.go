package h1

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"strings"
	"testing"
	"testing/iotest"
)

// refChunked decodes a chunked body (RFC 9112 §7.1) independently of
// Body, with the rules latch documents: 1 to 15 hex digits, then
// optionally OWS ";" OWS and an extension that starts with a token
// character and holds no controls; every line
// ends in CRLF; trailer fields are token ":" value. It returns the data,
// how many bytes the body took, the longest line and the trailer's size
// (sum of its lines), or ok false.
func refChunked(b []byte) (data []byte, n, longest, trailer int, ok bool) {
	pos := 0
	line := func() ([]byte, bool) {
		i := bytes.Index(b[pos:], []byte("\r\n"))
		if i < 0 || bytes.IndexByte(b[pos:pos+i], '\n') >= 0 {
			return nil, false
		}
		l := b[pos : pos+i]
		pos += i + 2
		longest = max(longest, len(l))
		return l, true
	}
	for {
		l, ok := line()
		if !ok {
			return nil, 0, 0, 0, false
		}
		digits := 0
		var size int64
		for digits < len(l) && strings.IndexByte("0123456789abcdefABCDEF", l[digits]) >= 0 {
			c := l[digits] | 0x20
			d := int64(c - '0')
			if c >= 'a' {
				d = int64(c-'a') + 10
			}
			size = size*16 + d
			digits++
		}
		if digits == 0 || digits > 15 {
			return nil, 0, 0, 0, false
		}
		if ext := bytes.TrimLeft(l[digits:], " \t"); len(l) > digits {
			if len(ext) == 0 || ext[0] != ';' || !validValue(ext) {
				return nil, 0, 0, 0, false
			}
			// An extension has a name (RFC 9112 §7.1.1).
			if name := bytes.TrimLeft(ext[1:], " \t"); len(name) == 0 || !ValidName(name[:1]) {
				return nil, 0, 0, 0, false
			}
		}
		if size == 0 {
			break
		}
		if int64(len(b)-pos) < size+2 {
			return nil, 0, 0, 0, false
		}
		data = append(data, b[pos:pos+int(size)]...)
		pos += int(size)
		if string(b[pos:pos+2]) != "\r\n" {
			return nil, 0, 0, 0, false
		}
		pos += 2
	}
	for {
		l, ok := line()
		if !ok {
			return nil, 0, 0, 0, false
		}
		if len(l) == 0 {
			return data, pos, longest, trailer, true
		}
		trailer += len(l)
		colon := bytes.IndexByte(l, ':')
		if colon <= 0 || !ValidName(l[:colon]) || !validValue(l[colon+1:]) {
			return nil, 0, 0, 0, false
		}
	}
}

// latchMessage is everything latch made of an input, comparable between
// feeds.
type latchMessage struct {
	started           bool
	readErr, frameErr string
	method, target    string
	status            int
	framing           Framing
	length            int64
	headLen           int // bytes the head took, leading empty lines included
	body              string
	trailer           string
	bodyErr           string
	consumed          int // bytes taken when the body ended
}

func (m latchMessage) ok() bool { return m.readErr == "" && m.frameErr == "" && m.bodyErr == "" }

func errText(err error) string {
	if err == nil {
		return ""
	}
	return errName(err)
}

// maxBody bounds the body a fuzz input may produce: no more than its
// length, whatever the framing says.
func readLatchBody(rd *Reader, sr *bytes.Reader, data []byte, m *latchMessage, isResp bool) {
	var b Body
	b.Reset(rd, m.framing, m.length, isResp)
	body, err := readBody(&b, nil)
	if len(body) > len(data) {
		panic(fmt.Sprintf("a body of %d bytes from %d bytes of input", len(body), len(data)))
	}
	m.body, m.bodyErr, m.trailer = string(body), errText(err), fieldsString(b.Trailers())
	if err == nil {
		// After an error, how much was taken depends on how it arrived.
		m.consumed = len(data) - rd.Buffered() - sr.Len()
	}
}

// longestLine returns the length of b's longest line.
func longestLine(b []byte) int {
	longest := 0
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return max(longest, len(b))
		}
		longest = max(longest, i)
		b = b[i+1:]
	}
	return longest
}

func latchRequest(data []byte, wrap func(io.Reader) io.Reader) (m latchMessage, req *Request) {
	sr := bytes.NewReader(data)
	rd := NewReader(wrap(sr), false)
	req = new(Request)
	started, err := rd.ReadRequest(req)
	m.started, m.readErr = started, errText(err)
	if err != nil {
		return m, req
	}
	m.headLen = len(data) - rd.Buffered() - sr.Len()
	if err := req.Frame(); err != nil {
		m.frameErr = errText(err)
		return m, req
	}
	m.method, m.target, m.framing, m.length = string(req.Method), string(req.Target), req.Framing, req.ContentLength
	if m.framing != Length {
		m.length = 0 // only meaningful for Length
	}
	readLatchBody(rd, sr, data, &m, false)
	return m, req
}

func latchResponse(data []byte, wrap func(io.Reader) io.Reader) (m latchMessage, resp *Response) {
	sr := bytes.NewReader(data)
	rd := NewReader(wrap(sr), false)
	resp = new(Response)
	started, err := rd.ReadResponse(resp, false)
	m.started, m.readErr = started, errText(err)
	if err != nil {
		return m, resp
	}
	m.headLen = len(data) - rd.Buffered() - sr.Len()
	m.status, m.framing, m.length = resp.Status, resp.Framing, resp.ContentLength
	if m.framing != Length {
		m.length = 0
	}
	readLatchBody(rd, sr, data, &m, true)
	return m, resp
}

// checkConsumed holds latch to its framing: it takes the head, then
// exactly the body's bytes, never more.
func checkConsumed(t *testing.T, data []byte, m latchMessage) {
	t.Helper()
	head := data[:m.headLen]
	if !bytes.HasSuffix(head, []byte("\n\n")) && !bytes.HasSuffix(head, []byte("\n\r\n")) {
		t.Fatalf("the head %q does not end in an empty line", head)
	}
	if m.bodyErr != "" {
		return
	}
	took := m.consumed - m.headLen
	switch m.framing {
	case NoBody:
		if took != 0 {
			t.Fatalf("no body, but %d bytes taken after the head", took)
		}
	case Length:
		if int64(took) != m.length || int64(len(m.body)) != m.length {
			t.Fatalf("Content-Length %d, but %d bytes taken and %d returned", m.length, took, len(m.body))
		}
	case Chunked:
		want, n, _, _, ok := refChunked(data[m.headLen:])
		if !ok {
			t.Fatalf("latch accepted the chunked body %q, which the reference refuses", data[m.headLen:])
		}
		if n != took || string(want) != m.body {
			t.Fatalf("chunked body: latch took %d bytes for %q, the reference %d for %q", took, m.body, n, want)
		}
	case UntilClose:
		if m.consumed != len(data) || m.body != string(data[m.headLen:]) {
			t.Fatalf("until close: took %d of %d bytes", m.consumed, len(data))
		}
	}
}

// forwardable checks what Frame let through: nothing that could end a line
// or a string in the target's parser.
func checkForwardable(t *testing.T, req *Request) {
	t.Helper()
	if !forwardable(req.Method) || !forwardable(req.Target) {
		t.Fatalf("Frame passed a request line with CR, LF or NUL: %q %q", req.Method, req.Target)
	}
	if string(req.Proto) != "HTTP/1.1" && string(req.Proto) != "HTTP/1.0" {
		t.Fatalf("Frame passed version %q", req.Proto)
	}
	if len(req.Target) == 0 {
		t.Fatal("Frame passed an empty target")
	}
	for i, f := range req.Fields {
		if !forwardable(f.Name) || !forwardable(f.Value) {
			t.Fatalf("Frame passed field %q: %q", f.Name, f.Value)
		}
		// What is forwarded has a token for a name.
		if !req.Kinds[i].HopByHop() && !ValidName(f.Name) {
			t.Fatalf("Frame would forward field %q: %q (kind %s)", f.Name, f.Value, kindName(req.Kinds[i]))
		}
	}
}

var requestSeeds = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"POST / HTTP/1.0\r\nContent-Length: 3\r\nTransfer-Encoding: identity\r\n\r\nabc",
	"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 05\r\n\r\nhello",
	"GET / HTTP/1.1\nHost: a\nContent-Length: 2\n\nhi",
	"\r\n\r\nGET http://x/ HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello",
	"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0000000000000005\r\nhello\r\n0\r\n\r\n",
	"PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n5 ; a\r\nhello\r\n0\r\n\r\n",
	"PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: Content-Length\r\nContent-Length: 1\r\n\r\nx",
	"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET  HTTP/1.1\r\nHost: a\r\n\r\n",
}

func FuzzRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, req := latchRequest(data, feeds[0].wrap)
		if one, _ := latchRequest(data, iotest.OneByteReader); one != m {
			t.Fatalf("whole and one-byte reads differ:\n\twhole:   %+v\n\tonebyte: %+v", m, one)
		}
		if m.readErr != "" {
			return
		}
		if m.frameErr == "" {
			checkForwardable(t, req)
		}
		if !m.ok() {
			return
		}
		checkConsumed(t, data, m)

		hr, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			return
		}
		hbody, err := io.ReadAll(hr.Body)
		if err != nil {
			return
		}
		// Both accept: they must agree on what the request is, and above
		// all on where its body ends.
		if hr.Method != m.method || hr.RequestURI != m.target {
			t.Fatalf("net/http reads %q %q, latch %q %q", hr.Method, hr.RequestURI, m.method, m.target)
		}
		if string(hbody) != m.body {
			t.Fatalf("net/http reads a body of %d bytes %q, latch %d bytes %q (latch framing %s)",
				len(hbody), hbody, len(m.body), m.body, framingName(m.framing))
		}
	})
}

var responseSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nGrpc-Status: 0\r\n\r\nrest",
	"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nuntil close",
	"HTTP/1.1 200 OK\r\n\r\nuntil close",
	"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi",
	"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
	"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200\nContent-Length: 1\n\nx",
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nabc",
}

// httpResponseException reports a response on which latch and net/http
// may legitimately read different bodies.
func httpResponseException(resp *Response) string {
	if resp.Minor == 0 {
		for i := range resp.Fields {
			if resp.Kinds[i] == KindTransferEncoding {
				// net/http ignores Transfer-Encoding in HTTP/1.0; latch reads
				// it (RFC 9112 §6.1 calls the framing faulty; see
				// TestHTTP10ResponseTransferEncodingCloses).
				return "Transfer-Encoding in HTTP/1.0"
			}
		}
	}
	return ""
}

func FuzzResponse(f *testing.F) {
	for _, s := range responseSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, resp := latchResponse(data, feeds[0].wrap)
		if one, _ := latchResponse(data, iotest.OneByteReader); one != m {
			t.Fatalf("whole and one-byte reads differ:\n\twhole:   %+v\n\tonebyte: %+v", m, one)
		}
		if m.readErr != "" {
			return
		}
		for i, f := range resp.Fields {
			if !ValidName(f.Name) || !validValue(f.Value) {
				t.Fatalf("a response field passed: %q: %q", f.Name, f.Value)
			}
			if resp.Kinds[i] != KindOf(f.Name) && resp.Kinds[i] != KindNamedInConnection {
				t.Fatalf("field %q of kind %s", f.Name, kindName(resp.Kinds[i]))
			}
		}
		if resp.Framing == UntilClose && !resp.Close {
			t.Fatal("a body until close on a connection kept open")
		}
		if !m.ok() {
			return
		}
		checkConsumed(t, data, m)

		hr, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(data)), nil)
		if err != nil {
			return
		}
		hbody, err := io.ReadAll(hr.Body)
		if err != nil {
			return
		}
		if hr.StatusCode != m.status {
			t.Fatalf("net/http reads status %d, latch %d", hr.StatusCode, m.status)
		}
		if string(hbody) != m.body && httpResponseException(resp) == "" {
			t.Fatalf("net/http reads a body of %d bytes %q, latch %d bytes %q (latch framing %s)",
				len(hbody), hbody, len(m.body), m.body, framingName(m.framing))
		}
	})
}

var chunkedSeeds = []string{
	"5\r\nhello\r\n0\r\n\r\n",
	"5;a=b\r\nhello\r\nA\r\n0123456789\r\n0\r\nX: 1\r\nY: 2\r\n\r\nNEXT",
	"0\r\n\r\n",
	"fffffffffffffff\r\nabc",
	"5\nhello\n0\n\n",
	"5 ; x\r\nhello\r\n0\r\n\r\n",
	"1\r\nx\r\n0;ext\r\nT: v\r\n\r\n",
}

func FuzzChunked(f *testing.F) {
	for _, s := range chunkedSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		type result struct {
			body, trailer, err string
			consumed           int
		}
		run := func(wrap func(io.Reader) io.Reader) result {
			sr := bytes.NewReader(data)
			rd := NewReader(wrap(sr), false)
			var b Body
			b.Reset(rd, Chunked, 0, false)
			body, err := readBody(&b, nil)
			r := result{body: string(body), trailer: fieldsString(b.Trailers()), err: errText(err)}
			if err == nil {
				r.consumed = len(data) - rd.Buffered() - sr.Len()
			}
			return r
		}
		got := run(feeds[0].wrap)
		// Lines over 4 KiB are accepted in one read and refused in many:
		// see TestChunkLineLimitAnyRead. Compare the feeds below that.
		ref, n, longest, trailer, refOK := refChunked(data)
		if longestLine(data) < 4000 {
			if one := run(iotest.OneByteReader); one != got {
				t.Fatalf("whole and one-byte reads differ:\n\twhole:   %+v\n\tonebyte: %+v", got, one)
			}
		}
		if got.err == "" {
			if !refOK {
				t.Fatalf("latch accepted %q, the reference refuses it", data)
			}
			if got.body != string(ref) || got.consumed != n {
				t.Fatalf("latch took %d bytes for %q, the reference %d for %q", got.consumed, got.body, n, ref)
			}
		} else if refOK && longest <= 4000 && trailer <= maxTrailer {
			t.Fatalf("latch refused %q (%s), the reference accepts it", data, got.err)
		}
		// net/http's chunked reader (which leaves the trailer unread) must
		// find the same data wherever both accept.
		hbody, err := io.ReadAll(httputil.NewChunkedReader(bufio.NewReader(bytes.NewReader(data))))
		if err == nil && got.err == "" && string(hbody) != got.body {
			t.Fatalf("net/http decodes %q, latch %q", hbody, got.body)
		}
	})
}
