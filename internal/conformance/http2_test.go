package conformance_test

import "testing"

// TestHTTP2 will check HTTP/2 through latch once listeners speak it:
//   - h2c with prior knowledge and TLS with ALPN "h2" on the listener, and a
//     client that offers only HTTP/1.1 still served on the same listener;
//   - many concurrent streams on one connection, each answered by the right
//     target response, with latch's sticky cookies;
//   - the same data-path rules as over HTTP/1.1: streaming both ways, 8 MiB
//     bodies, trailers (gRPC-style: TE: trailers, grpc-status in trailers),
//     HEAD, 204 and 304, hop-by-hop fields (which HTTP/2 forbids: a request
//     carrying Connection is malformed and gets a stream error), multiple
//     Set-Cookie and a Cookie split into several fields re-joined with "; "
//     for an HTTP/1.1 target, :path forwarded verbatim, header limits;
//   - translation to HTTP/1.1 targets: :authority becomes Host, a request
//     body of unknown length is sent chunked, an h2 client's RST_STREAM
//     aborts the target request;
//   - WebSocket over HTTP/2 (extended CONNECT, RFC 8441) if offered.
func TestHTTP2(t *testing.T) {
	t.Skip("h2c and TLS listeners arrive with the listeners issue")
}
