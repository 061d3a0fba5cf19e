package proxy

import (
	"regexp"
	"strings"
	"testing"
)

func TestAppendTrace(t *testing.T) {
	id := `1-[0-9a-f]{8}-[0-9a-f]{24}`
	for _, tt := range []struct{ in, want string }{
		{"", `^Root=` + id + `$`},
		{"garbage", `^Root=` + id + `$`},
		{"Root=1-67891233-abcdef012345678912345678", `^Self=` + id + `;Root=1-67891233-abcdef012345678912345678$`},
		{"Self=1-67891234-12456789abcdef012345678;Root=1-67891233-abcdef012345678912345678;CalledFrom=app",
			`^Self=` + id + `;Root=1-67891233-abcdef012345678912345678;CalledFrom=app$`},
		{"Root=1-1-1;" + strings.Repeat("x", maxTrace), `^Root=` + id + `$`},
	} {
		got := string(appendTrace(nil, []byte(tt.in), 0x67891235))
		if !regexp.MustCompile(tt.want).MatchString(got) {
			t.Errorf("appendTrace(%.60q) = %q, want %s", tt.in, got, tt.want)
		}
		if !strings.Contains(got, "=1-67891235-") {
			t.Errorf("appendTrace(%.60q) = %q: the new id does not carry the time", tt.in, got)
		}
	}
}

func BenchmarkAppendTrace(b *testing.B) {
	buf := make([]byte, 0, 256)
	in := []byte("Root=1-67891233-abcdef012345678912345678;CalledFrom=app")
	b.ReportAllocs()
	for b.Loop() {
		buf = appendTrace(buf[:0], in, 0x67891235)
	}
}
