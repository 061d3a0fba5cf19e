// Package h1 reads and writes HTTP/1.1 messages on the wire for latch's data
// path: request and response heads parsed in place without allocating, body
// framing (Content-Length, chunked, until close) and the limits ALB applies.
package h1

// Field is one header field as it appeared on the wire. Name and Value point
// into the connection's read buffer and are valid until the next message
// is read; Value has its leading and trailing whitespace removed.
type Field struct {
	Name, Value []byte
}
