package proxy

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/latch-lb/latch/internal/h1"
)

// refClientAddr is clientAddr's rule over the X-Forwarded-For hops of all
// fields joined in order: from the right, skip trusted proxies; the first
// untrusted hop is the client; a hop that is not an address ends the walk
// at the last address trusted.
func refClientAddr(src netip.Addr, xffs []string, trusted []netip.Prefix) netip.Addr {
	in := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	if !in(src) {
		return src
	}
	var hops []string
	for _, v := range xffs {
		if v != "" {
			hops = append(hops, strings.Split(v, ",")...)
		}
	}
	addr := src
	for i := len(hops) - 1; i >= 0; i-- {
		h := strings.Trim(hops[i], " \t")
		a, err := netip.ParseAddr(h)
		if err != nil || a.Zone() != "" {
			return addr
		}
		addr = a.Unmap()
		if !in(addr) {
			return addr
		}
	}
	return addr
}

// FuzzClientAddr checks source-IP affinity's reading of X-Forwarded-For,
// which the client writes: only a trusted peer's word is taken, and only
// as far left as the hops stay trusted proxies. xff holds one field a
// line; sel picks the trusted proxies.
func FuzzClientAddr(f *testing.F) {
	f.Add("10.0.0.1", "203.0.113.7, 10.0.0.2", uint8(1))
	f.Add("10.0.0.1", "1.1.1.1, 203.0.113.7\n10.0.0.9", uint8(1))
	f.Add("::ffff:10.0.0.1", "::ffff:192.0.2.1,  fe80::1%eth0 ,", uint8(3))
	f.Add("192.0.2.1", "198.51.100.1", uint8(0))
	f.Add("2001:db8::1", "2001:db8::2,garbage,2001:db8::3", uint8(2))
	sets := [][]netip.Prefix{
		nil,
		{netip.MustParsePrefix("10.0.0.0/8")},
		{netip.MustParsePrefix("2001:db8::/32")},
		{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("fe80::/10")},
	}
	f.Fuzz(func(t *testing.T, peer, xff string, sel uint8) {
		src, err := netip.ParseAddr(peer)
		if err != nil || src.Zone() != "" {
			return
		}
		src = src.Unmap() // as peerAddr keeps it
		trusted := sets[int(sel)%len(sets)]
		x := &exchange{src: src}
		var values []string
		for _, v := range strings.Split(xff, "\n") {
			values = append(values, v)
			x.req.Fields = append(x.req.Fields, h1.Field{Name: []byte("X-Forwarded-For"), Value: []byte(v)})
			x.req.Kinds = append(x.req.Kinds, h1.KindXForwardedFor)
		}
		if got, want := x.clientAddr(trusted), refClientAddr(src, values, trusted); got != want {
			t.Fatalf("peer %s, X-Forwarded-For %q, trusted %v: got %v, want %v", src, values, trusted, got, want)
		}
	})
}
