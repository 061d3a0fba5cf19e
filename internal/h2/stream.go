package h2

import (
	"errors"

	"github.com/latch-lb/latch/internal/h1"
)

// Stream is one request and its response. Its writer methods send the
// response: WriteHead, then Write, then optionally WriteTrailers; they
// never wait: Write takes what flow control and the output buffer allow,
// and the Handler's Writable says when to go on.
type Stream struct {
	ID uint32
	// User is the handler's, for its own state of the stream.
	User any

	c          *Conn
	sendWindow int64 // what the client lets latch send on the stream
	recvWindow int64 // what the client may still send
	given      int64 // consumed and not yet given back
	held       int64 // body bytes the handler has and has not consumed
	declared   int64 // content-length; -1: none
	received   int64
	blockedAt  int64 // when a write was cut short by the window (unix ns)
	endRecv    bool  // the client ended its side
	headSent   bool
	endSent    bool
	blocked    bool
	refused    bool // its Head had Refuse set: its body is dropped
	gone       bool // over: the handler may not use it again
	// headed says the handler has had the stream's Head: only then is it
	// told the stream is Done (a stream whose header block never ended
	// is nothing to the handler).
	headed bool
}

// Errors of a Stream's writer.
var (
	ErrStreamEnded = errors.New("h2: the stream's response has ended")
	ErrNoHead      = errors.New("h2: the response head has not been written")
	ErrHeadWritten = errors.New("h2: the response head was written already")
	ErrStatus      = errors.New("h2: a response status must have three digits")
)

// WriteHead writes the response's header section: the status and fields
// (names are sent in lower case; connection-specific fields, which HTTP/2
// forbids, are left out). end says there is no body.
func (s *Stream) WriteHead(status int, fields []Field, end bool) error {
	switch {
	case s.endSent || s.gone:
		return ErrStreamEnded
	case s.headSent && status >= 200:
		return ErrHeadWritten
	case status < 100 || status > 999:
		return ErrStatus
	}
	c := s.c
	start := len(c.grab())
	c.out = appendHeader(c.out, 0, FrameHeaders, 0, s.ID)
	c.out = appendStatus(c.out, status)
	c.encodeFields(fields)
	if status >= 200 {
		s.headSent = true
	} else {
		end = false // an interim response (100 Continue) ends nothing
	}
	c.endHeaders(start, s.ID, end)
	if end {
		s.ended()
	}
	return nil
}

// WriteTrailers writes the response's trailer section, which ends it.
func (s *Stream) WriteTrailers(fields []Field) error {
	switch {
	case s.endSent || s.gone:
		return ErrStreamEnded
	case !s.headSent:
		return ErrNoHead
	}
	c := s.c
	start := len(c.grab())
	c.out = appendHeader(c.out, 0, FrameHeaders, 0, s.ID)
	c.encodeFields(fields)
	c.endHeaders(start, s.ID, true)
	s.ended()
	return nil
}

// encodeFields encodes fields with names in lower case, dropping those
// HTTP/2 forbids (RFC 9113 §8.2.2).
func (c *Conn) encodeFields(fields []Field) {
	for _, f := range fields {
		switch h1.KindOf(f.Name) {
		case h1.KindConnection, h1.KindKeepAlive, h1.KindProxyConnection, h1.KindTransferEncoding,
			h1.KindUpgrade, h1.KindHTTP2Settings, h1.KindTE:
			continue
		}
		name := f.Name
		for _, b := range name {
			if 'A' <= b && b <= 'Z' {
				c.lower = append(c.lower[:0], name...)
				for i, b := range c.lower {
					if 'A' <= b && b <= 'Z' {
						c.lower[i] = b + 'a' - 'A'
					}
				}
				name = c.lower
				break
			}
		}
		c.out = appendField(c.out, name, f.Value)
	}
}

// endHeaders fills in the HEADERS frame begun at start, splitting its
// block into CONTINUATION frames when it is over the client's frame size.
func (c *Conn) endHeaders(start int, id uint32, end bool) {
	var flags uint8 = flagEndHeaders
	if end {
		flags |= flagEndStream
	}
	n := len(c.out) - start - headerLen
	if n <= c.peerFrame {
		putLength(c.out[start:], n)
		c.out[start+4] = flags
		return
	}
	block := append([]byte(nil), c.out[start+headerLen:]...) // rare: heads over 16 KiB
	c.out = c.out[:start]
	for first := true; len(block) > 0 || first; first = false {
		k := min(len(block), c.peerFrame)
		t, f := FrameContinuation, uint8(0)
		if first {
			t, f = FrameHeaders, flags&flagEndStream
		}
		if k == len(block) {
			f |= flagEndHeaders
		}
		c.out = appendHeader(c.out, k, t, f, id)
		c.out = append(c.out, block[:k]...)
		block = block[k:]
	}
}

// Write writes a part of the response body, as much of p as the client's
// windows and the output buffer take, and returns how much that was. When
// it is less than len(p), the rest waits for the Handler's Writable. end
// marks the last part; it takes effect only once all of p is written.
func (s *Stream) Write(p []byte, end bool) (int, error) {
	switch {
	case s.endSent || s.gone:
		return 0, ErrStreamEnded
	case !s.headSent:
		return 0, ErrNoHead
	}
	c := s.c
	n := 0
	for {
		room := min(s.sendWindow, c.sendWindow, int64(maxOut-(len(c.out)-c.o)), int64(c.peerFrame))
		k := min(len(p)-n, int(max(room, 0)))
		last := n+k == len(p)
		if k == 0 && !(last && end) {
			break
		}
		var flags uint8
		if last && end {
			flags = flagEndStream
		}
		out := c.grab()
		out = appendHeader(out, k, FrameData, flags, s.ID)
		c.out = append(out, p[n:n+k]...)
		n += k
		s.sendWindow -= int64(k)
		c.sendWindow -= int64(k)
		if last {
			break
		}
	}
	if n < len(p) {
		s.blocked = true
		if s.blockedAt == 0 && (s.sendWindow <= 0 || c.sendWindow <= 0) {
			s.blockedAt = nowNano()
		}
		return n, nil
	}
	if end {
		s.ended()
	}
	return n, nil
}

// ended closes the stream once its response has ended. A client still
// sending its body is told to stop with RST_STREAM NO_ERROR (§8.1).
func (s *Stream) ended() {
	s.endSent = true
	c := s.c
	c.remove(s, !s.endRecv)
	if !s.endRecv {
		c.streamError(s.ID, NoError)
	}
	c.free(s)
}

// Reset resets the stream (a target's response cut short: CANCEL or
// INTERNAL_ERROR). The stream is over.
func (s *Stream) Reset(code ErrCode) {
	if s.gone {
		return
	}
	c := s.c
	c.remove(s, true)
	c.streamError(s.ID, code)
	c.free(s)
}

// Consume gives n bytes of the request body back to the client's window,
// once the handler has used them.
func (s *Stream) Consume(n int) {
	k := min(int64(n), s.held)
	s.held -= k
	s.c.credit(k)
	s.given += int64(n)
	s.flushCredit()
}

// flushCredit sends a WINDOW_UPDATE for the stream once half its window
// is due (none after the client ended the stream).
func (s *Stream) flushCredit() {
	c := s.c
	if s.endRecv || s.given < int64(c.cfg.StreamWindow)/2 {
		return
	}
	c.windowUpdateOut(s.ID, s.given)
	s.recvWindow += s.given
	s.given = 0
}

// Conn returns the stream's connection, for Post.
func (s *Stream) Conn() *Conn { return s.c }
