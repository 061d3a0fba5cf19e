package route

import (
	"fmt"
	"testing"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/h1"
)

// A benchSet is n rules and a request that matches the last of them by
// priority, the worst case for a scan.
type benchSet struct {
	name  string
	rules func(n int) []config.Rule
	req   func(n int) *Input
}

var benchSets = []benchSet{
	{"host", func(n int) []config.Rule {
		rules := make([]config.Rule, n)
		for i := range rules {
			rules[i] = rl(i+1, fmt.Sprintf("host_header svc%d.example.com", i))
		}
		return rules
	}, func(n int) *Input {
		return req(fmt.Sprintf("GET svc%d.example.com:8080/index.html", n-1))
	}},
	{"wildcard-host", func(n int) []config.Rule {
		rules := make([]config.Rule, n)
		for i := range rules {
			rules[i] = rl(i+1, fmt.Sprintf("host_header *.t%d.example.com", i))
		}
		return rules
	}, func(n int) *Input {
		return req(fmt.Sprintf("GET shop.t%d.example.com/index.html", n-1))
	}},
	{"path", func(n int) []config.Rule {
		rules := make([]config.Rule, n)
		for i := range rules {
			rules[i] = rl(i+1, fmt.Sprintf("path_pattern /svc%d/*", i))
		}
		return rules
	}, func(n int) *Input {
		return req(fmt.Sprintf("GET api.example.com/svc%d/users/42?page=2", n-1))
	}},
	// Ten hosts, each with its own paths: the shape of a shared listener.
	{"host+path", func(n int) []config.Rule {
		rules := make([]config.Rule, n)
		for i := range rules {
			rules[i] = rl(i+1, fmt.Sprintf("host_header h%d.example.com", i%10), fmt.Sprintf("path_pattern /svc%d/* /v2/svc%d/*", i, i))
		}
		return rules
	}, func(n int) *Input {
		return req(fmt.Sprintf("GET h%d.example.com/v2/svc%d/users/42", (n-1)%10, n-1))
	}},
	// Headers and query strings are not indexed: every rule is a candidate.
	{"header+query", func(n int) []config.Rule {
		rules := make([]config.Rule, n)
		for i := range rules {
			rules[i] = rl(i+1, fmt.Sprintf("http_header X-Tenant t%d", i), fmt.Sprintf("query_string v=%d", i))
		}
		return rules
	}, func(n int) *Input {
		in := req(fmt.Sprintf("GET api.example.com/items?page=2&v=%d", n-1))
		in.Fields = []h1.Field{
			{Name: []byte("User-Agent"), Value: []byte("Mozilla/5.0")},
			{Name: []byte("Accept"), Value: []byte("*/*")},
			{Name: []byte("X-Tenant"), Value: []byte(fmt.Sprintf("t%d", n-1))},
		}
		return in
	}},
}

func BenchmarkMatch(b *testing.B) {
	for _, set := range benchSets {
		for _, n := range []int{1, 100, 1000} {
			b.Run(fmt.Sprintf("%s/%d", set.name, n), func(b *testing.B) {
				tab := mustCompile(b, set.rules(n)...)
				in := set.req(n)
				if got := tab.Match(in).Priority; got != n {
					b.Fatalf("matched rule %d, want %d", got, n)
				}
				b.ReportAllocs()
				for b.Loop() {
					tab.Match(in)
				}
			})
		}
	}
}

// BenchmarkScan is BenchmarkMatch without the index, for comparison.
func BenchmarkScan(b *testing.B) {
	for _, set := range benchSets {
		for _, n := range []int{1, 100, 1000} {
			b.Run(fmt.Sprintf("%s/%d", set.name, n), func(b *testing.B) {
				tab := mustCompile(b, set.rules(n)...)
				in := set.req(n)
				if got := tab.scan(in).Priority; got != n {
					b.Fatalf("scan matched rule %d, want %d", got, n)
				}
				b.ReportAllocs()
				for b.Loop() {
					tab.scan(in)
				}
			})
		}
	}
}

// BenchmarkMiss is a request that no rule matches: the default rule.
func BenchmarkMiss(b *testing.B) {
	for _, set := range benchSets[:4] {
		b.Run(fmt.Sprintf("%s/1000", set.name), func(b *testing.B) {
			tab := mustCompile(b, set.rules(1000)...)
			in := req("GET nowhere.example.org/none/at/all")
			if r := tab.Match(in); r.Priority != 0 || r.Index != 1000 {
				b.Fatalf("matched rule %d (index %d), want the default rule (index 1000)", r.Priority, r.Index)
			}
			b.ReportAllocs()
			for b.Loop() {
				tab.Match(in)
			}
		})
	}
}

func BenchmarkAppendLocation(b *testing.B) {
	r := redirect("HTTPS", "#{host}", "443", "/new/#{path}", "#{query}")
	in := req("GET www.example.com/old/page?a=1&b=2")
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendLocation(buf[:0], r, in, "HTTP", "80")
	}
}
