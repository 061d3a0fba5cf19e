package proxy

import (
	"net/netip"
	"testing"

	"github.com/latch-lb/latch/internal/h1"
)

// hashKeyExchange is an exchange whose request came from 192.0.2.7 through
// a trusted proxy, carrying an X-User header and a uid cookie.
func hashKeyExchange() *exchange {
	x := &exchange{src: netip.MustParseAddr("10.0.0.1")}
	for _, f := range []struct {
		name, value string
		kind        h1.Kind
	}{
		{"X-Forwarded-For", "198.51.100.9, 192.0.2.7", h1.KindXForwardedFor},
		{"X-User", "user-17", h1.KindOf([]byte("X-User"))},
		{"Cookie", "a=b; uid=u-17", h1.KindCookie},
	} {
		x.req.Fields = append(x.req.Fields, h1.Field{Name: []byte(f.name), Value: []byte(f.value)})
		x.req.Kinds = append(x.req.Kinds, f.kind)
	}
	return x
}

var hashKeys = map[string]*HashKey{
	"source_ip": {Kind: KeySourceIP, Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
	"header":    {Kind: KeyHeader, Name: []byte("X-User")},
	"cookie":    {Kind: KeyCookie, Name: []byte("uid")},
}

// TestHashKeyDoesNotAllocate: finding a request's affinity key is on every
// request of a hash group, and takes no allocation for any kind of key.
func TestHashKeyDoesNotAllocate(t *testing.T) {
	x := hashKeyExchange()
	for name, k := range hashKeys {
		if _, ok := x.hashKey(k); !ok {
			t.Fatalf("%s: no key found", name)
		}
		if n := testing.AllocsPerRun(100, func() { x.hashKey(k) }); n != 0 {
			t.Errorf("%s: %v allocations per key, want 0", name, n)
		}
	}
}

func BenchmarkHashKey(b *testing.B) {
	x := hashKeyExchange()
	for _, name := range []string{"source_ip", "header", "cookie"} {
		k := hashKeys[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				x.hashKey(k)
			}
		})
	}
}
