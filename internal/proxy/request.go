package proxy

import (
	"bytes"
	"math/rand/v2"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/h1"
	"github.com/latch-lb/latch/internal/target"
)

// The request head a target gets: latch's own framing, the client's
// fields but those latch must not pass, X-Forwarded-*, the trace header
// and the session-moved signal.

// fieldSink takes the header fields a target gets: an h1.Writer writes
// them on the wire; the HTTP/2 path fills a header map.
type fieldSink interface {
	WriteField(name, value []byte)
}

// Names of the fields latch writes itself.
var (
	nameHost       = []byte("Host")
	nameXFF        = []byte("X-Forwarded-For")
	nameXFProto    = []byte("X-Forwarded-Proto")
	nameXFPort     = []byte("X-Forwarded-Port")
	nameMoved      = []byte(MovedHeader)
	nameTE         = []byte("TE")
	nameConnection = []byte("Connection")
	valueTrailers  = []byte("trailers")
	valueUpgrade   = []byte("Upgrade")
)

// writeHead writes the request head for target t: the request target
// verbatim, the fields forwardFields gives, and framing of latch's own, so
// that the target sees one unambiguous message whatever framing the client
// used.
func (x *exchange) writeHead(w *h1.Writer, t *target.Target) {
	req := &x.req
	x.rec.Sent = time.Now()
	w.Write(req.Method)
	w.WriteByte(' ')
	w.Write(req.Target)
	w.WriteString(" HTTP/1.1\r\n")
	x.forwardFields(w, t)
	if req.Upgrade {
		// The client's protocols but h2c (h1.AppendUpgrade): an upgrade to
		// h2c alone is no upgrade (req.Upgrade is false), and goes as an
		// ordinary request.
		for i, f := range req.Fields {
			if req.Kinds[i] == h1.KindUpgrade {
				if x.buf = h1.AppendUpgrade(x.buf[:0], f.Value); len(x.buf) > 0 {
					w.WriteField(f.Name, x.buf)
				}
			}
		}
		w.WriteField(nameConnection, valueUpgrade)
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

// forwardFields gives sink the fields target t gets, framing aside: Host
// (the client's, the absolute-form target's authority, or the target's
// address for an HTTP/1.0 client without one), the client's fields in
// their order and spelling except the hop-by-hop ones and those latch
// writes itself, then X-Forwarded-For/-Proto/-Port as ALB sets them, the
// trace header, and the session-moved signal.
func (x *exchange) forwardFields(sink fieldSink, t *target.Target) {
	req := &x.req
	switch {
	case req.HostFromTarget:
		sink.WriteField(nameHost, req.Host)
	case req.Host == nil:
		sink.WriteField(nameHost, []byte(t.ID))
	}
	rt := x.rt
	var trace []byte // the client's trace header, if any
	for i, f := range req.Fields {
		switch k := req.Kinds[i]; {
		case k == h1.KindOther:
			if isMovedHeader(f.Name) {
				continue // only latch may say that a session moved
			}
			if rt.TraceHeader != "" && len(f.Name) == len(rt.traceName) && h1.EqualFold(f.Name, rt.traceName) {
				if trace == nil {
					trace = f.Value
				}
				continue
			}
		case k == h1.KindHost:
			if req.HostFromTarget {
				continue
			}
		case k == h1.KindContentLength, k == h1.KindExpect, k == h1.KindXForwardedFor,
			k == h1.KindXForwardedProto, k == h1.KindXForwardedPort, k == h1.KindTrailer, k.HopByHop():
			continue
		}
		if rt.DropInvalidHeaders && !alnumHyphen(f.Name) {
			continue
		}
		sink.WriteField(f.Name, f.Value)
	}
	if xff, ok := x.forwardedFor(); ok {
		sink.WriteField(nameXFF, xff)
	}
	if rt.TraceHeader != "" {
		x.trace = appendTrace(x.trace[:0], trace, x.now.Unix())
		x.rec.Trace = x.trace
		sink.WriteField(rt.traceName, x.trace)
	}
	sink.WriteField(nameXFProto, x.h.protoBytes)
	sink.WriteField(nameXFPort, x.h.portBytes)
	if x.moved != "" {
		sink.WriteField(nameMoved, []byte(x.moved))
	}
	if req.WantsTrailers {
		sink.WriteField(nameTE, valueTrailers)
	}
}

// forwardedFor is X-Forwarded-For per the listener's mode (ALB's
// routing.http.xff_header_processing.mode): append (the addresses the
// client sent, in order, then the client's own, with its port when
// routing.http.xff_client_port.enabled), preserve (the client's, as sent),
// or remove (none, and ok false).
func (x *exchange) forwardedFor() (value []byte, ok bool) {
	req := &x.req
	mode := x.rt.XFF
	if mode == config.XFFRemove {
		return nil, false
	}
	v := x.xff[:0]
	for i, f := range req.Fields {
		if req.Kinds[i] != h1.KindXForwardedFor || len(f.Value) == 0 {
			continue
		}
		if len(v) > 0 {
			v = append(v, ", "...)
		}
		v = append(v, f.Value...)
	}
	if mode == config.XFFAppend {
		if len(v) > 0 {
			v = append(v, ", "...)
		}
		if x.rt.XFFClientPort {
			v = append(v, x.ipPort...)
		} else {
			v = append(v, x.ip...)
		}
	}
	x.xff = v
	return v, len(v) > 0
}

// maxTrace is ALB's limit past which a trace header is started afresh.
const maxTrace = 7 << 10

var traceRoot = []byte("Root=")

// appendTrace appends the trace header's value for the target, as ALB
// does with X-Amzn-Trace-Id: a new Root when the client sent none; when it
// sent a Root, a new Self before the client's fields (an old Self
// replaced, the others kept).
func appendTrace(dst, in []byte, now int64) []byte {
	if len(in) == 0 || len(in) > maxTrace || !bytes.Contains(in, traceRoot) {
		dst = append(dst, "Root="...)
		return appendTraceID(dst, now)
	}
	dst = append(dst, "Self="...)
	dst = appendTraceID(dst, now)
	for len(in) > 0 {
		var part []byte
		if i := bytes.IndexByte(in, ';'); i >= 0 {
			part, in = in[:i], in[i+1:]
		} else {
			part, in = in, nil
		}
		if len(part) == 0 || len(part) >= 5 && string(part[:5]) == "Self=" {
			continue
		}
		dst = append(dst, ';')
		dst = append(dst, part...)
	}
	return dst
}

// appendTraceID appends "1-<epoch seconds, 8 hex>-<96 random bits, 24 hex>".
func appendTraceID(dst []byte, now int64) []byte {
	dst = append(dst, "1-"...)
	dst = appendHex(dst, uint64(now), 8)
	dst = append(dst, '-')
	dst = appendHex(dst, rand.Uint64(), 16)
	return appendHex(dst, rand.Uint64(), 8)
}

func appendHex(dst []byte, v uint64, digits int) []byte {
	const hex = "0123456789abcdef"
	for i := digits - 1; i >= 0; i-- {
		dst = append(dst, hex[(v>>(4*uint(i)))&0xf])
	}
	return dst
}

// alnumHyphen reports whether a field name matches [-A-Za-z0-9]+.
func alnumHyphen(name []byte) bool {
	for _, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return len(name) > 0
}

func isMovedHeader(name []byte) bool {
	return len(name) == len(nameMoved) && h1.EqualFold(name, nameMoved)
}
