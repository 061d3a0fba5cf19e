package h1

import (
	"bytes"
	"errors"
)

// Response errors: a target that answers with something latch cannot
// forward. Each makes the client's answer a 502, as ALB's.
var (
	ErrResponseTooLarge  = &Error{502, "the target sent an invalid response: a header larger than 32 KiB"}
	ErrStatusLine        = &Error{502, "the target sent an invalid response: a malformed status line"}
	ErrResponseField     = &Error{502, "the target sent an invalid response: a malformed header field"}
	ErrResponseLength    = &Error{502, "the target sent an invalid response: an invalid Content-Length"}
	ErrResponseCoding    = &Error{502, "the target sent an invalid response: chunked twice in Transfer-Encoding"}
	ErrResponseChunk     = &Error{502, "the target sent an invalid response: a malformed chunked body"}
	ErrResponseTruncated = &Error{502, "the target closed the connection before the end of the response"}
	// ErrResponseStatus is an HTTP/2 target's :status that a status line
	// could not carry (see ValidStatus).
	ErrResponseStatus = &Error{502, "the target sent an invalid response: a malformed status code"}
)

// ValidStatus reports whether s is a status code as a status line carries
// it: three digits (RFC 9112 §4), the first not 0, which begins no class
// (RFC 9110 §15). RFC 9113 §8.3.2 asks the same of HTTP/2's :status,
// which net/http's HTTP/2 client does not check: it hands over "0", "-1",
// "099" or "1000" as a status, which latch's writers cannot pass on
// (net/http's server panics on them).
func ValidStatus[T ~string | ~[]byte](s T) bool {
	return len(s) == 3 && s[0] >= '1' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9'
}

// Response is a response head parsed in place, valid until the next one is
// read. A Response is reused for every response on a connection.
type Response struct {
	Minor  int // 1 for HTTP/1.1, 0 for HTTP/1.0
	Status int
	Reason []byte
	Fields []Field
	Kinds  []Kind

	Framing       Framing
	ContentLength int64
	// Close reports that the target will close the connection after this
	// response (Connection: close, or HTTP/1.0 without keep-alive).
	Close bool
	// HasLength is set when the response carried a valid Content-Length,
	// which a response to HEAD keeps although it has no body.
	HasLength bool
}

// ReadResponse reads the next response head into resp; head says whether
// it answers a HEAD request, which has no body whatever the head says.
// started reports whether any byte of a response arrived: a pooled
// connection that ends with none was closed by the target while idle.
func (rd *Reader) ReadResponse(resp *Response, head bool) (started bool, err error) {
	h, started, err := rd.readHead(MaxResponseHead)
	if err != nil {
		if errors.Is(err, ErrHeadTooLarge) {
			return true, ErrResponseTooLarge
		}
		return started, err
	}
	return true, resp.parse(h, head)
}

func (resp *Response) parse(h []byte, head bool) error {
	f, k := keepFields(resp.Fields, resp.Kinds)
	*resp = Response{Fields: f, Kinds: k}
	line, rest := nextLine(h)
	// HTTP/1.x SP 3DIGIT [SP reason]
	if len(line) < 12 || line[8] != ' ' || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[7] != '0' && line[7] != '1' {
		return ErrStatusLine
	}
	resp.Minor = int(line[7] - '0')
	s := line[9:12]
	if !ValidStatus(s) {
		return ErrStatusLine
	}
	resp.Status = int(s[0]-'0')*100 + int(s[1]-'0')*10 + int(s[2]-'0')
	if len(line) > 12 {
		if line[12] != ' ' {
			return ErrStatusLine
		}
		resp.Reason = line[13:]
		if !validValue(resp.Reason) {
			return ErrStatusLine
		}
	}
	for len(rest) > 0 {
		var l []byte
		l, rest = nextLine(rest)
		if len(l) == 0 {
			break
		}
		colon := bytes.IndexByte(l, ':')
		if colon <= 0 || !ValidName(l[:colon]) {
			return ErrResponseField
		}
		v := TrimOWS(l[colon+1:])
		if !validValue(v) {
			return ErrResponseField
		}
		resp.Fields = append(resp.Fields, Field{Name: l[:colon], Value: v})
		resp.Kinds = append(resp.Kinds, KindOf(l[:colon]))
	}
	return resp.derive(head)
}

// derive works out the body's framing (RFC 9112 §6.3).
func (resp *Response) derive(head bool) error {
	var connClose, connKeepAlive, hasNamed, te bool
	for i, f := range resp.Fields {
		switch resp.Kinds[i] {
		case KindContentLength:
			n, ok := parseLength(f.Value)
			if !ok || resp.HasLength && n != resp.ContentLength {
				return ErrResponseLength
			}
			resp.HasLength, resp.ContentLength = true, n
		case KindTransferEncoding:
			for tok := range tokens(f.Value) {
				tok = codingName(tok)
				switch {
				case EqualLower(tok, "chunked"):
					if resp.Framing == Chunked {
						return ErrResponseCoding
					}
					resp.Framing = Chunked
				case EqualLower(tok, "identity"):
				default:
					// Another coding: latch cannot find the end of the
					// body but by the connection closing.
					resp.Framing = UntilClose
				}
				te = true
			}
		case KindConnection:
			for tok := range tokens(f.Value) {
				switch connOption(tok) {
				case optClose:
					connClose = true
				case optKeepAlive:
					connKeepAlive = true
				case optName:
					hasNamed = true
				}
			}
		}
	}
	if hasNamed && !markNamed(resp.Fields, resp.Kinds) {
		return ErrResponseField
	}
	// A Transfer-Encoding in HTTP/1.0, or beside a Content-Length, makes
	// the framing suspect: the connection is not reused (RFC 9112 §6.1,
	// §6.3).
	resp.Close = connClose || resp.Minor == 0 && (!connKeepAlive || te) || te && resp.HasLength
	switch {
	case head || resp.Status < 200 || resp.Status == 204 || resp.Status == 304:
		resp.Framing = NoBody
	case te:
		if resp.Framing != Chunked {
			resp.Framing = UntilClose
		}
		// A Content-Length beside Transfer-Encoding is ignored (§6.3).
		resp.HasLength = false
	case resp.HasLength:
		resp.Framing = Length
		if resp.ContentLength == 0 {
			resp.Framing = NoBody
		}
	default:
		resp.Framing = UntilClose
	}
	if resp.Framing == UntilClose {
		resp.Close = true
	}
	return nil
}
