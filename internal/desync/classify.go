package desync

import (
	"bytes"

	"github.com/latch-lb/latch/internal/h1"
)

// Classify classifies one request as parsed leniently off the wire: method,
// request target (uri) and version exactly as sent (version "" means
// HTTP/0.9, that is no version on the request line), and every header field
// in order, names exactly as sent (any bytes, including spaces and control
// bytes), values with surrounding whitespace trimmed (untrimmed values are
// classified the same).
//
// A request's verdict is the first of its most severe problems, taken in
// ALB's order: header characters and names, Transfer-Encoding and
// Content-Length, method, version, request target. Classify does not
// allocate unless the message has to quote a header, and never for a
// Compliant request; it keeps no reference to its arguments.
func Classify(method, uri, version []byte, fields []h1.Field) Verdict {
	proto, versionReason, versionText := parseVersion(version)

	// f collects findings in ALB's order. Transfer-Encoding and Content-Length
	// values are checked in the same pass over the fields, but ALB weighs
	// them after every header name, and not at all when the version gives
	// them no meaning, so their findings wait in te and cl.
	var (
		f, te, cl  finding
		teSeen     bool   // a Transfer-Encoding (or lookalike) header
		chunkedEnd bool   // the last known coding seen was chunked
		clSeen     bool   // a Content-Length (or lookalike) header
		clValid    bool   // one of them held a valid length
		clValue    uint64 // the first valid length
	)
	for i := range fields {
		name, value := fields[i].Name, fields[i].Value
		g := max(grade(name, cToken), grade(value[plainPrefix(value, ' '):], cValue))

		teLike := resemble(name, teName)
		clLike := unlike
		if teLike == unlike {
			clLike = resemble(name, clName)
		}
		// Framing header values are worth logging; other values may be
		// private and are masked.
		shown := maskedValue
		if teLike != unlike || clLike != unlike {
			shown = plainValue
		}

		switch g {
		case broken:
			f.raiseField(BadHeader, "CR, LF or NUL in header", i, shown)
		case deviant:
			f.raiseField(NonCompliantHeader, "header with characters RFC 7230 does not allow", i, shown)
		}
		if emptyName(name) {
			// Engines split such a line at a different colon, or not at all.
			f.raise(EmptyHeader, "empty header name, or one starting with a colon")
			continue
		}

		var isTE, isCL bool
		switch {
		case teLike == same:
			isTE = true
		case clLike == same:
			isCL = true
		case g == broken:
			// Already Severe; ALB does not read a broken lookalike's value.
		case teLike == lookalike:
			f.raiseField(SuspiciousHeader, "header name too close to Transfer-Encoding", i, plainValue)
			isTE = true
		case clLike == lookalike:
			f.raiseField(SuspiciousHeader, "header name too close to Content-Length", i, plainValue)
			isCL = true
		}

		if isTE {
			teSeen = true
			for rest := value; ; {
				item, comma := rest, bytes.IndexByte(rest, ',')
				if comma >= 0 {
					item, rest = rest[:comma], rest[comma+1:]
				}
				if c := transferCoding(item); c == unknownCoding {
					te.raiseField(BadTransferEncoding, "unknown Transfer-Encoding", i, plainValue)
				} else {
					// Like ALB, only chunked twice in a row counts: whether
					// chunked is the final coding is for the framing code.
					if c == chunked && chunkedEnd {
						te.raise(MultipleTransferEncodingChunked, "Transfer-Encoding applies chunked more than once")
					}
					chunkedEnd = c == chunked
				}
				if comma < 0 {
					break
				}
			}
		}
		if isCL {
			clSeen = true
			n, problem := parseLength(value)
			switch {
			case problem != "":
				cl.raiseField(BadContentLength, problem, i, plainValue)
			case !clValid:
				clValid, clValue = true, n
			case n != clValue:
				cl.raise(MultipleContentLength, "multiple Content-Length headers with different values")
			default:
				cl.raise(DuplicateContentLength, "duplicate Content-Length headers")
			}
		}
	}

	switch {
	case !teSeen && !clSeen:
	case teSeen && proto != http11:
		// Chunked framing arrived in HTTP/1.1; an older engine reads the body
		// some other way.
		f.raise(UndefinedTransferEncodingSemantics, pick(proto == http09,
			"Transfer-Encoding in an HTTP/0.9 request",
			"Transfer-Encoding in an HTTP/1.0 request"))
	case clSeen && proto == http09:
		f.raise(UndefinedContentLengthSemantics, "Content-Length in an HTTP/0.9 request")
	default:
		f.merge(te)
		f.merge(cl)
		// RFC 7231 gives a GET or HEAD body no meaning, so engines disagree on
		// whether it is there at all.
		get := string(method) == "GET"
		if get || string(method) == "HEAD" {
			if teSeen {
				f.raise(UndefinedTransferEncodingSemantics, pick(get,
					"GET request with Transfer-Encoding",
					"HEAD request with Transfer-Encoding"))
			}
			switch {
			case !clValid:
			case clValue == 0:
				f.raise(GetHeadZeroContentLength, pick(get,
					"GET request with Content-Length: 0",
					"HEAD request with Content-Length: 0"))
			default:
				f.raise(UndefinedContentLengthSemantics, pick(get,
					"GET request with a non-zero Content-Length",
					"HEAD request with a non-zero Content-Length"))
			}
		}
		if teSeen && clValid {
			f.raise(BothTeClPresent, "both Transfer-Encoding and Content-Length")
		}
	}

	if grade(method, cToken) != conforming {
		f.raise(BadMethod, "method with characters other than RFC 7230 tchar")
	}
	if versionReason != ReasonCompliant {
		f.raise(versionReason, versionText)
	}
	for _, c := range uri[plainPrefix(uri, '!'):] {
		k := class[c]
		if k&cTarget != 0 {
			continue
		}
		if k&cBad != 0 {
			f.raise(BadUri, "CR, LF or NUL in the URI")
			break
		}
		if c == ' ' {
			// Some engines accept it; had it split the request line, the
			// version check would have caught it.
			f.raise(SpaceInUri, "space in the URI")
		} else {
			f.raise(AmbiguousUri, "control character in the URI")
		}
	}

	if f.tier == Compliant {
		return Verdict{}
	}
	return Verdict{Tier: f.tier, Reason: f.reason, Message: f.message(fields)}
}

// emptyName reports whether a header name is empty once trimmed, or starts
// with a colon.
func emptyName(name []byte) bool {
	if len(name) > 0 && name[0] != ':' && class[name[0]]&cSpace == 0 {
		return false // the usual case, without trimming
	}
	n := h1.TrimOWS(name)
	return len(n) == 0 || n[0] == ':'
}

// pick returns a if cond, else b; it keeps choices between constant
// messages on one line each.
func pick(cond bool, a, b string) string {
	if cond {
		return a
	}
	return b
}

// protocol is what a request's version means for body framing.
type protocol uint8

const (
	http11 protocol = iota // HTTP/1.1 and everything that is not older, malformed versions included
	http10                 // HTTP/1.0: no Transfer-Encoding
	http09                 // HTTP/0.9: neither Transfer-Encoding nor Content-Length
)

// parseVersion reads a request's version and returns, besides its protocol,
// the reason and message a non-compliant version earns.
//
// Unlike http-desync-guardian, which stops at any version that sorts at or
// after "HTTP/2" and calls the request Compliant, every version other than
// HTTP/1.x and HTTP/0.9 is BadVersion here: a request that reaches an
// HTTP/1 data path is framed by HTTP/1 rules whatever it claims, and
// byte-wise sorting would also let "http/1.1" through unchecked. The version
// is trimmed before it decides the protocol, where the library compared the
// raw bytes, so that "HTTP/1.0 " still gets no Transfer-Encoding.
func parseVersion(v []byte) (protocol, Reason, string) {
	t := h1.TrimOWS(v)
	switch {
	case len(t) == 0:
		return http09, NonCompliantVersion, "no HTTP version: an HTTP/0.9 request"
	case string(t) == "HTTP/0.9":
		return http09, NonCompliantVersion, "HTTP version HTTP/0.9"
	case len(t) != len("HTTP/1.1") || string(t[:7]) != "HTTP/1." || t[7] < '0' || t[7] > '9':
		return http11, BadVersion, "malformed HTTP version"
	}
	p := http11
	if t[7] == '0' {
		p = http10
	}
	switch {
	case len(t) != len(v):
		return p, NonCompliantVersion, "whitespace around the HTTP version"
	case t[7] > '1':
		return p, NonCompliantVersion, "HTTP version above HTTP/1.1"
	}
	return p, ReasonCompliant, ""
}

// coding is a transfer coding that ALB knows.
type coding uint8

const (
	unknownCoding coding = iota
	chunked
	otherCoding // compress, deflate, gzip, identity
)

// transferCoding returns the coding named by one comma-separated item of a
// Transfer-Encoding value, ignoring parameters after ';'.
func transferCoding(item []byte) coding {
	name := h1.TrimOWS(item)
	if semi := bytes.IndexByte(name, ';'); semi >= 0 {
		name = h1.TrimOWS(name[:semi])
	}
	switch {
	case h1.EqualLower(name, "chunked"):
		return chunked
	case h1.EqualLower(name, "gzip"), h1.EqualLower(name, "deflate"), h1.EqualLower(name, "compress"), h1.EqualLower(name, "identity"):
		return otherCoding
	}
	return unknownCoding
}

// parseLength parses a Content-Length value as ALB does: decimal digits,
// trimmed of whitespace, within 64 bits. It returns a message saying what is
// wrong, or "". Like ALB it reads an empty value as 0.
func parseLength(v []byte) (uint64, string) {
	const maxUint64 = 1<<64 - 1
	var n uint64
	for _, c := range h1.TrimOWS(v) {
		if c < '0' || c > '9' {
			return 0, "Content-Length is not a decimal number"
		}
		d := uint64(c - '0')
		if n > (maxUint64-d)/10 {
			return 0, "Content-Length overflows 64 bits"
		}
		n = n*10 + d
	}
	return n, ""
}

// finding is the first of the most severe problems seen so far in one part
// of the checks, with what its message needs.
type finding struct {
	tier   Tier
	reason Reason
	detail detail // which of the field to quote after text
	field  int    // the field quoted, unless detail is textOnly
	text   string
}

// detail is what a message shows of the header it names.
type detail uint8

const (
	textOnly    detail = iota // no header
	plainValue                // the name and the value, escaped
	maskedValue               // the name, escaped, and the value's shape without its text
)

// raise records a problem of reason r unless one at least as severe came
// first: ALB keeps the first of the most severe problems.
func (f *finding) raise(r Reason, text string) {
	if t := r.Tier(); t > f.tier {
		*f = finding{tier: t, reason: r, text: text}
	}
}

// raiseField is raise for a problem in fields[i].
func (f *finding) raiseField(r Reason, text string, i int, d detail) {
	if t := r.Tier(); t > f.tier {
		*f = finding{tier: t, reason: r, detail: d, field: i, text: text}
	}
}

// merge records g as if its problems had been raised on f in order. That
// holds because keeping the first of the worst is associative.
func (f *finding) merge(g finding) {
	if g.tier > f.tier {
		*f = g
	}
}
