// Package proxytest helps tests watch latch's data path.
package proxytest

import (
	"sync/atomic"

	"github.com/latch-lb/latch/internal/proxy"
	"github.com/latch-lb/latch/internal/sticky"
)

// Counter is a proxy.Observer that counts what it sees, without locking or
// allocating, as a metrics observer would.
type Counter struct {
	// Requests begun and ended, refused before they began, and ended with
	// latch's own answer.
	Begun, Ended, Refusals, ByLatch atomic.Uint64
	// Bytes of request and response bodies, over every request ended.
	BytesIn, BytesOut atomic.Int64
	// Sticky counts the ended requests by session outcome.
	Sticky [8]atomic.Uint64
	// Classified counts requests by desync classification reason, and
	// Blocked those of them that mitigation refused.
	Classified, Blocked [32]atomic.Uint64
	// Client connections opened (OnLoop of them on an event loop), handed
	// from a loop to a goroutine, moved from a goroutine to a loop (TLS),
	// and closed.
	Opened, OnLoop, HandedOff, ToLoop, Closed atomic.Uint64
}

var _ proxy.Observer = (*Counter)(nil)

func (c *Counter) Begin(r *proxy.Record) {
	c.Begun.Add(1)
	if r.Classified {
		c.Classified[r.Desync.Reason%32].Add(1)
	}
}

func (c *Counter) End(r *proxy.Record) {
	c.Ended.Add(1)
	if r.ByLatch {
		c.ByLatch.Add(1)
	}
	c.BytesIn.Add(r.BytesIn)
	c.BytesOut.Add(r.BytesOut)
	c.Sticky[r.Sticky%8].Add(1)
}

func (c *Counter) Refused(r *proxy.Record) {
	c.Refusals.Add(1)
	if r.Classified {
		c.Classified[r.Desync.Reason%32].Add(1)
		if r.DesyncBlocked {
			c.Blocked[r.Desync.Reason%32].Add(1)
		}
	}
}

func (c *Counter) Conn(e proxy.ConnEvent) {
	switch e.Kind {
	case proxy.ConnOpened:
		c.Opened.Add(1)
		if e.OnLoop {
			c.OnLoop.Add(1)
		}
	case proxy.ConnHandedOff:
		c.HandedOff.Add(1)
	case proxy.ConnToLoop:
		c.ToLoop.Add(1)
	case proxy.ConnClosed:
		c.Closed.Add(1)
	}
}

// Outcome returns how many ended requests had session outcome o.
func (c *Counter) Outcome(o sticky.Outcome) uint64 { return c.Sticky[o%8].Load() }
