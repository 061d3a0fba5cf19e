package proxy

import (
	"io"
	"net/http"

	"github.com/latch-lb/latch/internal/h1"
	"github.com/latch-lb/latch/internal/target"
	"github.com/latch-lb/latch/internal/upstream"
)

// respond relays the target's response, whose head has been read, to the
// client, and returns uc to its pool when it can carry another request.
func (c *clientConn) respond(x *exchange, rt *Route, t *target.Target, uc *upstream.Conn, issued int64) (bool, error) {
	req, resp, w := &x.req, &x.resp, c.wr
	keep := x.mayKeep(x.body.Done())
	// How the body travels to the client: as it came, or chunked when its
	// end is known only by the target closing (so that the client's
	// connection survives it). An HTTP/1.0 client cannot take chunks: it
	// gets the body raw and the connection closes after it.
	out := resp.Framing
	if out == h1.UntilClose || out == h1.Chunked {
		if req.Minor == 1 {
			out = h1.Chunked
		} else {
			out, keep = h1.UntilClose, false
		}
	}

	now := c.h.now()
	c.touch(now.UnixNano(), rt.IdleTimeout)
	w.WriteString("HTTP/1.1 ")
	w.WriteInt(int64(resp.Status))
	w.WriteByte(' ')
	if len(resp.Reason) > 0 {
		w.Write(resp.Reason)
	} else {
		w.WriteString(http.StatusText(resp.Status))
	}
	w.WriteString("\r\n")
	for i, f := range resp.Fields {
		switch k := resp.Kinds[i]; {
		case k == h1.KindContentLength:
			continue // written below, once
		case k == h1.KindTrailer:
			if out != h1.Chunked {
				continue // trailers go only where chunks go
			}
		case k.HopByHop():
			continue
		}
		w.WriteField(f.Name, f.Value)
	}
	c.writeStickyCookies(t, issued)
	switch {
	case out == h1.Length:
		w.WriteString("Content-Length: ")
		w.WriteInt(resp.ContentLength)
		w.WriteString("\r\n")
	case out == h1.Chunked:
		w.WriteString("Transfer-Encoding: chunked\r\n")
	case out == h1.NoBody && resp.HasLength && resp.Status != http.StatusNoContent:
		// HEAD and 304 keep the length of the body they do not carry.
		w.WriteString("Content-Length: ")
		w.WriteInt(resp.ContentLength)
		w.WriteString("\r\n")
	}
	if !keep {
		w.WriteString("Connection: close\r\n")
	} else if req.Minor == 0 {
		w.WriteString("Connection: keep-alive\r\n")
	}
	w.WriteString("\r\n")

	if err := c.relayBody(rt, t, uc, out); err != nil {
		uc.Close()
		return false, err
	}
	if err := w.Flush(); err != nil {
		x.putOrClose(uc, now.UnixNano())
		return false, errClientGone
	}
	x.putOrClose(uc, now.UnixNano())
	return keep, nil
}

// putOrClose gives the target connection back to its pool, unless the
// target closes it, or the request was ambiguous: then nothing smuggled
// behind it may be read from the connection.
func (x *exchange) putOrClose(uc *upstream.Conn, now int64) {
	// A client going away from now on must not touch a pooled connection;
	// one whose watch has fired already is not pooled.
	if !x.stopWatch() || x.resp.Close || x.closeAfter || x.req.BothTEAndCL {
		uc.Close()
	} else {
		uc.Release(now)
	}
}

// writeStickyCookies adds the Set-Cookie fields that pin the session.
func (c *clientConn) writeStickyCookies(t *target.Target, issued int64) {
	c.buf = c.appendCookies(c.buf[:0], t, issued)
	c.wr.Write(c.buf)
}

// relayBody copies the response body to the client. What has arrived is
// passed on whenever the target pauses, so a streamed response reaches the
// client as the target sends it; a response that arrives whole goes out in
// one write with its head.
func (c *clientConn) relayBody(rt *Route, t *target.Target, uc *upstream.Conn, out h1.Framing) error {
	resp := &c.resp
	c.rbody.Reset(uc.R, resp.Framing, resp.ContentLength, true)
	w := c.wr
	for !c.rbody.Done() {
		if uc.R.Buffered() == 0 {
			if w.Buffered() > 0 {
				if err := w.Flush(); err != nil {
					return errClientGone
				}
			}
			now := c.h.now().UnixNano()
			uc.SetIdleDeadline(now, rt.IdleTimeout)
			c.touch(now, rt.IdleTimeout)
		}
		p, err := c.rbody.Next()
		if len(p) > 0 {
			if out == h1.Chunked {
				w.WriteChunk(p)
			} else {
				w.Write(p)
			}
			if w.Err() != nil {
				return errClientGone
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			c.h.log.Warn("target failed mid-response", "group", c.be.Group.Name, "target", t.ID, "err", err)
			w.Flush()
			return errCut
		}
	}
	if out == h1.Chunked {
		w.WriteLastChunk(c.rbody.Trailers())
	}
	return nil
}
