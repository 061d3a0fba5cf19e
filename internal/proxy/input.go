package proxy

import (
	"bytes"
	"net/netip"

	"github.com/latch-lb/latch/internal/h1"
	"github.com/latch-lb/latch/internal/route"
)

// input fills x.in, what the rules look at, from the request head.
func (x *exchange) input() *route.Input {
	req, in := &x.req, &x.in
	in.Host, in.Method, in.Fields, in.Source = req.Host, req.Method, req.Fields, x.src
	t := originTarget(req)
	if i := bytes.IndexByte(t, '#'); i >= 0 {
		t = t[:i]
	}
	in.Path, in.Query = t, nil
	if i := bytes.IndexByte(t, '?'); i >= 0 {
		in.Path, in.Query = t[:i], t[i+1:]
	}
	if len(in.Path) == 0 {
		in.Path = slash
	}
	return in
}

var slash = []byte("/")

// originTarget is the request target without an absolute form's
// "scheme://authority" (which may leave it empty, or starting with '?').
func originTarget(req *h1.Request) []byte {
	t := req.Target
	if !req.HostFromTarget {
		return t
	}
	t = t[bytes.Index(t, schemeSep)+3:]
	if j := bytes.IndexAny(t, "/?#"); j >= 0 {
		return t[j:]
	}
	return t[len(t):]
}

var schemeSep = []byte("://")

// peerAddr is what an exchange keeps of its client's address s
// (host:port): the address as X-Forwarded-For carries it (an IPv4-mapped
// IPv6 address as IPv4), and as rules and source-IP affinity see it.
func peerAddr(s string) ([]byte, netip.Addr) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return []byte(s), netip.Addr{}
	}
	a := ap.Addr().Unmap()
	return a.AppendTo(nil), a
}
