package proxy

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latch-lb/latch/internal/h1"
	"github.com/latch-lb/latch/internal/target"
	"github.com/latch-lb/latch/internal/upstream"
)

// tunnel relays a connection the target switched to another protocol (a
// WebSocket, say) in both directions until either side closes it or it
// stays silent for the idle timeout. The switch response goes through
// stickiness like any other, so a client that polls first and upgrades
// later stays on one target.
func (c *clientConn) tunnel(x *exchange, rt *Route, t *target.Target, uc *upstream.Conn, issued int64) {
	resp, w := &x.resp, c.wr
	c.touch(c.h.now().UnixNano(), rt.IdleTimeout)
	w.WriteString("HTTP/1.1 101 ")
	if len(resp.Reason) > 0 {
		w.Write(resp.Reason)
	} else {
		w.WriteString("Switching Protocols")
	}
	w.WriteString("\r\n")
	for i, f := range resp.Fields {
		// Upgrade stays; Connection is latch's own, below.
		if k := resp.Kinds[i]; k != h1.KindUpgrade && k.HopByHop() {
			continue
		}
		w.WriteField(f.Name, f.Value)
	}
	c.writeStickyCookies(t, issued)
	w.WriteString("Connection: Upgrade\r\n\r\n")
	if err := w.Flush(); err != nil {
		uc.Close()
		return
	}
	// Bytes either side sent right behind its head are already buffered.
	tn := &tunnelState{idle: rt.IdleTimeout}
	tn.active.Store(time.Now().UnixNano())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tn.pipe(uc.Conn, c.nc, c.rd)
	}()
	tn.pipe(c.nc, uc.Conn, uc.R)
	wg.Wait()
	uc.Close()
}

// tunnelState is what both directions of a tunnel share: the idle timeout
// counts silence in both, as ALB's ("no data sent or received").
type tunnelState struct {
	idle   time.Duration
	active atomic.Int64 // unix nanoseconds of the latest byte either way
}

// pipe copies from src (first what rd has buffered) to dst until src ends
// or the tunnel idles out, then half-closes dst so that the other
// direction can end in its own time.
func (tn *tunnelState) pipe(dst, src net.Conn, rd *h1.Reader) {
	defer func() {
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
	}()
	buf := make([]byte, 32<<10)
	for n := rd.ReadBuffered(buf); n > 0; n = rd.ReadBuffered(buf) {
		dst.SetWriteDeadline(time.Now().Add(tn.idle))
		if _, err := dst.Write(buf[:n]); err != nil {
			src.Close()
			return
		}
	}
	for {
		src.SetReadDeadline(time.Unix(0, tn.active.Load()).Add(tn.idle))
		n, err := src.Read(buf)
		if n > 0 {
			now := time.Now()
			tn.active.Store(now.UnixNano())
			dst.SetWriteDeadline(now.Add(tn.idle))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				return
			}
			continue
		}
		if isTimeout(err) && time.Since(time.Unix(0, tn.active.Load())) < tn.idle {
			continue // the other direction kept the tunnel alive
		}
		if isTimeout(err) {
			src.Close()
			dst.Close()
		}
		return
	}
}
