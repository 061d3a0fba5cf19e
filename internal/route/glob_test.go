package route

import (
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestWildcard(t *testing.T) {
	for _, c := range []struct {
		pattern, s  string
		fold, query bool // case-insensitive; query-string escapes and decoding
		want        bool
	}{
		// No wildcard.
		{pattern: "/a", s: "/a", want: true},
		{pattern: "/a", s: "/a/", want: false},
		{pattern: "/a", s: "/A", want: false},
		{pattern: "/a", s: "/A", fold: true, want: true},
		{pattern: "a", s: "", want: false},
		// * at the start, in the middle, at the end.
		{pattern: "*.example.com", s: "api.example.com", want: true},
		{pattern: "*.example.com", s: "a.b.example.com", want: true},
		{pattern: "*.example.com", s: ".example.com", want: true},
		{pattern: "*.example.com", s: "example.com", want: false}, // ALB's own example
		{pattern: "/a/*/c", s: "/a/b/c", want: true},
		{pattern: "/a/*/c", s: "/a//c", want: true},
		{pattern: "/a/*/c", s: "/a/b/x/c", want: true},
		{pattern: "/a/*/c", s: "/a/b/c/d", want: false},
		{pattern: "/api/*", s: "/api/", want: true},
		{pattern: "/api/*", s: "/api", want: false},
		{pattern: "/api*", s: "/api", want: true},
		{pattern: "/api*", s: "/apis/x", want: true},
		{pattern: "*", s: "", want: true},
		{pattern: "*", s: "anything", want: true},
		{pattern: "**", s: "", want: true},
		{pattern: "a**b", s: "ab", want: true},
		{pattern: "*a*b", s: "xaxxbxb", want: true},
		{pattern: "*a*b", s: "xaxxbxa", want: false},
		{pattern: "a*b*c", s: "abc", want: true},
		{pattern: "a*b*c", s: "acb", want: false},
		// ? is exactly one character.
		{pattern: "/v?/x", s: "/v1/x", want: true},
		{pattern: "/v?/x", s: "/v/x", want: false},
		{pattern: "/v?/x", s: "/v10/x", want: false},
		{pattern: "?", s: "", want: false},
		{pattern: "??", s: "ab", want: true},
		{pattern: "*?", s: "", want: false},
		{pattern: "*?", s: "a", want: true},
		{pattern: "?*?", s: "ab", want: true},
		{pattern: "?*?", s: "a", want: false},
		// Case.
		{pattern: "API.example.com", s: "api.EXAMPLE.com", fold: true, want: true},
		{pattern: "*.Example.COM", s: "WWW.EXAMPLE.COM", fold: true, want: true},
		{pattern: "/Img/*", s: "/img/a", want: false},
		// Query strings: escapes, decoding, case.
		{pattern: `a\*b`, s: "a*b", query: true, want: true},
		{pattern: `a\*b`, s: "axb", query: true, want: false},
		{pattern: `a\?`, s: "a?", query: true, want: true},
		{pattern: `a\?`, s: "ab", query: true, want: false},
		{pattern: `a\\b`, s: `a\b`, query: true, want: true},
		{pattern: `\**`, s: "*x", query: true, want: true},
		{pattern: `\**`, s: "x*", query: true, want: false},
		{pattern: "a b", s: "a%20b", query: true, want: true},
		{pattern: "a b", s: "a+b", query: true, want: false},
		{pattern: "a%b", s: "a%25b", query: true, want: true},
		{pattern: "a%zz", s: "a%zz", query: true, want: true},
		{pattern: "a%2", s: "a%2", query: true, want: true},
		{pattern: "?", s: "%41", query: true, want: true}, // one character, three bytes
		{pattern: "??", s: "%41", query: true, want: false},
		{pattern: "*z", s: "%41%5a", query: true, want: true},
		{pattern: "beta", s: "BETA", query: true, want: true},
		{pattern: "*beta*", s: "x%42ETAy", query: true, want: true},
		{pattern: "*", s: "", query: true, want: true},
	} {
		p, err := compile(c.pattern, c.fold || c.query, c.query)
		if err != nil {
			t.Fatalf("compile(%q): %v", c.pattern, err)
		}
		if got := p.match([]byte(c.s), c.fold || c.query, c.query); got != c.want {
			t.Errorf("%q (fold %v, query %v) matching %q: got %v, want %v", c.pattern, c.fold, c.query, c.s, got, c.want)
		}
	}
}

func TestCompilePatternErrors(t *testing.T) {
	for _, c := range []struct {
		pattern string
		query   bool
	}{
		{"a\x00", false},
		{"a\tb", true},
		{"\x7f", false},
		{`a\`, true},
		{`a\b`, true},
	} {
		if _, err := compile(c.pattern, false, c.query); err == nil {
			t.Errorf("compile(%q, query %v): got no error", c.pattern, c.query)
		}
	}
	// Without query escapes, a backslash is a character.
	if p, err := compile(`a\*`, false, false); err != nil || !p.match([]byte(`a\xyz`), false, false) {
		t.Errorf(`compile("a\\*") outside a query: got %+v, %v; want a backslash and a wildcard`, p, err)
	}
}

// TestWildcardLinear checks that patterns which make a backtracking
// matcher exponential take the matcher a few microseconds.
func TestWildcardLinear(t *testing.T) {
	s := []byte(strings.Repeat("a", 4096))
	for _, pat := range []string{"*a*a*a*a*a*a*a*a*a*a*b", strings.Repeat("*a", 60) + "b", "*?*?*?*?*?*b", "a*" + strings.Repeat("?", 100) + "*b"} {
		p, err := compile(pat, false, false)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if p.match(s, false, false) {
			t.Errorf("%q matched a string without b", pat)
		}
		// len(p)*len(s) is under a million steps; allow plenty for -race.
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("%q against 4096 a: took %v", pat, d)
		}
	}
}

// refRegexps caches the reference regexps: fuzzing compiles many.
var refRegexps sync.Map

// refMatch is the reference wildcard matcher: a regexp built from the
// pattern, with each byte of the pattern and of s taken as one character
// (so that ? matches one byte, as in ALB's visible-ASCII world), case
// folded in ASCII only, and query strings decoded first.
func refMatch(pattern, s string, fold, query bool) bool {
	if fold {
		pattern, s = asciiLower(pattern), asciiLower(s)
	}
	if query {
		s = refDecode(s)
		if fold {
			s = asciiLower(s)
		}
	}
	key := pattern
	if query {
		key = "q" + pattern
	} else {
		key = "p" + pattern
	}
	re, ok := refRegexps.Load(key)
	if !ok {
		var b strings.Builder
		b.WriteString(`(?s)\A`)
		for i := 0; i < len(pattern); i++ {
			switch c := pattern[i]; {
			case query && c == '\\' && i+1 < len(pattern):
				i++
				b.WriteString(regexp.QuoteMeta(string(rune(pattern[i]))))
			case c == '*':
				b.WriteString(".*")
			case c == '?':
				b.WriteString(".")
			default:
				b.WriteString(regexp.QuoteMeta(string(rune(c))))
			}
		}
		b.WriteString(`\z`)
		re, _ = refRegexps.LoadOrStore(key, regexp.MustCompile(b.String()))
	}
	return re.(*regexp.Regexp).MatchString(latin1(s))
}

// latin1 maps each byte of s to one rune, so that regexp's . is one byte.
func latin1(s string) string {
	r := make([]rune, len(s))
	for i := 0; i < len(s); i++ {
		r[i] = rune(s[i])
	}
	return string(r)
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = lower(c)
	}
	return string(b)
}

// refDecode percent-decodes s, keeping a % without two hex digits.
func refDecode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && strings.IndexByte(hex, s[i+1]) >= 0 && strings.IndexByte(hex, s[i+2]) >= 0 {
			b.WriteByte(byte(hexVal(s[i+1])<<4 | hexVal(s[i+2])))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

const hex = "0123456789abcdefABCDEF"

func hexVal(c byte) int {
	i := strings.IndexByte(hex, c)
	if i >= 16 {
		i -= 6
	}
	return i
}

func TestRefMatch(t *testing.T) {
	// The reference must agree with the table above on a few cases, or
	// the fuzz target compares against nonsense.
	for _, c := range []struct {
		p, s        string
		fold, query bool
		want        bool
	}{
		{"*.example.com", "example.com", false, false, false},
		{"?", "é", false, false, false}, // two bytes
		{"??", "é", false, false, true},
		{`a\*`, "a*", true, true, true},
		{"a b", "A%20B", true, true, true},
	} {
		if got := refMatch(c.p, c.s, c.fold, c.query); got != c.want {
			t.Errorf("refMatch(%q, %q): got %v, want %v", c.p, c.s, got, c.want)
		}
	}
}

func FuzzWildcard(f *testing.F) {
	for _, seed := range []struct {
		p, s        string
		fold, query bool
	}{
		{"*.example.com", "api.example.com", true, false},
		{"/a/*/c", "/a/b/c", false, false},
		{"*a*a*a*b", "aaaaaaaaaaaaaaa", false, false},
		{"?*?", "ab", false, false},
		{`\*\?*`, "*?%41", true, true},
		{"*beta*", "x%42eta", true, true},
		{"a%zz*", "a%zz%", false, true},
	} {
		f.Add(seed.p, seed.s, seed.fold, seed.query)
	}
	f.Fuzz(func(t *testing.T, pat, s string, fold, query bool) {
		if query {
			fold = true // query strings always compare in any case
		}
		p, err := compile(pat, fold, query)
		if err != nil {
			return // control characters or bad escapes: config refuses them
		}
		if len(pat) > 256 || len(s) > 4096 {
			return
		}
		got := p.match([]byte(s), fold, query)
		if want := refMatch(pat, s, fold, query); got != want {
			t.Errorf("pattern %q, fold %v, query %v, against %q: got %v, reference %v", pat, fold, query, s, got, want)
		}
	})
}
