package h2

import (
	"unsafe"

	"github.com/latch-lb/latch/internal/h1"
	"golang.org/x/net/http2/hpack"
)

// Field is a header field. On the way in, Name and Value are views of the
// decoder's strings, valid only during the Handler call that gets them
// and never to be written to.
type Field = h1.Field

// Head is a request's header section, as the Handler gets it. Its slices
// are valid only during the call.
type Head struct {
	Method, Scheme, Authority, Path []byte
	// Protocol is :protocol (RFC 8441's extended CONNECT); empty without.
	Protocol []byte
	// Fields are the regular fields in the order they came, names in lower
	// case, the host field left out (it is Authority). A cookie split over
	// several fields (RFC 9113 §8.2.3) comes as those fields.
	Fields []Field
	// ContentLength is the content-length field's value; -1 without one.
	ContentLength int64
	// End is set when the request has no body: its HEADERS ended the stream.
	End bool
	// Refuse, when set, is why the request is not acceptable though it is
	// well-formed HTTP/2: it is over one of the limits an HTTP/1.1 head has
	// (h1's, measured as the head an HTTP/1.1 request would have), over the
	// decoder's header list limit, or its content-length is malformed or
	// cannot be met. Answer it with Refuse's status; its body, if any, is
	// dropped.
	Refuse *h1.Error
}

// Errors a Head can be refused with beyond h1's own.
var (
	// ErrHeaderList refuses a header section larger than
	// SETTINGS_MAX_HEADER_LIST_SIZE as HPACK counts it (RFC 9113 §10.5.1).
	ErrHeaderList = &h1.Error{Status: 431, Cause: "the request header fields are larger than the server accepts"}
	// ErrHostMismatch: a host field beside :authority must match it
	// (RFC 9113 §8.3.1).
	ErrHostMismatch = &h1.Error{Status: 400, Cause: "the host field differs from :authority"}
	// ErrLength: the stream ended with its header, while its
	// content-length announced a body (RFC 9113 §8.1.1: malformed).
	ErrLength = &h1.Error{Status: 400, Cause: "Content-Length differs from the length of the body"}
)

// pseudo-header bits, for "each at most once".
const (
	pMethod = 1 << iota
	pScheme
	pAuthority
	pPath
	pProtocol
)

// block is the header block being decoded: its stream, what it is, and
// what was found in it so far.
type block struct {
	id       uint32
	s        *Stream // nil: decoded only to keep HPACK's state
	trailers bool
	end      bool    // the HEADERS carried END_STREAM
	code     ErrCode // a stream error found in it (malformed)
	refuse   *h1.Error
	list     int // the header list's size as HPACK counts it
	wire     int // the block's bytes on the wire, frame headers included
	regular  bool
	pseudo   uint8
	hosts    int
	host     []byte
	// The head as HTTP/1.1 would measure it (h1's limits): see size.
	fields, longest, head, cookies, cookieLen int
	declared                                  int64
}

// lowerToken is RFC 9110's token characters, less the upper-case letters
// an HTTP/2 field name must not hold (RFC 9113 §8.2.1).
var lowerToken = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = h1.ValidName([]byte{byte(c)}) && (c < 'A' || c > 'Z')
	}
	return t
}()

// validValue reports whether v is a field value HTTP/2 may carry: no NUL,
// CR or LF, and no white space at either end (RFC 9113 §8.2.1).
func validValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == 0 || c == '\r' || c == '\n' {
			return false
		}
	}
	if n := len(v); n > 0 && (v[0] == ' ' || v[0] == '\t' || v[n-1] == ' ' || v[n-1] == '\t') {
		return false
	}
	return true
}

func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// emit receives each field the decoder decodes.
func (c *Conn) emit(f hpack.HeaderField) {
	b := &c.blk
	b.list += len(f.Name) + len(f.Value) + 32
	if b.list > c.cfg.MaxHeaderList && b.refuse != ErrHeaderList {
		// Fields past the limit are decoded, for HPACK's state, and dropped.
		b.refuse = ErrHeaderList
		c.ctr.HeaderListTooLarge.Add(1)
		c.head.Fields = c.head.Fields[:0]
	}
	if b.s == nil || b.code != NoError || b.refuse == ErrHeaderList {
		return
	}
	name, value := f.Name, f.Value
	if len(name) == 0 {
		b.code = ProtocolError
		return
	}
	if name[0] == ':' {
		b.pseudoField(c, name, value)
		return
	}
	b.regular = true
	for i := 0; i < len(name); i++ {
		if !lowerToken[name[i]] {
			b.code = ProtocolError
			return
		}
	}
	if !validValue(value) {
		b.code = ProtocolError
		return
	}
	nb, vb := bytesOf(name), bytesOf(value)
	k := h1.KindOf(nb)
	switch k {
	case h1.KindConnection, h1.KindKeepAlive, h1.KindProxyConnection, h1.KindTransferEncoding,
		h1.KindUpgrade, h1.KindHTTP2Settings:
		// Connection-specific: malformed in HTTP/2 (RFC 9113 §8.2.2).
		b.code = ProtocolError
		return
	case h1.KindTE:
		if !h1.EqualLower(vb, "trailers") {
			b.code = ProtocolError
			return
		}
	}
	if b.trailers {
		b.head += len(name) + 2 + len(value) + 2
		if b.head > h1.MaxField && b.refuse == nil {
			b.refuse = h1.ErrTrailerTooLarge
		}
		c.head.Fields = append(c.head.Fields, Field{Name: nb, Value: vb})
		return
	}
	switch k {
	case h1.KindHost:
		b.hosts++
		b.host = vb
		return
	case h1.KindCookie:
		// Measured as the one joined field HTTP/1.1 would carry.
		b.cookies++
		b.cookieLen += len(value)
	case h1.KindContentLength:
		n, ok := parseLength(value)
		switch {
		case !ok:
			b.setRefuse(h1.ErrContentLength)
		case b.declared >= 0 && n != b.declared:
			b.setRefuse(h1.ErrMultipleLength)
		}
		b.declared = n
		b.field(len(name), len(value))
	default:
		b.field(len(name), len(value))
	}
	c.head.Fields = append(c.head.Fields, Field{Name: nb, Value: vb})
}

func (b *block) setRefuse(e *h1.Error) {
	if b.refuse == nil {
		b.refuse = e
	}
}

// field counts a field line "name: value\r\n" in the HTTP/1.1 head.
func (b *block) field(name, value int) {
	n := name + 2 + value
	b.head += n + 2
	b.fields++
	b.longest = max(b.longest, n)
}

func (b *block) pseudoField(c *Conn, name, value string) {
	if b.regular || b.trailers {
		b.code = ProtocolError // after a regular field, or in trailers (§8.3)
		return
	}
	var bit uint8
	h := &c.head
	v := bytesOf(value)
	switch name {
	case ":method":
		bit, h.Method = pMethod, v
	case ":scheme":
		bit, h.Scheme = pScheme, v
	case ":authority":
		bit, h.Authority = pAuthority, v
	case ":path":
		bit, h.Path = pPath, v
	case ":protocol":
		bit, h.Protocol = pProtocol, v
	default:
		b.code = ProtocolError // unknown, or a response's (:status)
		return
	}
	if b.pseudo&bit != 0 || !validValue(value) {
		b.code = ProtocolError
		return
	}
	b.pseudo |= bit
}

// finishHead checks the pseudo-header fields and limits of a complete
// request head (RFC 9113 §8.3.1), and sets its Refuse.
func (b *block) finishHead(h *Head) {
	if b.code != NoError {
		return
	}
	h.End, h.ContentLength = b.end, b.declared
	if b.refuse == ErrHeaderList {
		h.Refuse = b.refuse // its fields were dropped: nothing more to check
		return
	}
	if b.pseudo&pMethod == 0 {
		b.code = ProtocolError
		return
	}
	if string(h.Method) == "CONNECT" && b.pseudo&pProtocol == 0 {
		// Authority only (§8.5).
		if b.pseudo != pMethod|pAuthority {
			b.code = ProtocolError
		}
		return
	}
	if b.pseudo&(pScheme|pPath) != pScheme|pPath || len(h.Path) == 0 {
		b.code = ProtocolError
		return
	}
	if b.hosts > 1 || b.hosts == 1 && b.pseudo&pAuthority != 0 && string(b.host) != string(h.Authority) {
		b.setRefuse(ErrHostMismatch)
	}
	if b.pseudo&pAuthority == 0 {
		h.Authority = b.host
	}
	if b.end && b.declared > 0 {
		b.setRefuse(ErrLength)
	}
	if b.refuse == nil {
		b.refuse = b.limits(h)
	}
	h.Refuse = b.refuse
}

// limits returns the error an HTTP/1.1 head of this request's size gets,
// checked in h1's order: the head, the request line, a field, the count.
// The request line is ":method :path HTTP/1.1", :authority is a Host
// line, split cookies one line joined with "; "; :scheme is not counted.
func (b *block) limits(h *Head) *h1.Error {
	line := len(h.Method) + 1 + len(h.Path) + len(" HTTP/1.1")
	head, fields, longest := b.head+line+2+2, b.fields, b.longest
	host := len("Host") + 2 + len(h.Authority)
	head, fields, longest = head+host+2, fields+1, max(longest, host)
	if b.cookies > 0 {
		n := len("cookie") + 2 + b.cookieLen + 2*(b.cookies-1)
		head, fields, longest = head+n+2, fields+1, max(longest, n)
	}
	switch {
	case head > h1.MaxRequestHead:
		return h1.ErrHeadTooLarge
	case line > h1.MaxRequestLine:
		return h1.ErrLineTooLong
	case longest > h1.MaxField:
		return h1.ErrFieldTooLong
	case fields > h1.MaxFields:
		return h1.ErrTooManyFields
	}
	return nil
}

// parseLength parses a content-length value as h1 does: 1 to 18 digits.
func parseLength(v string) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(v[i]-'0')
	}
	return n, true
}
