package h1

import (
	"bytes"
	"errors"
)

// Error is a message latch cannot accept, with the status to answer and a
// short cause for the answer's body.
type Error struct {
	Status int
	Cause  string
}

func (e *Error) Error() string { return e.Cause }

// Request errors, each answered as ALB does: 400 for a malformed request
// (header limits included), 501 for a transfer coding latch does not know.
var (
	ErrHeadTooLarge    = &Error{400, "the request header is larger than 64 KiB"}
	ErrLineTooLong     = &Error{400, "the request line is longer than 16 KiB"}
	ErrFieldTooLong    = &Error{400, "a request header field is longer than 16 KiB"}
	ErrRequestLine     = &Error{400, "malformed request line"}
	ErrVersion         = &Error{400, "unsupported HTTP version"}
	ErrObsFold         = &Error{400, "a header field is folded over several lines (obsolete line folding)"}
	ErrBareCR          = &Error{400, "a header field holds CR, LF or NUL"}
	ErrHost            = &Error{400, "the request has no Host header, or more than one"}
	ErrContentLength   = &Error{400, "invalid Content-Length"}
	ErrMultipleLength  = &Error{400, "conflicting Content-Length headers"}
	ErrChunkedNotLast  = &Error{400, "Transfer-Encoding does not end in chunked"}
	ErrChunkedTwice    = &Error{400, "Transfer-Encoding names chunked more than once"}
	ErrUnsupportedTE   = &Error{501, "unsupported Transfer-Encoding"}
	ErrHTTP10Chunked   = &Error{400, "Transfer-Encoding in an HTTP/1.0 request"}
	ErrBodyTooShort    = &Error{400, "the client closed the connection before sending the whole body"}
	ErrTooManyFields   = &Error{400, "the request has more than 500 header fields"}
	ErrConnectionList  = &Error{400, "Connection lists more than 32 field names"}
	ErrChunkFormat     = &Error{400, "malformed chunked body"}
	ErrTrailerTooLarge = &Error{400, "the request trailer is larger than 16 KiB"}
)

// Kind identifies the header fields latch acts on; it saves comparing
// names again on the way out.
type Kind uint8

const (
	KindOther Kind = iota
	KindHost
	KindContentLength
	KindTransferEncoding
	KindConnection
	KindKeepAlive
	KindProxyConnection
	KindTE
	KindTrailer
	KindUpgrade
	KindExpect
	KindCookie
	KindSetCookie
	KindXForwardedFor
	KindXForwardedProto
	KindXForwardedPort
	KindProxyAuthenticate
	KindProxyAuthorization
	// KindHTTP2Settings is HTTP2-Settings, which belongs to the h2c upgrade
	// of one connection (RFC 9113 §3.1 deprecates it): never forwarded.
	KindHTTP2Settings
	KindNamedInConnection // listed in Connection: hop-by-hop too
	KindDropped           // a field latch never forwards: its name is not a token
)

// HopByHop reports whether a field of kind k is hop-by-hop: never copied
// from one connection to the next (RFC 9110 §7.6.1, plus the Proxy-*
// fields of RFC 7235 that belong to one hop).
func (k Kind) HopByHop() bool {
	switch k {
	case KindConnection, KindKeepAlive, KindProxyConnection, KindTE, KindTransferEncoding, KindUpgrade,
		KindProxyAuthenticate, KindProxyAuthorization, KindHTTP2Settings, KindNamedInConnection, KindDropped:
		return true
	}
	return false
}

// KindOf classifies a field name, case-insensitively.
func KindOf(name []byte) Kind {
	switch len(name) {
	case 2:
		if EqualLower(name, "te") {
			return KindTE
		}
	case 4:
		if EqualLower(name, "host") {
			return KindHost
		}
	case 6:
		switch {
		case EqualLower(name, "cookie"):
			return KindCookie
		case EqualLower(name, "expect"):
			return KindExpect
		}
	case 7:
		switch {
		case EqualLower(name, "upgrade"):
			return KindUpgrade
		case EqualLower(name, "trailer"):
			return KindTrailer
		}
	case 10:
		switch {
		case EqualLower(name, "connection"):
			return KindConnection
		case EqualLower(name, "keep-alive"):
			return KindKeepAlive
		case EqualLower(name, "set-cookie"):
			return KindSetCookie
		}
	case 14:
		switch {
		case EqualLower(name, "content-length"):
			return KindContentLength
		case EqualLower(name, "http2-settings"):
			return KindHTTP2Settings
		}
	case 15:
		if EqualLower(name, "x-forwarded-for") {
			return KindXForwardedFor
		}
	case 16:
		switch {
		case EqualLower(name, "proxy-connection"):
			return KindProxyConnection
		case EqualLower(name, "x-forwarded-port"):
			return KindXForwardedPort
		}
	case 17:
		switch {
		case EqualLower(name, "transfer-encoding"):
			return KindTransferEncoding
		case EqualLower(name, "x-forwarded-proto"):
			return KindXForwardedProto
		}
	case 18:
		if EqualLower(name, "proxy-authenticate") {
			return KindProxyAuthenticate
		}
	case 19:
		if EqualLower(name, "proxy-authorization") {
			return KindProxyAuthorization
		}
	}
	return KindOther
}

// EqualLower reports whether b equals lower, ASCII case-insensitively;
// lower must be in lower case.
func EqualLower(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// EqualFold reports whether a and b are equal, ASCII case-insensitively.
func EqualFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Framing is how a message's body is delimited.
type Framing uint8

const (
	NoBody     Framing = iota
	Length             // Content-Length bytes
	Chunked            // chunked transfer coding
	UntilClose         // everything until the connection closes (responses only)
)

// Request is a request head parsed in place: its byte slices point into the
// connection's buffer and stay valid until the next request is read (its
// body is read into the buffer behind the head). A Request is
// reused for every request on a connection.
type Request struct {
	Method []byte
	Target []byte // the request target exactly as sent
	Proto  []byte // "HTTP/1.1"; empty for an HTTP/0.9 request line
	Minor  int    // 1 for HTTP/1.1, 0 for HTTP/1.0
	Fields []Field
	Kinds  []Kind // Kinds[i] is the kind of Fields[i]

	Host          []byte
	Framing       Framing
	ContentLength int64 // for Framing == Length
	// KeepAlive reports whether the client lets the connection stay open
	// after this exchange (HTTP/1.1 without Connection: close, or HTTP/1.0
	// with Connection: keep-alive).
	KeepAlive bool
	// Upgrade is set for an Upgrade field with Connection: upgrade
	// (WebSocket and the like) that names a protocol other than h2c,
	// which latch never forwards (see AppendUpgrade).
	Upgrade   bool
	Expect100 bool // Expect: 100-continue
	// ExpectOther is set for any other expectation, which latch answers
	// with 417 (RFC 9110 §10.1.1).
	ExpectOther bool
	// WantsTrailers is set when TE lists trailers, which gRPC needs end
	// to end although TE itself is hop-by-hop.
	WantsTrailers bool
	// BothTEAndCL is set when Transfer-Encoding overrode a Content-Length:
	// RFC 9112 §6.3 has the connection closed after such a request.
	BothTEAndCL bool
	// XFFCount is how many addresses the X-Forwarded-For fields hold.
	XFFCount int
	folded   bool // a field was folded over several lines

	// HostFromTarget is set for an absolute-form target
	// (GET http://example.com/x): Host is then its authority, which
	// replaces any Host field (RFC 9112 §3.2.2).
	HostFromTarget bool
}

// ReadRequest reads the next request head into req, tokenised leniently
// so that the desync classifier sees what was sent: call Frame before
// forwarding it. A read error comes back as is (io.EOF when the
// connection closed, one that errors.Is os.ErrDeadlineExceeded on a
// timeout, ErrWouldBlock on a loop's socket), with started false when no
// byte of a request had arrived; a head over ALB's limits or without a
// request line is an *Error.
func (rd *Reader) ReadRequest(req *Request) (started bool, err error) {
	head, started, err := rd.readHead(MaxRequestHead)
	if err != nil {
		return started, err
	}
	return true, req.parse(head)
}

func (req *Request) reset() {
	f, k := keepFields(req.Fields, req.Kinds)
	*req = Request{Fields: f, Kinds: k}
}

// keepFields empties a message's field table (and its kinds) for the next
// message, and drops it when it has grown past keptFields: a huge head must
// not leave its field table to an idle connection.
func keepFields(f []Field, k []Kind) ([]Field, []Kind) {
	if cap(f) > keptFields {
		return nil, nil
	}
	return f[:0], k[:0]
}

// keptFields is how many fields' room a Request or Response keeps between
// messages; MaxFields bounds the fields of one request (a 64 KiB head could
// hold sixteen thousand, each costing room and work), as ALB's.
const (
	keptFields = 64
	MaxFields  = 500
)

// parse splits the request line at its first space and at the first
// " HTTP/" after it, or failing that at its last space (so that a space
// inside the target is seen, not hidden), and the fields at their first
// colon, and keeps what a strict parser would refuse: a line without
// a colon becomes a field without a name, a folded line (obs-fold) extends
// its field's value, line breaks included. The classifier grades such
// requests; Frame refuses to forward what cannot be forwarded safely.
func (req *Request) parse(head []byte) error {
	req.reset()
	line, rest := nextCRLFLine(head)
	if len(line) > MaxRequestLine {
		return ErrLineTooLong
	}
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 || sp1 == len(line)-1 {
		return ErrRequestLine
	}
	req.Method = line[:sp1]
	// The version starts at the first " HTTP/" after the method, so that
	// "GET /a HTTP/1.1 HTTP/1.1" is a bad version (as ALB reads it), not
	// a space in the target; failing that, at the last space.
	if v := bytes.Index(line[sp1:], []byte(" HTTP/")); v > 0 {
		req.Target, req.Proto = line[sp1+1:sp1+v], line[sp1+v+1:]
	} else if sp2 := bytes.LastIndexByte(line, ' '); sp2 > sp1 {
		req.Target, req.Proto = line[sp1+1:sp2], line[sp2+1:]
	} else {
		req.Target = line[sp1+1:] // HTTP/0.9
	}
	for len(rest) > 0 {
		start := rest
		line, rest = nextCRLFLine(rest)
		if len(line) == 0 {
			break
		}
		if len(line) > MaxField {
			return ErrFieldTooLong
		}
		if len(req.Fields) == MaxFields {
			return ErrTooManyFields
		}
		if n := len(req.Fields); n > 0 && (line[0] == ' ' || line[0] == '\t') {
			// obs-fold: the value runs on through this line.
			f := &req.Fields[n-1]
			if f.Name != nil {
				// Both are offsets in head: the value's start, from how
				// much of the buffer lies behind it, and this line's end.
				off := cap(head) - cap(f.Value)
				end := len(head) - len(start) + len(line)
				f.Value = head[off:end]
				req.folded = true
				continue
			}
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			req.Fields = append(req.Fields, Field{Value: line})
			req.Kinds = append(req.Kinds, KindOther)
			continue
		}
		name, value := line[:colon], TrimOWS(line[colon+1:])
		req.Fields = append(req.Fields, Field{Name: name, Value: value})
		req.Kinds = append(req.Kinds, KindOf(name))
	}
	return nil
}

// Frame checks that the request can be forwarded and works out its
// framing and connection handling (RFC 9112 §6 and §9). It refuses what
// latch cannot forward safely in any desync mitigation mode: a version
// other than HTTP/1.0 and 1.1, CR, LF or NUL inside a field (a folded line
// included), and a body whose length is unclear.
func (req *Request) Frame() error {
	switch string(req.Proto) {
	case "HTTP/1.1":
		req.Minor = 1
	case "HTTP/1.0":
		req.Minor = 0
	default:
		return ErrVersion
	}
	if req.folded {
		return ErrObsFold
	}
	if len(req.Target) == 0 || !forwardable(req.Method) || !forwardable(req.Target) {
		return ErrRequestLine
	}
	for i, f := range req.Fields {
		if !forwardable(f.Value) {
			return ErrBareCR
		}
		if !ValidName(f.Name) {
			// A token holds no CR, LF or NUL: only a name that is not
			// one needs checking for them.
			if !forwardable(f.Name) {
				return ErrBareCR
			}
			// No name, or one that is not a token (" Transfer-Encoding",
			// "Content-Length ", ": chunked"): dropped, never forwarded,
			// so that no lenient target reads it as a framing field
			// latch did not see.
			req.Kinds[i] = KindDropped
		}
	}
	return req.derive()
}

// forwardable reports whether b holds no CR, LF or NUL: bytes that could
// end a line, or a string, in the target's parser.
func forwardable(b []byte) bool {
	for _, c := range b {
		if c == '\r' || c == '\n' || c == 0 {
			return false
		}
	}
	return true
}

// nextCRLFLine splits off the first line of b, without its CRLF. A bare LF
// does not end a line of a request: it stays in the line, where the
// classifier sees it (as ALB does) and Frame refuses it, so that no
// reading of the head can hide a field from latch that a lenient target
// would see.
func nextCRLFLine(b []byte) (line, rest []byte) {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return b, nil
		}
		i += j
		if i > 0 && b[i-1] == '\r' {
			return b[:i-1], b[i+1:]
		}
		i++
	}
}

// TrimOWS removes the spaces and tabs around b (RFC 9110's OWS).
func TrimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// derive works out framing and connection handling from the fields
// (RFC 9112 §6 and §9).
func (req *Request) derive() error {
	var connClose, connKeepAlive, connUpgrade, hasUpgrade, hasNamed bool
	var cl, te bool
	hosts := 0
	for i, f := range req.Fields {
		switch req.Kinds[i] {
		case KindHost:
			hosts++
			req.Host = f.Value
		case KindContentLength:
			n, ok := parseLength(f.Value)
			if !ok {
				return ErrContentLength
			}
			if cl && n != req.ContentLength {
				return ErrMultipleLength
			}
			cl, req.ContentLength = true, n
		case KindTransferEncoding:
			te = true
			if err := req.transferCoding(f.Value); err != nil {
				return err
			}
		case KindConnection:
			for tok := range tokens(f.Value) {
				switch connOption(tok) {
				case optClose:
					connClose = true
				case optKeepAlive:
					connKeepAlive = true
				case optUpgrade:
					connUpgrade = true
				default:
					hasNamed = true
				}
			}
		case KindUpgrade:
			for tok := range tokens(f.Value) {
				if !isH2C(tok) {
					hasUpgrade = true
				}
			}
		case KindExpect:
			if EqualLower(f.Value, "100-continue") {
				req.Expect100 = true
			} else {
				req.ExpectOther = true
			}
		case KindTE:
			for tok := range tokens(f.Value) {
				if EqualLower(codingName(tok), "trailers") {
					req.WantsTrailers = true
				}
			}
		case KindXForwardedFor:
			req.XFFCount += ListEntries(f.Value)
		}
	}
	if hasNamed && !markNamed(req.Fields, req.Kinds) {
		return ErrConnectionList
	}
	if hosts > 1 || hosts == 0 && req.Minor == 1 {
		return ErrHost
	}
	if auth, ok := absoluteAuthority(req.Target); ok {
		if len(auth) == 0 {
			return ErrRequestLine
		}
		req.Host, req.HostFromTarget = auth, true
	}
	switch {
	case req.Framing == Chunked:
		if req.Minor == 0 {
			return ErrHTTP10Chunked
		}
		req.BothTEAndCL = cl
	case cl && req.ContentLength > 0:
		req.Framing = Length
	}
	// Expect and Upgrade mean nothing in HTTP/1.0 (RFC 9110 §10.1.1,
	// §7.8), and a Transfer-Encoding there makes the framing suspect:
	// the connection closes after the exchange (RFC 9112 §6.1).
	req.Upgrade = hasUpgrade && connUpgrade && req.Minor == 1
	req.KeepAlive = !connClose && (req.Minor == 1 || connKeepAlive && !te)
	if req.Minor == 0 {
		req.Expect100, req.ExpectOther = false, false
	}
	return nil
}

// AppendUpgrade appends to dst the protocols of an Upgrade field's value
// v that latch forwards: all but h2c. The h2c upgrade (RFC 7540 §3.2,
// deprecated by RFC 9113 §3.1) would let a client speak HTTP/2 to a
// lenient target past latch, which applies its rules to the first request
// alone; a server may ignore Upgrade (RFC 9110 §7.8), and latch does, for
// h2c.
func AppendUpgrade(dst, v []byte) []byte {
	n := len(dst)
	for tok := range tokens(v) {
		if isH2C(tok) {
			continue
		}
		if len(dst) > n {
			dst = append(dst, ", "...)
		}
		dst = append(dst, tok...)
	}
	return dst
}

// SwitchAsked reports whether a 101 response (resp) switches only to
// protocols the request's Upgrade named and latch forwarded (RFC 9110
// §7.8: a server must not switch to one the client did not ask for), so
// that a lenient target answering the WebSocket part of "h2c, websocket"
// with h2c cannot open an HTTP/2 tunnel past latch. A 101 without Upgrade
// passes, as servers that leave it out always have.
func SwitchAsked(req *Request, resp *Response) bool {
	for i, f := range resp.Fields {
		if resp.Kinds[i] != KindUpgrade {
			continue
		}
		for tok := range tokens(f.Value) {
			if !offered(req, protocolName(tok)) {
				return false
			}
		}
	}
	return true
}

// offered reports whether the request's Upgrade names the protocol name,
// other than h2c.
func offered(req *Request, name []byte) bool {
	if EqualLower(name, "h2c") {
		return false
	}
	for i, f := range req.Fields {
		if req.Kinds[i] != KindUpgrade {
			continue
		}
		for tok := range tokens(f.Value) {
			if EqualFold(protocolName(tok), name) {
				return true
			}
		}
	}
	return false
}

// protocolName is an Upgrade protocol without its version ("h2c/1" is
// h2c).
func protocolName(tok []byte) []byte {
	if i := bytes.IndexByte(tok, '/'); i >= 0 {
		tok = TrimOWS(tok[:i])
	}
	return tok
}

// isH2C reports whether an Upgrade protocol is h2c, with or without a
// version ("h2c/1"); protocol names compare case-insensitively, as
// servers read them.
func isH2C(tok []byte) bool { return EqualLower(protocolName(tok), "h2c") }

// transferCoding applies one Transfer-Encoding field. Only chunked (last,
// once) and identity are accepted: latch cannot decode anything else, and
// ALB answers 501 to it.
func (req *Request) transferCoding(v []byte) error {
	for tok := range tokens(v) {
		tok = codingName(tok)
		switch {
		case EqualLower(tok, "chunked"):
			if req.Framing == Chunked {
				return ErrChunkedTwice
			}
			req.Framing = Chunked
		case EqualLower(tok, "identity"):
			if req.Framing == Chunked {
				return ErrChunkedNotLast
			}
		default:
			if req.Framing == Chunked {
				return ErrChunkedNotLast
			}
			return ErrUnsupportedTE
		}
	}
	return nil
}

// codingName returns a transfer coding without its parameters
// ("chunked;a=b" is chunked).
func codingName(tok []byte) []byte {
	if i := bytes.IndexByte(tok, ';'); i >= 0 {
		tok = TrimOWS(tok[:i])
	}
	return tok
}

// connOpt is what a Connection option means to latch: one of the three
// options it acts on, or the name of a field to treat as hop-by-hop.
type connOpt uint8

const (
	optName connOpt = iota
	optClose
	optKeepAlive
	optUpgrade
)

// connOption classifies one element of a Connection field.
func connOption(tok []byte) connOpt {
	switch {
	case EqualLower(tok, "close"):
		return optClose
	case EqualLower(tok, "keep-alive"):
		return optKeepAlive
	case EqualLower(tok, "upgrade"):
		return optUpgrade
	}
	return optName
}

// maxConnectionNames bounds the field names Connection may list, which
// keeps marking them linear in the fields (no client lists more than a
// few).
const maxConnectionNames = 32

// markNamed marks the fields that Connection lists as hop-by-hop (RFC 9110
// §7.6.1); it reports false when Connection lists more than
// maxConnectionNames names.
func markNamed(fields []Field, kinds []Kind) bool {
	var names [maxConnectionNames][]byte
	n := 0
	for i, f := range fields {
		if kinds[i] != KindConnection {
			continue
		}
		for tok := range tokens(f.Value) {
			if connOption(tok) != optName {
				continue
			}
			if n == maxConnectionNames {
				return false
			}
			names[n] = tok
			n++
		}
	}
	for j := range fields {
		switch kinds[j] {
		case KindOther, KindCookie, KindSetCookie, KindTrailer, KindXForwardedFor, KindXForwardedProto,
			KindXForwardedPort, KindExpect:
		default:
			continue // framing and hop-by-hop fields keep their kind
		}
		for _, name := range names[:n] {
			if EqualFold(fields[j].Name, name) {
				kinds[j] = KindNamedInConnection
				break
			}
		}
	}
	return true
}

// absoluteAuthority returns the authority of an absolute-form target.
func absoluteAuthority(t []byte) ([]byte, bool) {
	var rest []byte
	switch {
	case len(t) >= 7 && EqualLower(t[:7], "http://"):
		rest = t[7:]
	case len(t) >= 8 && EqualLower(t[:8], "https://"):
		rest = t[8:]
	default:
		return nil, false
	}
	for i, c := range rest {
		if c == '/' || c == '?' || c == '#' {
			rest = rest[:i]
			break
		}
	}
	// authority = [ userinfo "@" ] host [ ":" port ]: Host is without the
	// userinfo (RFC 9112 §3.2.2).
	if i := bytes.LastIndexByte(rest, '@'); i >= 0 {
		rest = rest[i+1:]
	}
	return rest, true
}

// ListEntries counts the non-empty entries of a comma-separated field
// value: X-Forwarded-For's addresses, as XFFCount counts them.
func ListEntries(v []byte) int {
	n := 0
	for range tokens(v) {
		n++
	}
	return n
}

// tokens yields the non-empty elements of a comma-separated list, trimmed.
func tokens(v []byte) func(yield func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(v) > 0 {
			var tok []byte
			if i := bytes.IndexByte(v, ','); i >= 0 {
				tok, v = v[:i], v[i+1:]
			} else {
				tok, v = v, nil
			}
			if tok = TrimOWS(tok); len(tok) > 0 && !yield(tok) {
				return
			}
		}
	}
}

// parseLength parses a Content-Length value: digits only (no sign, no
// list, no spaces), at most 18 of them so that it cannot overflow.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// IsError reports whether err is an *Error, and returns it.
func IsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
