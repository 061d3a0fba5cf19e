package proxy

import (
	"bufio"
	"errors"
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
		n, err := w.ReadFrom(io.LimitReader(bodyReader{r.Body}, r.ContentLength))
		if err != nil {
			return writeErr(err)
		}
		if n < r.ContentLength {
			return &clientError{io.ErrUnexpectedEOF}
		}
	case r.ContentLength < 0 || len(r.TransferEncoding) > 0:
		writeHeader(w, "Transfer-Encoding", "chunked")
		w.WriteString("\r\n")
		cw := httputil.NewChunkedWriter(w)
		if _, err := io.Copy(cw, bodyReader{r.Body}); err != nil {
			return writeErr(err)
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

// writeErr tells a failure to read the client's body from one to write to
// the target.
func writeErr(err error) error {
	var ce *clientError
	if errors.As(err, &ce) {
		return err
	}
	return &targetError{err: err, what: "write"}
}

func writeHeader(w *bufio.Writer, k, v string) {
	w.WriteString(k)
	w.WriteString(": ")
	w.WriteString(v)
	w.WriteString("\r\n")
}

// bodyReader tags errors reading the client's body, so that they are told
// apart from errors writing to the target.
type bodyReader struct{ r io.Reader }

func (b bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = &clientError{err}
	}
	return n, err
}
