// Package conformance holds latch's HTTP conformance suite; it has no code of its own.
//
// The tests are black-box: each starts latch through its public API
// (config.Parse, lb.New, Apply) on 127.0.0.1, puts real targets behind it
// (net/http servers, or raw TCP servers where the exact bytes matter) and
// talks to it with real clients (net/http, raw sockets, WebSocket). They
// check the HTTP rules latch's data path must keep (RFC 9110 and 9112, and
// where the RFCs leave a choice, what AWS ALB, HAProxy or nginx do), so that
// any rewrite of the data path can be checked against them.
//
//	go test -race -count=1 ./internal/conformance/
//
// LATCH_CONFORMANCE_LOG=1 sends latch's debug log to stderr.
package conformance
