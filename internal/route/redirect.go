package route

import (
	"strings"

	"github.com/latch-lb/latch/internal/config"
)

// AppendLocation appends to dst the Location of a redirect, as ALB builds
// it: protocol://host:port/path?query, where each component is the
// redirect's own, placeholders filled from the request and the listener.
//
//   - #{protocol} is the listener's protocol, "http" or "https" (the
//     scheme is written in lower case, as ALB writes it)
//   - #{host} is the request's host without its port, as sent
//   - #{port} is listenerPort, the port the client connected to
//   - #{path} is the request's path without its leading "/" (ALB), as sent
//   - #{query} is the request's query string without "?"
//
// The port is always written, even the scheme's default, and the "?" only
// when the query is not empty; ALB does both ("Location:
// http://example.com:443/" is a capture of ALB's answer to a redirect
// whose port is 443 and whose protocol is #{protocol}).
//
// Config text is copied as written (ALB: "not percent-encoded", so a "%"
// stays a "%"), and so is what the request sent, except for characters a
// URL cannot hold in that component, which are percent-encoded: a "?" or
// "#" in the path, a "#" in the query, spaces, controls, quotes, non-ASCII.
// The result is always a valid header value.
func AppendLocation(dst []byte, r *config.Redirect, in *Input, listenerProto, listenerPort string) []byte {
	x := expander{in: in, proto: listenerProto, port: listenerPort}
	switch r.Protocol {
	case "HTTP":
		dst = append(dst, "http"...)
	case "HTTPS":
		dst = append(dst, "https"...)
	default:
		dst = x.appendProto(dst)
	}
	dst = append(dst, "://"...)
	dst = x.expand(dst, r.Host, partHost)
	dst = append(dst, ':')
	dst = x.expand(dst, r.Port, partPort)
	dst = x.expand(dst, r.Path, partPath)
	mark := len(dst)
	dst = append(dst, '?')
	dst = x.expand(dst, r.Query, partQuery)
	if len(dst) == mark+1 {
		dst = dst[:mark]
	}
	return dst
}

type part uint8

const (
	partHost part = iota
	partPort
	partPath
	partQuery
)

type expander struct {
	in          *Input
	proto, port string
}

func (x *expander) appendProto(dst []byte) []byte {
	for i := 0; i < len(x.proto); i++ {
		dst = append(dst, lower(x.proto[i]))
	}
	return dst
}

// expand appends template t with its placeholders filled in, escaped for
// part p.
func (x *expander) expand(dst []byte, t string, p part) []byte {
	for t != "" {
		i := strings.Index(t, "#{")
		if i < 0 {
			return appendEscaped(dst, t, p)
		}
		dst = appendEscaped(dst, t[:i], p)
		t = t[i:]
		j := strings.IndexByte(t, '}')
		if j < 0 {
			return appendEscaped(dst, t, p)
		}
		switch t[2:j] {
		case "protocol":
			dst = x.appendProto(dst)
		case "host":
			dst = appendEscaped(dst, hostPart(x.in.Host), p)
		case "port":
			dst = appendEscaped(dst, x.port, p)
		case "path":
			path := x.in.Path
			if len(path) > 0 && path[0] == '/' {
				path = path[1:]
			}
			dst = appendEscaped(dst, path, p)
		case "query":
			dst = appendEscaped(dst, x.in.Query, p)
		default:
			dst = appendEscaped(dst, t[:j+1], p)
		}
		t = t[j+1:]
	}
	return dst
}

const hexDigits = "0123456789ABCDEF"

// appendEscaped appends s, percent-encoding the bytes part p cannot hold.
func appendEscaped[S string | []byte](dst []byte, s S, p part) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if keep(c, p) {
			dst = append(dst, c)
		} else {
			dst = append(dst, '%', hexDigits[c>>4], hexDigits[c&15])
		}
	}
	return dst
}

// keep reports whether c may stand for itself in part p of a URL: the
// unreserved and sub-delims characters of RFC 3986, ':' and '%' anywhere;
// '@' outside the host, '/' in a path or query, '?' in a query, brackets
// in a host (an IPv6 literal). An '@' in the host would make what comes
// before it a userinfo and send the client to the host after it
// (Host: trusted.example@evil.example).
func keep(c byte, p part) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '%':
		return true
	case '@':
		return p != partHost
	case '/':
		return p == partPath || p == partQuery
	case '?':
		return p == partQuery
	case '[', ']':
		return p == partHost
	}
	return false
}
