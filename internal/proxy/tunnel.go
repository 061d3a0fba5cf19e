package proxy

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latch-lb/latch/internal/h1"
)

// tunnel writes x.out, the target's switch of protocols (101), then relays
// the connection the target switched to another protocol (a WebSocket,
// say) in both directions until either side closes it or it stays silent
// for the idle timeout. The switch response goes through stickiness like
// any other, so a client that polls first and upgrades later stays on one
// target.
func (c *goConn) tunnel(x *exchange) {
	r, w, uc := &x.out, c.wr, x.uc
	x.uc = nil // the tunnel's now: it closes it
	// A cut closes the target's side too: the tunnel moves its deadlines
	// on by itself, so a past one would not stop it.
	x.guard.set(nil, func() { uc.Conn.Close() })
	defer x.guard.set(nil, nil)
	x.stopWatch()
	idle := x.rt.IdleTimeout
	c.touch(time.Now().UnixNano(), idle)
	w.WriteString("HTTP/1.1 101 ")
	if len(r.reason) > 0 {
		w.Write(r.reason)
	} else {
		w.WriteString("Switching Protocols")
	}
	w.WriteString("\r\n")
	for i, f := range r.fields {
		// Upgrade stays; Connection is latch's own, below.
		if k := r.kinds[i]; k != h1.KindUpgrade && k.HopByHop() {
			continue
		}
		w.WriteField(f.Name, f.Value)
	}
	x.writeSticky(w)
	w.WriteString("Connection: Upgrade\r\n\r\n")
	if err := w.Flush(); err != nil {
		uc.Close()
		return
	}
	// Bytes either side sent right behind its head are already buffered.
	tn := &tunnelState{idle: idle}
	tn.active.Store(time.Now().UnixNano())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		x.rec.BytesIn += tn.pipe(uc.Conn, c.nc, c.rd)
	}()
	x.rec.BytesOut += tn.pipe(c.nc, uc.Conn, uc.R)
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
func (tn *tunnelState) pipe(dst, src net.Conn, rd *h1.Reader) (copied int64) {
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
			return copied
		}
		copied += int64(n)
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
				return copied
			}
			copied += int64(n)
			continue
		}
		if isTimeout(err) && time.Since(time.Unix(0, tn.active.Load())) < tn.idle {
			continue // the other direction kept the tunnel alive
		}
		if isTimeout(err) {
			src.Close()
			dst.Close()
		}
		return copied
	}
}
