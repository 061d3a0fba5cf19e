package proxy

import (
	"net/http"
	"net/textproto"
	"strings"
)

// hopByHop reports whether a canonical header name is hop-by-hop
// (RFC 9110 §7.6.1) or one latch writes itself, so it is not copied
// from one side to the other.
func hopByHop(name string) bool {
	switch name {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// connectionTokens returns the header names listed in Connection, which are
// hop-by-hop too, or nil (the common case, without allocating).
func connectionTokens(h http.Header) map[string]bool {
	var set map[string]bool
	for _, v := range h["Connection"] {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			tok = strings.TrimSpace(tok)
			if tok == "" || strings.EqualFold(tok, "close") || strings.EqualFold(tok, "keep-alive") {
				continue
			}
			if set == nil {
				set = map[string]bool{}
			}
			set[textproto.CanonicalMIMEHeaderKey(tok)] = true
		}
	}
	return set
}

// wantsTrailers reports whether a TE header asks for trailers, which gRPC
// needs end to end although TE itself is hop-by-hop.
func wantsTrailers(h http.Header) bool {
	for _, v := range h["Te"] {
		for _, tok := range strings.Split(v, ",") {
			if t, _, _ := strings.Cut(strings.TrimSpace(tok), ";"); strings.EqualFold(t, "trailers") {
				return true
			}
		}
	}
	return false
}

// clientIP returns the address part of a RemoteAddr ("1.2.3.4:5" or
// "[::1]:5"), without brackets, as ALB writes it in X-Forwarded-For.
func clientIP(remoteAddr string) string {
	i := strings.LastIndexByte(remoteAddr, ':')
	if i < 0 {
		return remoteAddr
	}
	return strings.TrimSuffix(strings.TrimPrefix(remoteAddr[:i], "["), "]")
}
