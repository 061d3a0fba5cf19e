package h2

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// TestHPACKEncodingRoundTrip: what latch's encoder writes, x/net's
// decoder reads back as it was written: every status, names in and out of
// the static table, values of every length class (the integer's prefix
// and its continuation bytes), then random lists.
func TestHPACKEncodingRoundTrip(t *testing.T) {
	check := func(status int, fields [][2]string) {
		t.Helper()
		out := appendStatus(nil, status)
		for _, f := range fields {
			out = appendField(out, []byte(f[0]), []byte(f[1]))
		}
		var got []hpack.HeaderField
		d := hpack.NewDecoder(4096, func(f hpack.HeaderField) { got = append(got, f) })
		if _, err := d.Write(out); err != nil {
			t.Fatalf("status %d, %q: decoding: %v", status, fields, err)
		}
		if err := d.Close(); err != nil {
			t.Fatalf("status %d, %q: decoding: %v", status, fields, err)
		}
		want := []hpack.HeaderField{{Name: ":status", Value: fmt.Sprint(status)}}
		for _, f := range fields {
			want = append(want, hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		if len(got) != len(want) {
			t.Fatalf("status %d: got %v, want %v", status, got, want)
		}
		for i := range got {
			if got[i].Name != want[i].Name || got[i].Value != want[i].Value || got[i].Sensitive {
				t.Fatalf("status %d, field %d: got %v, want %v", status, i, got[i], want[i])
			}
		}
	}
	for status := 100; status <= 999; status++ {
		check(status, nil)
	}
	for _, n := range []int{0, 1, 126, 127, 128, 255, 16383, 16384, 1 << 20} {
		v := string(bytes.Repeat([]byte{'v'}, n))
		check(200, [][2]string{{"set-cookie", v}, {"x-custom", v}, {string(bytes.Repeat([]byte{'n'}, max(n, 1))), "x"}})
	}
	names := []string{"content-type", "content-length", "set-cookie", "www-authenticate", "accept-charset",
		"location", "x-latch-target", "vary", "grpc-status", "a"}
	r := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		var fields [][2]string
		for range r.IntN(12) {
			v := make([]byte, r.IntN(300))
			for i := range v {
				v[i] = byte(0x20 + r.IntN(0x5f))
			}
			fields = append(fields, [2]string{names[r.IntN(len(names))], string(v)})
		}
		check([]int{200, 204, 301, 404, 503}[r.IntN(5)], fields)
	}
}

func BenchmarkHPACKEncodeResponse(b *testing.B) {
	b.ReportAllocs()
	name, value := []byte("set-cookie"), bytes.Repeat([]byte("a"), 200)
	ct, ctv := []byte("content-type"), []byte("text/html; charset=utf-8")
	out := make([]byte, 0, 1024)
	for b.Loop() {
		out = appendStatus(out[:0], 200)
		out = appendField(out, ct, ctv)
		out = appendField(out, name, value)
		out = appendField(out, name, value)
	}
}
