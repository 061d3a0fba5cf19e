package h2

import (
	"sync/atomic"
	"time"
)

// Counters counts what connections answered, for the metrics package to
// read; connections may share one.
type Counters struct {
	Conns   atomic.Int64 // connections open now
	Streams atomic.Int64 // streams opened, ever
	// ConnErrors counts connections ended with a GOAWAY for an error,
	// whatever the error (the counters below say which attacks).
	ConnErrors atomic.Int64
	BadPreface atomic.Int64 // a connection that did not begin with the preface
	// ClientResets counts streams the client reset; RapidResets the
	// connections closed for resetting more than ResetLimit a second.
	ClientResets atomic.Int64
	RapidResets  atomic.Int64
	// ContinuationFloods counts connections closed for a header block
	// larger than twice MaxHeaderList on the wire.
	ContinuationFloods atomic.Int64
	// HeaderListTooLarge counts header sections refused for decoding to
	// more than MaxHeaderList (HPACK bombs among them).
	HeaderListTooLarge atomic.Int64
	// Floods counts connections closed for frames that carry nothing past
	// FloodLimit a second, or replies queued faster than the peer reads;
	// PingFloods and SettingsFloods those among them PING or SETTINGS
	// ended.
	Floods         atomic.Int64
	PingFloods     atomic.Int64
	SettingsFloods atomic.Int64
	// RefusedStreams counts streams refused (REFUSED_STREAM) past the
	// concurrency limit.
	RefusedStreams atomic.Int64
	// Stalls counts streams reset after StallTimeout on a shut window;
	// WriteStalls connections closed after WriteTimeout on a full socket.
	Stalls      atomic.Int64
	WriteStalls atomic.Int64
	IdleClosed  atomic.Int64 // connections closed after IdleTimeout
}

func nowNano() int64 { return time.Now().UnixNano() }
