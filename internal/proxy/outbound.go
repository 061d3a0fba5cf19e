package proxy

import (
	"github.com/latch-lb/latch/internal/h1"
	"github.com/latch-lb/latch/internal/target"
)

// writeHead writes the request head for target t: the request target
// verbatim, the client's fields in their order and spelling except the
// hop-by-hop ones, X-Forwarded-* as ALB sets them, and framing of latch's
// own, so that the target sees one unambiguous message whatever framing
// the client used.
func (x *exchange) writeHead(w *h1.Writer, t *target.Target) {
	req := &x.req
	w.Write(req.Method)
	w.WriteByte(' ')
	w.Write(req.Target)
	w.WriteString(" HTTP/1.1\r\n")
	switch {
	case req.HostFromTarget:
		w.WriteString("Host: ")
		w.Write(req.Host)
		w.WriteString("\r\n")
	case req.Host == nil:
		// An HTTP/1.0 client may send none; HTTP/1.1 requires one.
		w.WriteString("Host: ")
		w.WriteString(t.ID)
		w.WriteString("\r\n")
	}
	for i, f := range req.Fields {
		switch k := req.Kinds[i]; {
		case k == h1.KindOther:
			if isMovedHeader(f.Name) {
				continue // only latch may say that a session moved
			}
		case k == h1.KindHost:
			if req.HostFromTarget {
				continue
			}
		case k == h1.KindContentLength, k == h1.KindExpect, k == h1.KindXForwardedFor,
			k == h1.KindXForwardedProto, k == h1.KindXForwardedPort, k == h1.KindTrailer, k.HopByHop():
			continue
		}
		w.WriteField(f.Name, f.Value)
	}
	// X-Forwarded-For: the addresses the client sent, in order, then the
	// client's own (ALB's append mode).
	w.WriteString("X-Forwarded-For: ")
	for i, f := range req.Fields {
		if req.Kinds[i] == h1.KindXForwardedFor && len(f.Value) > 0 {
			w.Write(f.Value)
			w.WriteString(", ")
		}
	}
	w.Write(x.ip)
	w.WriteString("\r\n")
	w.WriteString("X-Forwarded-Proto: ")
	w.WriteString(x.h.proto)
	w.WriteString("\r\nX-Forwarded-Port: ")
	w.WriteString(x.h.port)
	w.WriteString("\r\n")
	if x.moved != "" {
		w.WriteString(MovedHeader + ": ")
		w.WriteString(x.moved)
		w.WriteString("\r\n")
	}
	if req.WantsTrailers {
		w.WriteString("TE: trailers\r\n")
	}
	if req.Upgrade {
		for i, f := range req.Fields {
			if req.Kinds[i] == h1.KindUpgrade {
				w.WriteField(f.Name, f.Value)
			}
		}
		w.WriteString("Connection: Upgrade\r\n")
	}
	switch req.Framing {
	case h1.Length:
		w.WriteString("Content-Length: ")
		w.WriteInt(req.ContentLength)
		w.WriteString("\r\n")
	case h1.Chunked:
		w.WriteString("Transfer-Encoding: chunked\r\n")
		for i, f := range req.Fields {
			if req.Kinds[i] == h1.KindTrailer {
				w.WriteField(f.Name, f.Value)
			}
		}
	default:
		switch string(req.Method) {
		case "POST", "PUT", "PATCH":
			// RFC 9110 §8.6: a body-less request whose method expects one
			// says so.
			w.WriteString("Content-Length: 0\r\n")
		}
	}
	w.WriteString("\r\n")
}

var movedName = []byte(MovedHeader)

func isMovedHeader(name []byte) bool {
	return len(name) == len(movedName) && h1.EqualFold(name, movedName)
}
