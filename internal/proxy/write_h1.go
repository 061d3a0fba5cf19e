package proxy

import (
	"io"
	"net/http"
	"time"

	"github.com/latch-lb/latch/internal/h1"
)

// write writes x.out to the HTTP/1.1 client: its head, with framing of
// latch's own and the session's fields, then its body as it arrives. A
// body is passed on whenever its source pauses, so that a streamed
// response reaches the client as the target sends it; one that arrived
// whole goes out in one write with its head. On an event loop, the body
// is all at hand (the loop hands anything longer to a goroutine) and the
// writer keeps what the socket cannot take yet for the loop to write.
func (c *h1conn) write(x *exchange) (keep bool, err error) {
	r, req, w := &x.out, &x.req, c.wr
	if r.status == 0 {
		return false, nil // nothing to answer: the client went away
	}
	keep = r.keep
	// How the body travels: with its length, or chunked when it is known
	// only at its end (so that the client's connection survives it) or
	// has trailers. An HTTP/1.0 client cannot take chunks: it gets the
	// body raw and the connection closes after it.
	out := h1.Length
	switch {
	case r.noBody:
		out = h1.NoBody
	case r.body == nil:
	case (r.length < 0 || len(r.trailerNames) > 0) && req.Minor == 1:
		out = h1.Chunked
	case r.length < 0:
		out, keep = h1.UntilClose, false
	}

	idle := x.rt.IdleTimeout
	c.touch(time.Now().UnixNano(), idle)
	w.WriteString("HTTP/1.1 ")
	w.WriteInt(int64(r.status))
	w.WriteByte(' ')
	switch {
	case len(r.reason) > 0:
		w.Write(r.reason)
	case r.stdReason:
		w.WriteString(http.StatusText(r.status)) // "" for a code it does not know
	default:
		w.WriteString(statusText(r.status))
	}
	w.WriteString("\r\n")
	for i, f := range r.fields {
		switch k := r.kinds[i]; {
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
	if out == h1.Chunked && len(r.trailerNames) > 0 {
		w.WriteString("Trailer: ")
		for i, name := range r.trailerNames {
			if i > 0 {
				w.WriteString(", ")
			}
			w.WriteString(name)
		}
		w.WriteString("\r\n")
	}
	if r.sticky {
		x.writeSticky(w)
	}
	switch {
	case out == h1.Length:
		w.WriteString("Content-Length: ")
		if r.body == nil {
			w.WriteInt(int64(len(r.fixed)))
		} else {
			w.WriteInt(r.length)
		}
		w.WriteString("\r\n")
	case out == h1.Chunked:
		w.WriteString("Transfer-Encoding: chunked\r\n")
	case out == h1.NoBody && r.hasLength && r.status != 204:
		// HEAD and 304 keep the length of the body they do not carry.
		w.WriteString("Content-Length: ")
		w.WriteInt(max(r.length, 0))
		w.WriteString("\r\n")
	}
	if !keep {
		w.WriteString("Connection: close\r\n")
	} else if req.Minor == 0 {
		w.WriteString("Connection: keep-alive\r\n")
	}
	w.WriteString("\r\n")

	switch {
	case out == h1.NoBody:
	case r.body == nil:
		w.Write(r.fixed)
		x.rec.BytesOut += int64(len(r.fixed))
	default:
		if err := c.relay(x, r.body, out == h1.Chunked, idle); err != nil {
			return false, err
		}
	}
	if err := w.Flush(); err != nil {
		return false, errClientGone
	}
	return keep, nil
}

// relay copies a response body to the client as it arrives.
func (c *h1conn) relay(x *exchange, body bodyReader, chunked bool, idle time.Duration) error {
	w := c.wr
	for {
		if !body.AtHand() {
			if w.Buffered() > 0 {
				if err := w.Flush(); err != nil {
					return errClientGone
				}
			}
			c.touch(time.Now().UnixNano(), idle)
		}
		p, err := body.Next()
		if len(p) > 0 {
			x.rec.BytesOut += int64(len(p))
			if chunked {
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
			w.Flush()
			x.failure = err // the target's: it failed mid-response
			return errCut
		}
	}
	if chunked {
		w.WriteLastChunk(body.Trailers())
	}
	return nil
}
