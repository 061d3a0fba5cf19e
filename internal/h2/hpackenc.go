package h2

// latch's HPACK encoding of responses (RFC 7541). Decoding, where the
// dynamic table, Huffman codes and the limits an attacker pushes against
// live, is golang.org/x/net/http2/hpack's; a response is encoded here, in
// the simplest form the RFC allows, as HAProxy does: no dynamic table
// (so a connection keeps no table, and no string of a response outlives
// it), no Huffman coding (which cost a tenth of the CPU of an HTTP/2
// request), each field a literal without indexing, its name by the static
// table's index when it has one.

// appendStatus appends :status, indexed when the static table has it.
func appendStatus(out []byte, status int) []byte {
	switch status {
	case 200:
		return append(out, 0x80|8)
	case 204:
		return append(out, 0x80|9)
	case 206:
		return append(out, 0x80|10)
	case 304:
		return append(out, 0x80|11)
	case 400:
		return append(out, 0x80|12)
	case 404:
		return append(out, 0x80|13)
	case 500:
		return append(out, 0x80|14)
	}
	out = append(out, 8) // literal without indexing, :status's name
	return append(out, 3, byte('0'+status/100), byte('0'+status/10%10), byte('0'+status%10))
}

// appendField appends a field (its name in lower case) as a literal
// without indexing.
func appendField(out, name, value []byte) []byte {
	if i := staticName(name); i > 0 {
		out = appendInt(out, 4, 0, uint64(i))
	} else {
		out = append(out, 0)
		out = appendInt(out, 7, 0, uint64(len(name)))
		out = append(out, name...)
	}
	out = appendInt(out, 7, 0, uint64(len(value)))
	return append(out, value...)
}

// appendInt appends v as an HPACK integer with an n-bit prefix, the
// first byte's other bits set to first (RFC 7541 §5.1).
func appendInt(out []byte, n uint, first byte, v uint64) []byte {
	max := uint64(1)<<n - 1
	if v < max {
		return append(out, first|byte(v))
	}
	out = append(out, first|byte(max))
	for v -= max; v >= 128; v >>= 7 {
		out = append(out, byte(v&0x7f|0x80))
	}
	return append(out, byte(v))
}

// staticName returns the index of name (lower case) in HPACK's static
// table, its first entry of that name; 0 if it has none.
func staticName(name []byte) int {
	switch string(name) {
	case "accept-charset":
		return 15
	case "accept-encoding":
		return 16
	case "accept-language":
		return 17
	case "accept-ranges":
		return 18
	case "accept":
		return 19
	case "access-control-allow-origin":
		return 20
	case "age":
		return 21
	case "allow":
		return 22
	case "authorization":
		return 23
	case "cache-control":
		return 24
	case "content-disposition":
		return 25
	case "content-encoding":
		return 26
	case "content-language":
		return 27
	case "content-length":
		return 28
	case "content-location":
		return 29
	case "content-range":
		return 30
	case "content-type":
		return 31
	case "cookie":
		return 32
	case "date":
		return 33
	case "etag":
		return 34
	case "expect":
		return 35
	case "expires":
		return 36
	case "from":
		return 37
	case "host":
		return 38
	case "if-match":
		return 39
	case "if-modified-since":
		return 40
	case "if-none-match":
		return 41
	case "if-range":
		return 42
	case "if-unmodified-since":
		return 43
	case "last-modified":
		return 44
	case "link":
		return 45
	case "location":
		return 46
	case "max-forwards":
		return 47
	case "proxy-authenticate":
		return 48
	case "proxy-authorization":
		return 49
	case "range":
		return 50
	case "referer":
		return 51
	case "refresh":
		return 52
	case "retry-after":
		return 53
	case "server":
		return 54
	case "set-cookie":
		return 55
	case "strict-transport-security":
		return 56
	case "transfer-encoding":
		return 57
	case "user-agent":
		return 58
	case "vary":
		return 59
	case "via":
		return 60
	case "www-authenticate":
		return 61
	}
	return 0
}
