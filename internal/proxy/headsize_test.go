package proxy

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/latch-lb/latch/internal/h1"
)

// TestHeadSizeMatchesH1: headSize gives an HTTP/2 request the error h1
// gives the same request as an HTTP/1.1 head, around each limit: the
// request line, one field, the whole head, the count of fields.
func TestHeadSizeMatchesH1(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 2026))
	type head struct {
		path   int   // the path's length, "/" included
		fields []int // each field's value length; names are "X-<i>" padded to 8 bytes
	}
	near := func(limit int) int { return limit - 40 + r.IntN(80) }
	var heads []head
	for range 200 {
		h := head{path: 1 + r.IntN(64)}
		switch r.IntN(4) {
		case 0: // the request line
			h.path = near(h1.MaxRequestLine - len("GET  HTTP/1.1"))
		case 1: // one field
			h.fields = append(h.fields, near(h1.MaxField-len("X-000000: ")))
		case 2: // the head, in fields of 12 KiB and one to fill
			for range 5 {
				h.fields = append(h.fields, 12<<10)
			}
			h.fields = append(h.fields, near(h1.MaxRequestHead-5*(12<<10+14)-len("GET / HTTP/1.1\r\nHost: a\r\n\r\n")-14))
		case 3: // the count, Host among them
			h.fields = make([]int, h1.MaxFields-3+r.IntN(5))
		}
		heads = append(heads, h)
	}
	for i, h := range heads {
		var b strings.Builder
		path := "/" + strings.Repeat("p", h.path-1)
		fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: a\r\n", path)
		size := newHeadSize(len("GET"), len(path))
		size.field(len("Host"), len("a"))
		for j, n := range h.fields {
			name := fmt.Sprintf("X-%06d", j)
			fmt.Fprintf(&b, "%s: %s\r\n", name, strings.Repeat("v", n))
			size.field(len(name), n)
		}
		b.WriteString("\r\n")
		var req h1.Request
		_, want := h1.NewReader(strings.NewReader(b.String()), false).ReadRequest(&req)
		if got := size.err(); (got == nil) != (want == nil) || got != nil && error(got) != want {
			t.Errorf("head %d (path %d bytes, %d fields, %d bytes in all): headSize says %v, h1 %v",
				i, h.path, len(h.fields), b.Len(), got, want)
		}
	}
}
