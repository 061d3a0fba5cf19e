package h2

import (
	"encoding/binary"
	"sync"
	"time"

	"golang.org/x/net/http2/hpack"
)

// Handler serves the streams of a connection. Its methods are called in
// the connection's goroutine (an event loop's, or Serve's), one at a time;
// the Stream's writer methods must be called there too (from a Handler
// call, or a function given to Post).
//
// A stream belongs to the handler from Head until it ends it (its last
// write, WriteTrailers, or Reset) or until Done: after either, the
// *Stream must not be used again (it is reused).
type Handler interface {
	// Head is a new request's header section. h.End says it has no body.
	Head(s *Stream, h *Head)
	// Data is a part of the request body; end marks the last. p is valid
	// only during the call; call s.Consume when it has been used, to let
	// the client send more.
	Data(s *Stream, p []byte, end bool)
	// Trailers is the request's trailer section, which ends its body.
	Trailers(s *Stream, fields []Field)
	// Writable says that a stream whose write was cut short by flow
	// control or a full output buffer can take more.
	Writable(s *Stream)
	// Done says the stream ended without the handler: the client reset it
	// (code is its code), it was reset for an error or a stall, or the
	// connection went away. Whatever the handler does for it (a request
	// to a target) is to be aborted.
	Done(s *Stream, code ErrCode)
}

// Config is a connection's configuration; every zero value means the
// default named.
type Config struct {
	// MaxStreams is the limit on concurrent streams advertised and
	// enforced (REFUSED_STREAM beyond it); 0: 128, ALB's.
	MaxStreams int
	// StreamWindow is each stream's receive window; 0: 256 KiB.
	StreamWindow int
	// ConnWindow is the connection's receive window; 0: 1 MiB.
	ConnWindow int
	// MaxHeaderList is SETTINGS_MAX_HEADER_LIST_SIZE, the largest header
	// section decoded (as HPACK counts it: each field's name and value plus
	// 32 bytes); 0: 80 KiB, more than any head within h1's limits counts.
	// A header block on the wire may be at most as large again as this
	// (plus 9 bytes a frame) before the connection is closed.
	MaxHeaderList int
	// FloodLimit bounds, per second, the frames that cost work and carry
	// none (PING, SETTINGS, empty DATA, frames on closed streams, streams
	// refused for the concurrency limit); past it: GOAWAY
	// ENHANCE_YOUR_CALM. 0: 1000.
	FloodLimit int
	// ResetLimit bounds, per second, the streams the client resets before
	// their response ended (CVE-2023-44487's rapid reset); past it:
	// GOAWAY ENHANCE_YOUR_CALM. 0: 200.
	ResetLimit int
	// IdleTimeout closes a connection with no stream open for that long
	// (GOAWAY NO_ERROR); 0: never.
	IdleTimeout time.Duration
	// StallTimeout resets (CANCEL) a stream whose response has waited that
	// long on a flow-control window the client does not open, so that a
	// client cannot hold a handler's buffers forever; 0: 60 s.
	StallTimeout time.Duration
	// WriteTimeout closes a connection (on Serve) whose socket takes
	// nothing for that long; 0: never.
	WriteTimeout time.Duration
	// Counters, when set, counts the attacks answered and other events,
	// for the metrics; connections may share one.
	Counters *Counters
}

func (cfg Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.MaxStreams, 128)
	def(&cfg.StreamWindow, 256<<10)
	def(&cfg.ConnWindow, 1<<20)
	def(&cfg.MaxHeaderList, 80<<10)
	def(&cfg.FloodLimit, 1000)
	def(&cfg.ResetLimit, 200)
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = 60 * time.Second
	}
	cfg.StreamWindow = min(cfg.StreamWindow, maxWindow)
	cfg.ConnWindow = min(cfg.ConnWindow, maxWindow)
	if cfg.Counters == nil {
		cfg.Counters = new(Counters)
	}
	return cfg
}

// inBufSize holds a frame of the largest size latch accepts, with room to
// read the next ones behind it.
const inBufSize = 32 << 10

// maxOut is how much output a connection queues before a stream's Write
// takes no more (the socket is slow): backpressure to the handler.
const maxOut = 64 << 10

// maxQueuedControl bounds the control frames (ACKs, RST_STREAM) queued
// for a socket that does not drain: past it, the peer reads too slowly for
// what it asks (a flood) and the connection is closed.
const maxQueuedControl = 10000

var (
	inBufs  = sync.Pool{New: func() any { b := make([]byte, inBufSize); return &b }}
	outBufs = sync.Pool{New: func() any { b := make([]byte, 0, maxOut+minMaxFrame+2*headerLen); return &b }}
	streams = sync.Pool{New: func() any { return new(Stream) }}
)

// Conn is the server side of one HTTP/2 connection, driven by its owner:
// bytes read from the socket go in through ReadBuf and Received, bytes to
// write come out through Pending and Wrote. Serve drives one on a
// net.Conn; an event loop drives it from its readiness events. It holds a
// buffer only while a frame is half read or output waits for the socket.
type Conn struct {
	h   Handler
	cfg Config
	ctr *Counters

	inp  *[]byte // the read buffer, nil while nothing is buffered
	r, w int     // unprocessed input is (*inp)[r:w]
	outp *[]byte // the output buffer, nil while nothing waits
	out  []byte  // output not yet written: (*outp)[o:]
	o    int

	prefaceN    int  // bytes of the client's preface seen
	gotSettings bool // the client's first frame, SETTINGS, came

	dec    *hpack.Decoder
	blk    block
	head   Head
	contID uint32 // the stream whose header block continues; 0: none

	streams     []*Stream // open streams
	dead        []*Stream // streams over, for reap
	maxClientID uint32    // the highest stream the client opened
	closed      [32]uint32
	closedPos   uint8

	sendWindow  int64 // the client's connection window for what latch sends
	recvWindow  int64 // what the client may still send on the connection
	recvUnacked int64 // received and not yet given back with WINDOW_UPDATE
	peerWindow  int64 // the client's SETTINGS_INITIAL_WINDOW_SIZE
	peerFrame   int   // the client's SETTINGS_MAX_FRAME_SIZE

	goaway    bool  // GOAWAY sent: streams above maxClientID are ignored
	fatal     bool  // a connection error: no more input, close when written
	queuedCtl int   // control frames in out
	floodAt   int64 // the second floodN counts in
	floodN    int
	resetAt   int64
	resetN    int
	idleSince int64 // when the last stream ended (unix ns); 0 while streams are open
	lower     []byte
	snap      []*Stream

	// Serve's state, shared with Post.
	mu      sync.Mutex
	tasks   []func()
	spare   []func() // the tasks slice not in use, the connection goroutine's
	reading bool
	wake    func()
	rawFn   func(fd uintptr) bool
	rawN    int
	rawErr  error
}

// NewConn returns a connection that serves its streams to h, and has its
// server preface (SETTINGS, and the connection window) ready to write.
func NewConn(h Handler, cfg Config) *Conn {
	c := &Conn{h: h, cfg: cfg.withDefaults()}
	c.ctr = c.cfg.Counters
	c.dec = hpack.NewDecoder(4096, c.emit)
	// One string may be as long as the list limit, and no longer.
	c.dec.SetMaxStringLength(c.cfg.MaxHeaderList)
	c.sendWindow, c.recvWindow = defaultWindow, int64(c.cfg.ConnWindow)
	c.peerWindow, c.peerFrame = defaultWindow, minMaxFrame
	c.idleSince = time.Now().UnixNano()
	c.head.Fields = make([]Field, 0, 16)
	c.start()
	c.ctr.Conns.Add(1)
	return c
}

func (c *Conn) start() {
	out := c.grab()
	out = appendHeader(out, 4*6, FrameSettings, 0, 0)
	for _, s := range [...][2]uint32{
		{settingMaxConcurrentStreams, uint32(c.cfg.MaxStreams)},
		{settingInitialWindowSize, uint32(c.cfg.StreamWindow)},
		{settingMaxHeaderListSize, uint32(c.cfg.MaxHeaderList)},
		{settingEnablePush, 0},
	} {
		out = append(out, byte(s[0]>>8), byte(s[0]))
		out = appendUint32(out, s[1])
	}
	if inc := c.cfg.ConnWindow - defaultWindow; inc > 0 {
		out = appendHeader(out, 4, FrameWindowUpdate, 0, 0)
		out = appendUint32(out, uint32(inc))
	}
	c.out = out
}

// grab returns the output buffer, taking one from the pool if need be.
func (c *Conn) grab() []byte {
	if c.outp == nil {
		c.outp = outBufs.Get().(*[]byte)
		c.out, c.o = (*c.outp)[:0], 0
	}
	return c.out
}

// ReadBuf returns the space to read the socket into, taking a buffer from
// the pool if the connection holds none.
func (c *Conn) ReadBuf() []byte {
	if c.inp == nil {
		c.inp = inBufs.Get().(*[]byte)
		c.r, c.w = 0, 0
	}
	b := *c.inp
	if c.r > 0 && len(b)-c.w < headerLen+c.frameNeed() {
		c.w = copy(b, b[c.r:c.w])
		c.r = 0
	}
	return b[c.w:]
}

// frameNeed is the length of the frame waiting in the buffer, for room.
func (c *Conn) frameNeed() int {
	if c.w-c.r < headerLen {
		return minMaxFrame
	}
	return int(ParseHeader((*c.inp)[c.r:]).Length)
}

// releaseIn gives the read buffer back when it holds nothing.
func (c *Conn) releaseIn() {
	if c.inp != nil && c.r == c.w {
		inBufs.Put(c.inp)
		c.inp = nil
	}
}

// Received processes n bytes just read into ReadBuf's space. Handler
// calls are made from it.
func (c *Conn) Received(n int) {
	c.w += n
	if !c.fatal {
		c.process()
	}
	if c.fatal {
		c.r = c.w // nothing more is read from a connection in error
	}
	c.releaseIn()
	c.reap()
}

func (c *Conn) process() {
	b := *c.inp
	for c.r < c.w && !c.fatal {
		if c.prefaceN < len(Preface) {
			k := min(len(Preface)-c.prefaceN, c.w-c.r)
			if string(b[c.r:c.r+k]) != Preface[c.prefaceN:c.prefaceN+k] {
				c.ctr.BadPreface.Add(1)
				c.connError(ProtocolError)
				return
			}
			c.prefaceN += k
			c.r += k
			continue
		}
		if c.w-c.r < headerLen {
			return
		}
		fh := ParseHeader(b[c.r:])
		if fh.Length > minMaxFrame {
			// latch advertises no larger SETTINGS_MAX_FRAME_SIZE.
			c.connError(FrameSizeError)
			return
		}
		end := c.r + headerLen + int(fh.Length)
		if end > c.w {
			return
		}
		p := b[c.r+headerLen : end]
		c.r = end
		c.frame(fh, p)
	}
}

// frame handles one frame.
func (c *Conn) frame(fh FrameHeader, p []byte) {
	if !c.gotSettings {
		if fh.Type != FrameSettings || fh.Flags&flagAck != 0 {
			c.connError(ProtocolError) // §3.4: the preface ends with SETTINGS
			return
		}
		c.gotSettings = true
	}
	if c.contID != 0 && (fh.Type != FrameContinuation || fh.StreamID != c.contID) {
		c.connError(ProtocolError) // §6.10: a header block is contiguous
		return
	}
	switch fh.Type {
	case FrameData:
		c.data(fh, p)
	case FrameHeaders:
		c.headers(fh, p)
	case FrameContinuation:
		if c.contID == 0 {
			c.connError(ProtocolError)
			return
		}
		c.fragment(fh, p)
	case FramePriority:
		c.priority(fh, p)
	case FrameRSTStream:
		c.rstStream(fh, p)
	case FrameSettings:
		c.settings(fh, p)
	case FramePushPromise:
		c.connError(ProtocolError) // a client cannot push (§8.4)
	case FramePing:
		c.ping(fh, p)
	case FrameGoAway:
		if fh.StreamID != 0 || len(p) < 8 {
			c.connError(ProtocolError)
			return
		}
		// The client opens no more streams; those open go on, and the
		// client closes the connection (or the idle timeout does).
	case FrameWindowUpdate:
		c.windowUpdate(fh, p)
	default:
		// Unknown types are ignored (§4.1, §5.5).
	}
}

// padded strips a frame's padding; ok is false when the pad length is
// not within the frame (a connection error, §6.1).
func padded(fh FrameHeader, p []byte) ([]byte, bool) {
	if fh.Flags&flagPadded == 0 {
		return p, true
	}
	if len(p) == 0 {
		return nil, false
	}
	pad := int(p[0])
	if pad >= len(p) {
		return nil, false
	}
	return p[1 : len(p)-pad], true
}

func (c *Conn) data(fh FrameHeader, p []byte) {
	if fh.StreamID == 0 {
		c.connError(ProtocolError)
		return
	}
	n := int64(len(p))
	if c.recvWindow -= n; c.recvWindow < 0 {
		c.connError(FlowControlError)
		return
	}
	body, ok := padded(fh, p)
	if !ok {
		c.connError(ProtocolError)
		return
	}
	// The connection's window is given back for what no handler holds
	// (padding, frames of streams that are over) at once, for the body a
	// handler holds once it has used it (Consume): what a connection
	// buffers is bounded by its window, not by its streams'.
	c.credit(n - int64(len(body)))
	end := fh.Flags&flagEndStream != 0
	s := c.stream(fh.StreamID)
	if s == nil {
		c.credit(int64(len(body)))
		switch {
		case fh.StreamID > c.maxClientID && c.goaway:
			// A stream above the GOAWAY's last one, ignored (§6.8).
		case fh.StreamID > c.maxClientID:
			c.connError(ProtocolError) // idle (§5.1)
		case !c.resetByUs(fh.StreamID):
			c.glitch()
			c.streamError(fh.StreamID, StreamClosed)
		}
		return
	}
	if s.endRecv {
		c.credit(int64(len(body)))
		c.glitch()
		c.resetStream(s, StreamClosed, true)
		return
	}
	if s.recvWindow -= n; s.recvWindow < 0 {
		c.credit(int64(len(body)))
		c.resetStream(s, FlowControlError, true)
		return
	}
	if len(body) == 0 && !end {
		c.glitch() // an empty frame carries nothing: counted as a flood
		if c.fatal {
			return
		}
	}
	s.given += n - int64(len(body)) // the padding is the handler's to give back
	s.received += int64(len(body))
	if s.declared >= 0 && (s.received > s.declared || end && s.received != s.declared) {
		c.credit(int64(len(body)))
		c.resetStream(s, ProtocolError, true) // §8.1.1: malformed
		return
	}
	if end {
		s.endRecv = true
	}
	if s.refused {
		c.credit(int64(len(body)))
		s.given += int64(len(body)) // a refused request's body is dropped
		s.flushCredit()
		return
	}
	s.held += int64(len(body))
	if len(body) > 0 || end {
		c.h.Data(s, body, end)
		if s.gone {
			return // the handler ended the stream (an early answer)
		}
	}
	if !end {
		s.flushCredit()
	}
}

// credit counts n bytes received on the connection, and gives them back
// to the client once half the window is due.
func (c *Conn) credit(n int64) {
	c.recvUnacked += n
	if c.recvUnacked >= int64(c.cfg.ConnWindow)/2 {
		c.windowUpdateOut(0, c.recvUnacked)
		c.recvWindow += c.recvUnacked
		c.recvUnacked = 0
	}
}

func (c *Conn) windowUpdateOut(id uint32, n int64) {
	out := c.grab()
	out = appendHeader(out, 4, FrameWindowUpdate, 0, id)
	c.out = appendUint32(out, uint32(n))
}

func (c *Conn) headers(fh FrameHeader, p []byte) {
	id := fh.StreamID
	if id == 0 || id&1 == 0 {
		c.connError(ProtocolError) // §5.1.1: clients open odd streams
		return
	}
	p, ok := padded(fh, p)
	if !ok {
		c.connError(ProtocolError)
		return
	}
	selfDep := false
	if fh.Flags&flagPriority != 0 {
		if len(p) < 5 {
			c.connError(FrameSizeError)
			return
		}
		selfDep = binary.BigEndian.Uint32(p)&maxWindow == id
		p = p[5:]
	}
	c.blk = block{id: id, end: fh.Flags&flagEndStream != 0, declared: -1}
	b := &c.blk
	c.head.Fields = c.head.Fields[:0]
	s := c.stream(id)
	switch {
	case s != nil:
		// A second HEADERS: trailers, which must end the stream (§8.1).
		switch {
		case s.endRecv:
			b.code = StreamClosed
		case !b.end:
			b.code = ProtocolError
		}
		b.s, b.trailers = s, true
	case id <= c.maxClientID && c.resetByUs(id):
		// Trailers that crossed latch's RST_STREAM (an answer before the
		// body's end): ignored (§5.1), but decoded, to keep HPACK's table.
	case id <= c.maxClientID:
		if c.wasClosed(id) {
			c.connError(StreamClosed) // §5.1: a closed stream stays closed
		} else {
			c.connError(ProtocolError) // §5.1.1: a stream id may not go back
		}
		return
	case c.goaway:
		// Above the GOAWAY's last stream: ignored (§6.8), but decoded.
	default:
		c.maxClientID = id
		if len(c.streams) >= c.cfg.MaxStreams {
			c.ctr.RefusedStreams.Add(1)
			c.glitch()
			b.code = RefusedStream
			break
		}
		s = c.open(id)
		b.s = s
		if b.end {
			s.endRecv = true
		}
	}
	if selfDep && b.code == NoError {
		b.code = ProtocolError // §5.3.1: a stream cannot depend on itself
	}
	c.fragment(fh, p)
}

// fragment decodes a part of a header block, and finishes the block at
// its end.
func (c *Conn) fragment(fh FrameHeader, p []byte) {
	b := &c.blk
	b.wire += headerLen + len(p)
	if b.wire > 2*c.cfg.MaxHeaderList {
		// A header block without end (the CONTINUATION flood), or one whose
		// fields past the limit keep coming: bounded here.
		c.ctr.ContinuationFloods.Add(1)
		c.connError(EnhanceYourCalm)
		return
	}
	if _, err := c.dec.Write(p); err != nil {
		c.connError(CompressionError)
		return
	}
	if fh.Flags&flagEndHeaders == 0 {
		c.contID = b.id
		return
	}
	c.contID = 0
	if err := c.dec.Close(); err != nil {
		c.connError(CompressionError) // a field cut off at the block's end
		return
	}
	c.endBlock()
}

// endBlock delivers a complete header block to its stream.
func (c *Conn) endBlock() {
	b := &c.blk
	s := b.s
	if s == nil {
		if b.code != NoError {
			c.streamError(b.id, b.code)
		}
		return
	}
	if !b.trailers {
		b.finishHead(&c.head)
	}
	if b.code != NoError {
		c.resetStream(s, b.code, b.trailers)
		return
	}
	if b.trailers {
		s.endRecv = true
		if b.refuse != nil {
			c.resetStream(s, EnhanceYourCalm, true)
			return
		}
		if s.declared >= 0 && s.received != s.declared {
			c.resetStream(s, ProtocolError, true)
			return
		}
		if !s.refused {
			c.h.Trailers(s, c.head.Fields)
		}
		c.clearHead()
		return
	}
	s.declared = c.head.ContentLength
	s.refused = c.head.Refuse != nil
	s.headed = true
	c.h.Head(s, &c.head)
	c.clearHead()
}

// clearHead drops the views of decoded strings, which would keep them.
func (c *Conn) clearHead() {
	clear(c.head.Fields)
	c.head = Head{Fields: c.head.Fields[:0]}
}

func (c *Conn) priority(fh FrameHeader, p []byte) {
	if fh.StreamID == 0 {
		c.connError(ProtocolError)
		return
	}
	if len(p) != 5 {
		c.streamError(fh.StreamID, FrameSizeError)
		return
	}
	if binary.BigEndian.Uint32(p)&maxWindow == fh.StreamID {
		if s := c.stream(fh.StreamID); s != nil {
			c.resetStream(s, ProtocolError, true)
		} else {
			c.streamError(fh.StreamID, ProtocolError)
		}
	}
	// Priorities are otherwise ignored, as RFC 9113 §5.3.2 allows.
}

func (c *Conn) rstStream(fh FrameHeader, p []byte) {
	switch {
	case fh.StreamID == 0:
		c.connError(ProtocolError)
		return
	case len(p) != 4:
		c.connError(FrameSizeError)
		return
	case fh.StreamID > c.maxClientID:
		if !c.goaway {
			c.connError(ProtocolError) // idle
		}
		return
	}
	s := c.stream(fh.StreamID)
	if s == nil {
		return // closed already: a reset may cross one of ours
	}
	code := ErrCode(binary.BigEndian.Uint32(p))
	c.ctr.ClientResets.Add(1)
	c.remove(s, false)
	if s.headed {
		c.h.Done(s, code)
	}
	c.free(s)
	// Streams reset before their response ended cost the handler work
	// (a request to a target) for nothing: CVE-2023-44487.
	if c.count(&c.resetAt, &c.resetN, c.cfg.ResetLimit) {
		c.ctr.RapidResets.Add(1)
		c.connError(EnhanceYourCalm)
	}
}

func (c *Conn) settings(fh FrameHeader, p []byte) {
	if fh.StreamID != 0 {
		c.connError(ProtocolError)
		return
	}
	if fh.Flags&flagAck != 0 {
		if len(p) != 0 {
			c.connError(FrameSizeError)
		}
		return
	}
	if len(p)%6 != 0 {
		c.connError(FrameSizeError)
		return
	}
	for ; len(p) > 0; p = p[6:] {
		id, v := binary.BigEndian.Uint16(p), binary.BigEndian.Uint32(p[2:])
		switch id {
		case settingEnablePush:
			if v > 1 {
				c.connError(ProtocolError)
				return
			}
		case settingInitialWindowSize:
			if v > maxWindow {
				c.connError(FlowControlError)
				return
			}
			// §6.9.2: the change applies to every open stream's window.
			delta := int64(v) - c.peerWindow
			c.peerWindow = int64(v)
			for _, s := range c.streams {
				if s.sendWindow += delta; s.sendWindow > maxWindow {
					c.connError(FlowControlError)
					return
				}
			}
		case settingMaxFrameSize:
			if v < minMaxFrame || v > maxMaxFrame {
				c.connError(ProtocolError)
				return
			}
			c.peerFrame = int(v)
		}
		// The others need nothing: latch's encoder has no dynamic table,
		// pushes nothing, and sends heads far below any list size.
	}
	out := c.grab()
	c.out = appendHeader(out, 0, FrameSettings, flagAck, 0)
	c.control()
	if c.glitch() {
		c.ctr.SettingsFloods.Add(1)
		return
	}
	c.wakeBlocked()
}

func (c *Conn) ping(fh FrameHeader, p []byte) {
	switch {
	case len(p) != 8:
		c.connError(FrameSizeError)
		return
	case fh.StreamID != 0:
		c.connError(ProtocolError)
		return
	case fh.Flags&flagAck != 0:
		return
	}
	if c.glitch() {
		c.ctr.PingFloods.Add(1)
		return
	}
	out := c.grab()
	out = appendHeader(out, 8, FramePing, flagAck, 0)
	c.out = append(out, p...)
	c.control()
}

func (c *Conn) windowUpdate(fh FrameHeader, p []byte) {
	if len(p) != 4 {
		c.connError(FrameSizeError)
		return
	}
	inc := int64(binary.BigEndian.Uint32(p) & maxWindow)
	if fh.StreamID == 0 {
		if inc == 0 {
			c.connError(ProtocolError)
			return
		}
		if c.sendWindow += inc; c.sendWindow > maxWindow {
			c.connError(FlowControlError)
			return
		}
		c.wakeBlocked()
		return
	}
	s := c.stream(fh.StreamID)
	if s == nil {
		if fh.StreamID > c.maxClientID && !c.goaway {
			c.connError(ProtocolError) // idle
		}
		return // closed: it may have crossed our end of the stream
	}
	if inc == 0 {
		c.resetStream(s, ProtocolError, true)
		return
	}
	if s.sendWindow += inc; s.sendWindow > maxWindow {
		c.resetStream(s, FlowControlError, true)
		return
	}
	if s.blocked && s.sendWindow > 0 && c.sendWindow > 0 {
		s.blocked, s.blockedAt = false, 0
		c.h.Writable(s)
	}
}

// glitch counts a frame that costs work and carries nothing, and answers
// a flood of them with GOAWAY ENHANCE_YOUR_CALM; it reports that it did.
func (c *Conn) glitch() bool {
	if c.count(&c.floodAt, &c.floodN, c.cfg.FloodLimit) {
		c.ctr.Floods.Add(1)
		c.connError(EnhanceYourCalm)
		return true
	}
	return false
}

// count counts an event in the current second (*at), and reports that
// the count passed limit.
func (c *Conn) count(at *int64, n *int, limit int) bool {
	now := time.Now().UnixNano()
	if now-*at >= int64(time.Second) {
		*at, *n = now, 0
	}
	*n++
	return *n > limit
}

// control counts a control frame queued, and closes a connection whose
// peer asks for replies faster than it reads them.
func (c *Conn) control() {
	if c.queuedCtl++; c.queuedCtl > maxQueuedControl {
		c.ctr.Floods.Add(1)
		c.connError(EnhanceYourCalm)
	}
}

// connError ends the connection with GOAWAY (RFC 9113 §5.4.1): every
// stream is done, and the connection closes once the GOAWAY is written.
func (c *Conn) connError(code ErrCode) {
	if c.fatal {
		return
	}
	c.fatal = true
	c.ctr.ConnErrors.Add(1)
	c.goAwayOut(code)
	c.endStreams(code)
}

func (c *Conn) goAwayOut(code ErrCode) {
	out := c.grab()
	out = appendHeader(out, 8, FrameGoAway, 0, 0)
	out = appendUint32(out, c.maxClientID)
	c.out = appendUint32(out, uint32(code))
	c.goaway = true
}

func (c *Conn) endStreams(code ErrCode) {
	for len(c.streams) > 0 {
		s := c.streams[len(c.streams)-1]
		c.remove(s, false)
		if s.headed {
			c.h.Done(s, code)
		}
		c.free(s)
	}
}

// streamError resets a stream that is not open (§5.4.2).
func (c *Conn) streamError(id uint32, code ErrCode) {
	out := c.grab()
	out = appendHeader(out, 4, FrameRSTStream, 0, id)
	c.out = appendUint32(out, uint32(code))
	c.control()
}

// resetStream resets an open stream for an error, telling the handler
// when notify is set (it has had the stream's head).
func (c *Conn) resetStream(s *Stream, code ErrCode, notify bool) {
	c.remove(s, true) // first: a flood the RST_STREAM tips over ends the others
	c.streamError(s.ID, code)
	if notify && s.headed {
		c.h.Done(s, code)
	}
	c.free(s)
}

// Shutdown starts a graceful close: GOAWAY NO_ERROR naming the last
// stream latch took; the streams open are served to their end, then the
// connection is done. Call it in the connection's goroutine (Post).
func (c *Conn) Shutdown() {
	if c.goaway {
		return
	}
	c.goAwayOut(NoError)
}

// Done reports whether the connection is over: close it once Pending is
// empty.
func (c *Conn) Done() bool {
	return c.fatal || c.goaway && len(c.streams) == 0
}

// Pending returns the bytes waiting to be written to the socket.
func (c *Conn) Pending() []byte { return c.out[c.o:] }

// Wrote consumes n bytes of Pending. Once all is written the buffer goes
// back to the pool, and streams waiting for room are told they have it.
func (c *Conn) Wrote(n int) {
	c.o += n
	if c.outp == nil || c.o < len(c.out) {
		return
	}
	c.queuedCtl = 0
	outBufs.Put(c.outp)
	c.outp, c.out, c.o = nil, nil, 0
	c.wakeBlocked()
	c.reap()
}

// Close ends the connection for its owner (the socket closed or failed):
// every open stream is done, and the buffers go back to their pools.
func (c *Conn) Close() {
	if !c.fatal {
		c.fatal = true
		c.endStreams(Cancel)
	}
	c.reap()
	c.r, c.w = 0, 0
	c.releaseIn()
	if c.outp != nil {
		outBufs.Put(c.outp)
		c.outp, c.out, c.o = nil, nil, 0
	}
	c.ctr.Conns.Add(-1)
}

// Tick does what is due by now: the idle timeout, and resets of streams
// stalled on a window the client keeps shut.
func (c *Conn) Tick(now time.Time) {
	ns := now.UnixNano()
	if c.cfg.IdleTimeout > 0 && len(c.streams) == 0 && c.idleSince > 0 &&
		ns-c.idleSince >= int64(c.cfg.IdleTimeout) && !c.goaway {
		c.ctr.IdleClosed.Add(1)
		c.goAwayOut(NoError)
	}
	if c.cfg.StallTimeout <= 0 {
		return
	}
	for i := 0; i < len(c.streams); {
		s := c.streams[i]
		if s.blockedAt > 0 && ns-s.blockedAt >= int64(c.cfg.StallTimeout) {
			c.ctr.Stalls.Add(1)
			c.resetStream(s, Cancel, true)
			continue
		}
		i++
	}
}

// wakeBlocked tells the streams waiting for room that they have some.
func (c *Conn) wakeBlocked() {
	if c.sendWindow <= 0 || len(c.out)-c.o >= maxOut {
		return
	}
	c.snap = append(c.snap[:0], c.streams...)
	for _, s := range c.snap {
		if !s.gone && s.blocked && s.sendWindow > 0 {
			s.blocked, s.blockedAt = false, 0
			c.h.Writable(s)
		}
	}
	clear(c.snap)
}

// stream returns the open stream id, or nil.
func (c *Conn) stream(id uint32) *Stream {
	for _, s := range c.streams {
		if s.ID == id {
			return s
		}
	}
	return nil
}

func (c *Conn) open(id uint32) *Stream {
	s := streams.Get().(*Stream)
	*s = Stream{ID: id, c: c, sendWindow: c.peerWindow, recvWindow: int64(c.cfg.StreamWindow), declared: -1}
	c.streams = append(c.streams, s)
	c.idleSince = 0
	c.ctr.Streams.Add(1)
	return s
}

// remove takes s off the open streams, remembering its id among the
// recently closed (byUs: latch reset it, so frames in flight from the
// client are ignored rather than errors).
func (c *Conn) remove(s *Stream, byUs bool) {
	for i, o := range c.streams {
		if o == s {
			last := len(c.streams) - 1
			c.streams[i] = c.streams[last]
			c.streams[last] = nil
			c.streams = c.streams[:last]
			break
		}
	}
	id := s.ID
	if byUs {
		id |= 1 << 31
	}
	c.closed[c.closedPos%uint8(len(c.closed))] = id
	c.closedPos++
	if len(c.streams) == 0 {
		c.idleSince = time.Now().UnixNano()
		if cap(c.streams) > 16 {
			c.streams = nil // an idle connection keeps no large slice
		}
	}
}

// free marks s over. It goes back to the pool only at reap, once no
// call that may hold it (a Handler's, or the frame being processed) is
// under way.
func (c *Conn) free(s *Stream) {
	if s.gone {
		return
	}
	// What its handler held is dropped with it: the connection's window
	// gets it back.
	c.credit(s.held)
	s.held = 0
	s.gone = true
	c.dead = append(c.dead, s)
}

// reap puts the streams that ended back in the pool.
func (c *Conn) reap() {
	for i, s := range c.dead {
		*s = Stream{}
		streams.Put(s)
		c.dead[i] = nil
	}
	c.dead = c.dead[:0]
}

// wasClosed reports whether id is among the streams closed lately.
func (c *Conn) wasClosed(id uint32) bool {
	for _, v := range c.closed {
		if v&maxWindow == id {
			return true
		}
	}
	return false
}

// resetByUs reports whether id is among the streams latch reset lately.
func (c *Conn) resetByUs(id uint32) bool {
	for _, v := range c.closed {
		if v == id|1<<31 {
			return true
		}
	}
	return false
}
