package desync

import "encoding/binary"

// Byte classes, looked up in one table so that each byte of a request costs a
// single load and mask.
const (
	cToken  = 1 << iota // RFC 7230 tchar: allowed in a method or header name
	cValue              // VCHAR, obs-text, SP or HTAB: allowed in a header value
	cTarget             // above SP and not DEL: allowed in a request target
	cBad                // CR, LF or NUL: a parser disagreement or an injection, never legitimate
	cSpace              // SP or HTAB: RFC 7230 whitespace
	cAlnum              // ASCII letter or digit
	cPrint              // VCHAR or SP: printed as is in messages
)

var class = func() (t [256]uint8) {
	for i := range t {
		c := byte(i)
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		vchar := '!' <= c && c <= '~'
		if alnum {
			t[i] |= cAlnum | cToken
		}
		switch c {
		case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
			t[i] |= cToken
		}
		if vchar || c >= 0x80 || c == ' ' || c == '\t' {
			t[i] |= cValue
		}
		if c > ' ' && c != 0x7f {
			t[i] |= cTarget
		}
		if c == '\r' || c == '\n' || c == 0 {
			t[i] |= cBad
		}
		if c == ' ' || c == '\t' {
			t[i] |= cSpace
		}
		if vchar || c == ' ' {
			t[i] |= cPrint
		}
	}
	return t
}()

// conformance grades a header name or value by its characters. The order
// matters: a field takes the worst grade of its name and its value.
type conformance uint8

const (
	conforming conformance = iota // every byte allowed
	deviant                       // some byte not allowed, but none of CR, LF, NUL
	broken                        // CR, LF or NUL
)

// grade returns how well b keeps to the byte class allowed.
func grade(b []byte, allowed uint8) conformance {
	// The common case, every byte allowed, gets a loop of its own.
	for i, c := range b {
		if class[c]&allowed == 0 {
			return gradeDeviant(b[i:], allowed)
		}
	}
	return conforming
}

// gradeDeviant grades b, which has a byte that is not allowed.
func gradeDeviant(b []byte, allowed uint8) conformance {
	for _, c := range b {
		if class[c]&cBad != 0 {
			return broken
		}
	}
	return deviant
}

// plainPrefix returns how many leading bytes of b, in whole 8-byte words,
// are all at least lowest and none DEL; lowest is at most 0x80. Values and
// request targets are most of a request's bytes and nearly always plain
// text, so checking them a word at a time before the per-byte tables pays.
func plainPrefix(b []byte, lowest byte) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	n := 0
	for ; len(b)-n >= 8; n += 8 {
		x := binary.LittleEndian.Uint64(b[n:])
		del := x ^ ones*0x7f // a zero byte where x has DEL
		// (y - ones*k) &^ y & highs is non-zero exactly when some byte of y
		// is below k (for k <= 0x80): only such a byte can borrow, and a
		// byte of 0x80 or more never sets its high bit in ^y.
		if (x-ones*uint64(lowest))&^x&highs != 0 || (del-ones)&^del&highs != 0 {
			break
		}
	}
	return n
}
