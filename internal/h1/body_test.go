package h1

import (
	"fmt"
	"io"
	"math/rand"
	"strconv"
	"strings"
	"testing"
)

// respErr is the error a target's body gets where a client's gets err.
func respErr(err error) error {
	switch err {
	case ErrChunkFormat, ErrTrailerTooLarge:
		return ErrResponseChunk
	case ErrBodyTooShort:
		return ErrResponseTruncated
	}
	return err
}

type bodyCase struct {
	name    string
	framing Framing
	length  int64
	in      string // the body, and then whatever follows it
	data    string
	trailer string // see fieldsString
	err     error  // a client's; a target's is respErr(err)
	rest    string // left after a body read without error
}

func runBodyCases(t *testing.T, tests []bodyCase) {
	t.Helper()
	for _, tt := range tests {
		for _, side := range []string{"request", "response"} {
			isResp := side == "response"
			want := tt.err
			if isResp {
				want = respErr(want)
			}
			for _, feed := range feeds {
				t.Run(tt.name+"/"+side+"/"+feed.name, func(t *testing.T) {
					rd, sr := newFeed(tt.in, feed.wrap)
					cr := &countingReader{r: feed.wrap(sr)}
					rd.src = cr
					var b Body
					b.Reset(rd, tt.framing, tt.length, isResp)
					if b.framing != tt.framing {
						t.Errorf("framing = %s, want %s", framingName(b.framing), framingName(tt.framing))
					}
					data, err := readBody(&b, func() int { return cr.n })
					if string(data) != tt.data {
						t.Errorf("body = %q, want %q", data, tt.data)
					}
					if !sameErr(err, want) {
						t.Fatalf("error = %s, want %s", errName(err), errName(want))
					}
					if err != nil {
						return
					}
					if !b.Done() {
						t.Errorf("Done() = false after the body")
					}
					if got := fieldsString(b.Trailers()); got != tt.trailer {
						t.Errorf("trailer = %q, want %q", got, tt.trailer)
					}
					if got := rest(rd, sr); got != tt.rest {
						t.Errorf("left after the body: %q, want %q", got, tt.rest)
					}
					// At the end Next keeps saying so.
					if p, err := b.Next(); p != nil || err != io.EOF {
						t.Errorf("Next after the end = %q, %v; want nil, EOF", p, err)
					}
				})
			}
		}
	}
}

func TestBodyLength(t *testing.T) {
	runBodyCases(t, []bodyCase{
		{name: "length", framing: Length, length: 5, in: "helloNEXT", data: "hello", rest: "NEXT"},
		{name: "1 KiB", framing: Length, length: 1024, in: strings.Repeat("x", 1024) + "NEXT", data: strings.Repeat("x", 1024), rest: "NEXT"},
		{name: "larger than the buffer", framing: Length, length: 40000, in: strings.Repeat("y", 40000) + "NEXT",
			data: strings.Repeat("y", 40000), rest: "NEXT"},
		{name: "zero", framing: Length, length: 0, in: "NEXT", rest: "NEXT"},
		{name: "no body", framing: NoBody, in: "NEXT", rest: "NEXT"},
		{name: "truncated", framing: Length, length: 5, in: "hel", data: "hel", err: ErrBodyTooShort},
		{name: "empty", framing: Length, length: 5, in: "", err: ErrBodyTooShort},
		{name: "until close", framing: UntilClose, in: "hello world", data: "hello world"},
		{name: "until close, large", framing: UntilClose, in: strings.Repeat("z", 50000), data: strings.Repeat("z", 50000)},
		{name: "until close, empty", framing: UntilClose, in: ""},
	})
}

func TestBodyChunked(t *testing.T) {
	const end = "0\r\n\r\n"
	runBodyCases(t, []bodyCase{
		{name: "one chunk", framing: Chunked, in: "5\r\nhello\r\n" + end + "NEXT", data: "hello", rest: "NEXT"},
		{name: "chunks", framing: Chunked, in: "5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n" + end + "NEXT", data: "hello world", rest: "NEXT"},
		{name: "empty body", framing: Chunked, in: end + "NEXT", rest: "NEXT"},
		{name: "extensions", framing: Chunked, in: "5;a=b\r\nhello\r\n3 ; x=\"1;2\" ;y\r\nabc\r\n2\t;z\r\nde\r\n0;last=1\r\n\r\nNEXT",
			data: "helloabcde", rest: "NEXT"},
		{name: "extension without a name", framing: Chunked, in: "1;\r\nx\r\n0\r\n\r\n", err: ErrChunkFormat},
		{name: "last chunk extension without a name", framing: Chunked, in: "0; \r\n\r\n", err: ErrChunkFormat},
		{name: "extension name not a token", framing: Chunked, in: "1;=x\r\nx\r\n0\r\n\r\n", err: ErrChunkFormat},
		{name: "hex", framing: Chunked, in: "A\r\n0123456789\r\na\r\nabcdefghij\r\n1F\r\n" + strings.Repeat("q", 31) + "\r\n" + end,
			data: "0123456789abcdefghij" + strings.Repeat("q", 31)},
		{name: "leading zeros", framing: Chunked, in: "0005\r\nhello\r\n000\r\n\r\n", data: "hello"},
		{name: "15 hex digits", framing: Chunked, in: "000000000000001\r\nx\r\n" + end, data: "x"},
		{name: "largest size", framing: Chunked, in: "fffffffffffffff\r\nabc", data: "abc", err: ErrBodyTooShort},
		{name: "16 hex digits", framing: Chunked, in: "0000000000000001\r\nx\r\n" + end, err: ErrChunkFormat},
		{name: "chunk larger than the buffer", framing: Chunked, in: "9c40\r\n" + strings.Repeat("y", 40000) + "\r\n" + end + "NEXT",
			data: strings.Repeat("y", 40000), rest: "NEXT"},
		{name: "trailer", framing: Chunked, in: "1\r\nx\r\n0\r\nX-A: 1\r\nx-b:  2 \t\r\nX-C:\r\n\r\nNEXT",
			data: "x", trailer: "X-A:1 | x-b:2 | X-C:", rest: "NEXT"},
		{name: "many trailer fields", framing: Chunked, in: "0\r\n" + strings.Repeat("T: v\r\n", 20) + "\r\n",
			trailer: strings.TrimSuffix(strings.Repeat("T:v | ", 20), " | ")},
		{name: "trailer at its limit", framing: Chunked, in: "0\r\n" + strings.Repeat(fieldOf("T", 4000)+"\r\n", 4) + fieldOf("U", 384) + "\r\n\r\n",
			trailer: strings.Repeat("T:"+strings.Repeat("v", 3997)+" | ", 4) + "U:" + strings.Repeat("v", 381)},
		{name: "trailer over its limit", framing: Chunked, in: "0\r\n" + strings.Repeat(fieldOf("T", 4000)+"\r\n", 4) + fieldOf("U", 385) + "\r\n\r\n",
			err: ErrTrailerTooLarge},

		{name: "plus", framing: Chunked, in: "+5\r\nhello\r\n" + end, err: ErrChunkFormat},
		{name: "minus", framing: Chunked, in: "-5\r\nhello\r\n" + end, err: ErrChunkFormat},
		{name: "0x", framing: Chunked, in: "0x5\r\nhello\r\n" + end, err: ErrChunkFormat},
		{name: "two sizes", framing: Chunked, in: "5 5\r\nhello\r\n" + end, err: ErrChunkFormat},
		{name: "empty size line", framing: Chunked, in: "\r\nhello\r\n" + end, err: ErrChunkFormat},
		{name: "space before the size", framing: Chunked, in: " 5\r\nhello\r\n" + end, err: ErrChunkFormat},
		{name: "space after the size", framing: Chunked, in: "5 \r\nhello\r\n" + end, err: ErrChunkFormat},
		{name: "not hex", framing: Chunked, in: "g\r\nhello\r\n" + end, err: ErrChunkFormat},
		{name: "extension first", framing: Chunked, in: ";5\r\nhello\r\n" + end, err: ErrChunkFormat},
		{name: "control byte in an extension", framing: Chunked, in: "5;a\x01\r\nhello\r\n" + end, err: ErrChunkFormat},
		{name: "CR in an extension", framing: Chunked, in: "5;a\rb\r\nhello\r\n" + end, err: ErrChunkFormat},
		{name: "bare LF after the size", framing: Chunked, in: "5\nhello\r\n" + end, err: ErrChunkFormat},
		{name: "data longer than the size", framing: Chunked, in: "5\r\nhelloX\r\n" + end, data: "hello", err: ErrChunkFormat},
		{name: "no CRLF after the data", framing: Chunked, in: "5\r\nhello0\r\n\r\n", data: "hello", err: ErrChunkFormat},
		{name: "bare LF after the data", framing: Chunked, in: "5\r\nhello\n" + end, data: "hello", err: ErrChunkFormat},
		{name: "bare CR after the data", framing: Chunked, in: "5\r\nhello\r0\r\n\r\n", data: "hello", err: ErrChunkFormat},
		{name: "bare LF after the last chunk", framing: Chunked, in: "0\n\r\n", err: ErrChunkFormat},
		{name: "bare LF ending the trailer", framing: Chunked, in: "0\r\n\n", err: ErrChunkFormat},
		{name: "bare LF after a trailer field", framing: Chunked, in: "0\r\nX: 1\n\r\n", err: ErrChunkFormat},
		{name: "trailer name with a space", framing: Chunked, in: "0\r\nBad Name: x\r\n\r\n", err: ErrChunkFormat},
		{name: "trailer without a colon", framing: Chunked, in: "0\r\nNoColon\r\n\r\n", err: ErrChunkFormat},
		{name: "trailer without a name", framing: Chunked, in: "0\r\n: x\r\n\r\n", err: ErrChunkFormat},
		{name: "trailer with NUL", framing: Chunked, in: "0\r\nX: a\x00\r\n\r\n", err: ErrChunkFormat},
		{name: "folded trailer", framing: Chunked, in: "0\r\nX: a\r\n b\r\n\r\n", err: ErrChunkFormat},
		{name: "size line over 4 KiB, never ending", framing: Chunked, in: "5;" + strings.Repeat("e", 20000), err: ErrChunkFormat},

		{name: "truncated in the size", framing: Chunked, in: "5", err: ErrBodyTooShort},
		{name: "truncated before the size", framing: Chunked, in: "", err: ErrBodyTooShort},
		{name: "truncated in the data", framing: Chunked, in: "5\r\nhel", data: "hel", err: ErrBodyTooShort},
		{name: "truncated after the data", framing: Chunked, in: "5\r\nhello", data: "hello", err: ErrBodyTooShort},
		{name: "truncated in the CRLF", framing: Chunked, in: "5\r\nhello\r", data: "hello", err: ErrBodyTooShort},
		{name: "truncated before the last chunk", framing: Chunked, in: "5\r\nhello\r\n", data: "hello", err: ErrBodyTooShort},
		{name: "truncated after the last chunk", framing: Chunked, in: "0\r\n", err: ErrBodyTooShort},
		{name: "truncated in the trailer", framing: Chunked, in: "0\r\nX: 1\r\n", err: ErrBodyTooShort},
		{name: "truncated in the final CRLF", framing: Chunked, in: "0\r\n\r", err: ErrBodyTooShort},
	})
}

// TestChunkLineLimitAnyRead: body.go's line() refuses a chunk-size or
// trailer line longer than 4096 bytes only while the line's LF has not
// arrived: the same line is accepted when it comes in one read and
// refused when it trickles in. The outcome must not depend on how the
// bytes were split.
func TestChunkLineLimitAnyRead(t *testing.T) {
	for _, tt := range []struct{ name, in string }{
		{"extension", "5;" + strings.Repeat("e", 5000) + "\r\nhello\r\n0\r\n\r\n"},
		{"trailer field", "0\r\n" + fieldOf("T", 5000) + "\r\n\r\n"},
	} {
		var results []string
		for _, feed := range feeds {
			rd, _ := newFeed(tt.in, feed.wrap)
			var b Body
			b.Reset(rd, Chunked, 0, false)
			data, err := readBody(&b, nil)
			results = append(results, fmt.Sprintf("%s: body %d bytes, error %s", feed.name, len(data), errName(err)))
		}
		if results[0][len("whole"):] != results[1][len("onebyte"):] {
			t.Errorf("%s line of over 4 KiB:\n\t%s\n\t%s", tt.name, results[0], results[1])
		}
	}
}

// scriptReader hands out its segments one per Read, calling onRead first.
type scriptReader struct {
	segs   []string
	onRead func()
}

func (s *scriptReader) Read(p []byte) (int, error) {
	if s.onRead != nil {
		s.onRead()
	}
	if len(s.segs) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.segs[0])
	if s.segs[0] = s.segs[0][n:]; s.segs[0] == "" {
		s.segs = s.segs[1:]
	}
	return n, nil
}

// chunkedData returns how many data bytes of the valid chunked body enc
// lie within its first n bytes behind a complete chunk-size line: what a
// reader that has received n bytes could hand out.
func chunkedData(enc string, n int) int {
	total, pos := 0, 0
	for {
		i := strings.Index(enc[pos:], "\r\n")
		if i < 0 || pos+i+2 > n {
			return total
		}
		sizeText := enc[pos : pos+i]
		if j := strings.IndexByte(sizeText, ';'); j >= 0 {
			sizeText = sizeText[:j]
		}
		size, _ := strconv.ParseInt(strings.TrimSpace(sizeText), 16, 64)
		if size == 0 {
			return total
		}
		start := pos + i + 2
		total += int(min(size, int64(max(0, n-start))))
		pos = start + int(size) + 2
		if pos > n {
			return total
		}
	}
}

// encodeChunked encodes data in chunks of the given sizes, with an
// extension now and then, and the trailer lines.
func encodeChunked(data string, sizes []int, trailer ...string) string {
	var b strings.Builder
	for i, n := range sizes {
		fmt.Fprintf(&b, "%x", n)
		if i%3 == 1 {
			b.WriteString(";ext=v")
		}
		b.WriteString("\r\n" + data[:n] + "\r\n")
		data = data[n:]
	}
	b.WriteString("0\r\n")
	for _, l := range trailer {
		b.WriteString(l + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// TestNextContract checks Next's promises on chunked and Length bodies,
// split into reads every possible way (for short bodies) and at random:
//   - it never reads while it could hand out body bytes already buffered;
//   - it returns (nil, nil) only after progress, when the buffer runs dry;
//   - it never returns (nil, nil) twice without reading in between.
func TestNextContract(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	type body struct {
		enc     string
		framing Framing
		length  int64
		data    string
	}
	var bodies []body
	data := strings.Repeat("0123456789abcdef", 40)
	for _, sizes := range [][]int{{1}, {3, 2}, {1, 1, 1}, {5, 10, 1}, {16, 200, 7}, {}} {
		n := 0
		for _, s := range sizes {
			n += s
		}
		bodies = append(bodies, body{encodeChunked(data, sizes), Chunked, 0, data[:n]})
		bodies = append(bodies, body{encodeChunked(data, sizes, "X-T: 1", "Y: 2"), Chunked, 0, data[:n]})
	}
	bodies = append(bodies, body{data[:100], Length, 100, data[:100]})

	for bi, bd := range bodies {
		var splits [][]int
		if len(bd.enc) <= 40 {
			for i := 1; i < len(bd.enc); i++ {
				for j := i; j < len(bd.enc); j++ {
					splits = append(splits, []int{i, j})
				}
			}
		}
		for range 200 {
			var cut []int
			for p := 0; p < len(bd.enc); p += 1 + rng.Intn(8) {
				cut = append(cut, p)
			}
			splits = append(splits, cut)
		}
		ones := make([]int, len(bd.enc))
		for i := range ones {
			ones[i] = i
		}
		splits = append(splits, ones)

		for _, cut := range splits {
			var segs []string
			prev := 0
			for _, c := range append(cut, len(bd.enc)) {
				if c > prev {
					segs = append(segs, bd.enc[prev:c])
					prev = c
				}
			}
			desc := fmt.Sprintf("body %d split %q", bi, segs)
			delivered, returned, reads := 0, 0, 0
			sr := &scriptReader{segs: segs}
			sr.onRead = func() {
				reads++
				avail := int(min(int64(delivered), bd.length))
				if bd.framing == Chunked {
					avail = chunkedData(bd.enc, delivered)
				}
				if avail > returned {
					t.Fatalf("%s: Next reads with %d body bytes buffered", desc, avail-returned)
				}
				if len(sr.segs) > 0 {
					delivered += len(sr.segs[0])
				}
			}
			rd := NewReader(sr, false)
			var b Body
			b.Reset(rd, bd.framing, bd.length, false)
			var got []byte
			lastNil, readsAtNil := false, 0
			for i := 0; ; i++ {
				consumedBefore := delivered - rd.Buffered()
				p, err := b.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%s: %v", desc, err)
				}
				returned += len(p)
				got = append(got, p...)
				if p != nil {
					lastNil = false
					continue
				}
				if rd.Buffered() != 0 {
					t.Fatalf("%s: (nil, nil) with %d bytes buffered", desc, rd.Buffered())
				}
				if delivered-rd.Buffered() == consumedBefore {
					t.Fatalf("%s: (nil, nil) without progress", desc)
				}
				if lastNil && reads == readsAtNil {
					t.Fatalf("%s: (nil, nil) twice without reading", desc)
				}
				lastNil, readsAtNil = true, reads
			}
			if string(got) != bd.data {
				t.Fatalf("%s: body %q, want %q", desc, got, bd.data)
			}
			if rd.Buffered() != 0 || len(sr.segs) != 0 {
				t.Fatalf("%s: %d bytes left", desc, rd.Buffered())
			}
		}
	}
}

// TestNextNilAtChunkBoundary spells out one sequence: the CRLF after a
// chunk arrives alone, Next consumes it and returns (nil, nil) rather than
// wait for the next chunk, and then reads.
func TestNextNilAtChunkBoundary(t *testing.T) {
	sr := &scriptReader{segs: []string{"5\r\nhello", "\r\n", "3\r\nabc\r\n0\r\n\r\n"}}
	cr := &countingReader{r: sr}
	rd := NewReader(cr, false)
	var b Body
	b.Reset(rd, Chunked, 0, false)
	type step struct {
		p     string
		err   error
		reads int
	}
	want := []step{{"hello", nil, 1}, {"", nil, 2}, {"abc", nil, 3}, {"", io.EOF, 3}}
	for i, w := range want {
		p, err := b.Next()
		if string(p) != w.p || err != w.err || cr.n != w.reads {
			t.Errorf("Next #%d = %q, %v after %d reads; want %q, %v after %d", i+1, p, err, cr.n, w.p, w.err, w.reads)
		}
	}
}

// TestPipelinedRequests reads several requests with bodies, back to back
// in one buffer.
func TestPipelinedRequests(t *testing.T) {
	in := "POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" +
		"POST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x\r\nde\r\n0\r\nX-T: 1\r\n\r\n" +
		"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n" +
		"\r\n" + // an empty line between requests is skipped
		"POST /4 HTTP/1.0\r\nContent-Length: 3\r\n\r\nxyz" +
		"PUT /5 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n1\r\nq\r\n0\r\n\r\n" +
		"DELETE /6 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
	want := []struct {
		target, body, trailer string
		framing               Framing
	}{
		{"/1", "hello", "", Length},
		{"/2", "abcde", "X-T:1", Chunked},
		{"/3", "", "", NoBody},
		{"/4", "xyz", "", Length},
		{"/5", "q", "", Chunked},
		{"/6", "", "", NoBody},
	}
	for _, feed := range feeds {
		rd, _ := newFeed(in, feed.wrap)
		var req Request
		var b Body
		for i, w := range want {
			if _, err := rd.ReadRequest(&req); err != nil {
				t.Fatalf("%s: request %d: %v", feed.name, i+1, err)
			}
			if err := req.Frame(); err != nil {
				t.Fatalf("%s: request %d: %v", feed.name, i+1, err)
			}
			target := string(req.Target) // valid only until the body is read
			b.Reset(rd, req.Framing, req.ContentLength, false)
			data, err := readBody(&b, nil)
			if err != nil {
				t.Fatalf("%s: request %d body: %v", feed.name, i+1, err)
			}
			if target != w.target || string(data) != w.body || req.Framing != w.framing || fieldsString(b.Trailers()) != w.trailer {
				t.Errorf("%s: request %d = %s %s body %q trailer %q; want %s %s %q %q", feed.name, i+1,
					target, framingName(req.Framing), data, fieldsString(b.Trailers()), w.target, framingName(w.framing), w.body, w.trailer)
			}
		}
		if started, err := rd.ReadRequest(&req); started || err != io.EOF {
			t.Errorf("%s: after the last request: %v, %v; want false, EOF", feed.name, started, err)
		}
	}
}

// TestPipelinedResponses reads responses of every framing back to back.
func TestPipelinedResponses(t *testing.T) {
	in := "HTTP/1.1 100 Continue\r\n\r\n" +
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi" +
		"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n" +
		"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n" + // answers HEAD
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nGrpc-Status: 0\r\n\r\n" +
		"HTTP/1.1 304 Not Modified\r\n\r\n" +
		"HTTP/1.1 200 OK\r\n\r\nuntil the end"
	want := []struct {
		head    bool
		status  int
		body    string
		trailer string
	}{
		{false, 100, "", ""}, {false, 200, "hi", ""}, {false, 204, "", ""}, {true, 200, "", ""},
		{false, 200, "ok", "Grpc-Status:0"}, {false, 304, "", ""}, {false, 200, "until the end", ""},
	}
	for _, feed := range feeds {
		rd, _ := newFeed(in, feed.wrap)
		var resp Response
		var b Body
		for i, w := range want {
			if _, err := rd.ReadResponse(&resp, w.head); err != nil {
				t.Fatalf("%s: response %d: %v", feed.name, i+1, err)
			}
			status := resp.Status
			b.Reset(rd, resp.Framing, resp.ContentLength, true)
			data, err := readBody(&b, nil)
			if err != nil {
				t.Fatalf("%s: response %d body: %v", feed.name, i+1, err)
			}
			if status != w.status || string(data) != w.body || fieldsString(b.Trailers()) != w.trailer {
				t.Errorf("%s: response %d = %d %q %q; want %d %q %q", feed.name, i+1, status, data, fieldsString(b.Trailers()), w.status, w.body, w.trailer)
			}
		}
	}
}

// TestTrailerOutlivesBuffer: the trailer is copied out of the connection's
// buffer, so it stays valid while the next message is read.
func TestTrailerOutlivesBuffer(t *testing.T) {
	in := "1\r\nx\r\n0\r\nX-A: one\r\nX-B: two\r\n\r\n" + "GET / HTTP/1.1\r\nHost: " + strings.Repeat("h", 15000) + "\r\n\r\n"
	for _, feed := range feeds {
		rd, _ := newFeed(in, feed.wrap)
		var b Body
		b.Reset(rd, Chunked, 0, false)
		if _, err := readBody(&b, nil); err != nil {
			t.Fatal(err)
		}
		var req Request
		if _, err := rd.ReadRequest(&req); err != nil {
			t.Fatal(err)
		}
		if got := fieldsString(b.Trailers()); got != "X-A:one | X-B:two" {
			t.Errorf("%s: trailer after the next head = %q", feed.name, got)
		}
		// A Reset keeps nothing of the last trailer.
		b.Reset(rd, Length, 1, false)
		if len(b.Trailers()) != 0 || b.Done() {
			t.Errorf("%s: after Reset: trailer %q, Done %v", feed.name, fieldsString(b.Trailers()), b.Done())
		}
	}
}

// TestRequestHeadValidWhileBodyIsRead holds the head to what request.go
// and field.go document: its slices "are valid until the body is read".
// They are not: when the body's first bytes are not yet buffered, take
// moves r and w back to 0 and reads the body over the head. The proxy
// relies on the documented promise: forward.go's exchange computes
// head := string(req.Method) == "HEAD" after sendBody, so a POST whose
// 4-byte body "HEAD" arrives after its head is taken for a HEAD request;
// the response body is then left unread on a pooled target connection
// and served to the next client as its response (reproduced end to end).
func TestRequestHeadValidWhileBodyIsRead(t *testing.T) {
	sr := &scriptReader{segs: []string{"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n", "HEAD"}}
	rd := NewReader(sr, false)
	var req Request
	if _, err := rd.ReadRequest(&req); err != nil {
		t.Fatal(err)
	}
	if err := req.Frame(); err != nil {
		t.Fatal(err)
	}
	var b Body
	b.Reset(rd, req.Framing, req.ContentLength, false)
	for !b.Done() {
		p, err := b.Next()
		if err != nil {
			t.Fatal(err)
		}
		if string(req.Method) != "POST" || string(req.Target) != "/x" || string(req.Host) != "a" {
			t.Fatalf("after Next returned %q, the head reads Method %q, Target %q, Host %q; want POST /x a",
				p, req.Method, req.Target, req.Host)
		}
	}
}
