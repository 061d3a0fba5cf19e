// Package h1 reads and writes HTTP/1.1 messages on the wire for latch's data
// path: request and response heads parsed in place without allocating, body
// framing (Content-Length, chunked, until close) and the limits ALB applies.
package h1

import "bytes"

// Field is one header field as it appeared on the wire. Name and Value point
// into the connection's read buffer and are valid until the next message
// is read; Value has its leading and trailing whitespace removed.
type Field struct {
	Name, Value []byte
}

// tchar is RFC 9110's token character set.
var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// ValidName reports whether b is a field name: a token (RFC 9110 §5.1).
func ValidName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tchar[c] {
			return false
		}
	}
	return true
}

// validValue allows visible ASCII, obs-text, space and tab (RFC 9110 §5.5).
func validValue(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// nextLine splits off the first line of b, without its CRLF or LF.
func nextLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil
	}
	line, rest = b[:i], b[i+1:]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, rest
}
