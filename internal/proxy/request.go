package proxy

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"

	"github.com/latch-lb/latch/internal/upstream"
)

// writeRequest writes the request head and streams its body to the target
// as HTTP/1.1: the request target verbatim, hop-by-hop headers dropped,
// X-Forwarded-* set, and framing (Content-Length or chunked) of latch's own.
func (h *Handler) writeRequest(c *upstream.Conn, x *exchange) error {
	r := x.r
	w := c.W
	w.WriteString(r.Method)
	w.WriteByte(' ')
	w.WriteString(r.RequestURI)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	if r.Host != "" {
		w.WriteString(r.Host)
	} else {
		w.WriteString(c.RemoteAddr().String())
	}
	w.WriteString("\r\n")

	conn := connectionTokens(r.Header)
	for k, vv := range r.Header {
		if hopByHop(k) || conn[k] {
			continue
		}
		switch k {
		case "Content-Length", "Expect", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Port", "Host":
			continue
		}
		for _, v := range vv {
			writeHeader(w, k, v)
		}
	}
	if wantsTrailers(r.Header) {
		writeHeader(w, "Te", "trailers")
	}
	w.WriteString("X-Forwarded-For: ")
	if prior := r.Header["X-Forwarded-For"]; len(prior) > 0 {
		w.WriteString(strings.Join(prior, ", "))
		w.WriteString(", ")
	}
	w.WriteString(clientIP(r.RemoteAddr))
	w.WriteString("\r\n")
	writeHeader(w, "X-Forwarded-Proto", h.proto)
	writeHeader(w, "X-Forwarded-Port", h.port)
	if x.moved != "" {
		writeHeader(w, MovedHeader, x.moved)
	}

	switch {
	case r.ContentLength > 0:
		writeHeader(w, "Content-Length", strconv.FormatInt(r.ContentLength, 10))
		w.WriteString("\r\n")
		n, err := streamBody(w, w, io.LimitReader(r.Body, r.ContentLength))
		if err != nil {
			return err
		}
		if n < r.ContentLength {
			return &clientError{io.ErrUnexpectedEOF}
		}
	case r.ContentLength < 0 || len(r.TransferEncoding) > 0:
		writeHeader(w, "Transfer-Encoding", "chunked")
		w.WriteString("\r\n")
		cw := httputil.NewChunkedWriter(w)
		if _, err := streamBody(w, cw, r.Body); err != nil {
			return err
		}
		cw.Close()
		for k, vv := range r.Trailer {
			for _, v := range vv {
				writeHeader(w, k, v)
			}
		}
		w.WriteString("\r\n")
	default:
		if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
			w.WriteString("Content-Length: 0\r\n")
		}
		w.WriteString("\r\n")
	}
	if err := w.Flush(); err != nil {
		return &targetError{err: err, what: "write"}
	}
	return nil
}

// streamBody copies a request body to the target through dst (w itself, or
// a chunked writer on it). Whenever the client pauses (a read that does not
// fill the buffer), what was read is flushed, so an upload streams instead
// of waiting in latch's buffer; a bulk upload still goes out in full buffers.
func streamBody(w *bufio.Writer, dst io.Writer, body io.Reader) (int64, error) {
	bufp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bufp)
	buf := *bufp
	var total int64
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			total += int64(n)
			if _, err := dst.Write(buf[:n]); err != nil {
				return total, &targetError{err: err, what: "write"}
			}
			if n < len(buf) {
				if err := w.Flush(); err != nil {
					return total, &targetError{err: err, what: "write"}
				}
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, &clientError{rerr}
		}
	}
}

func writeHeader(w *bufio.Writer, k, v string) {
	w.WriteString(k)
	w.WriteString(": ")
	w.WriteString(v)
	w.WriteString("\r\n")
}
