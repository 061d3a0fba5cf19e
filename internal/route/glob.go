package route

import (
	"fmt"
	"strings"

	"github.com/latch-lb/latch/internal/h1"
)

// A pattern is an ALB wildcard pattern compiled for matching: its wildcards
// are the bytes star and one, which no pattern holds as a character
// (config values are visible ASCII), so that an escaped \* stays a '*'.
// A case-insensitive pattern is compiled in lower case.
type pattern struct {
	s    string
	wild bool // s holds a star or a one
}

const (
	star = 0x01 // *: any run of characters, empty included
	one  = 0x02 // ?: exactly one character
)

// compile compiles an ALB pattern. With escapes (query strings), \* and \?
// are the characters themselves and \\ is a backslash. Runs of * become
// one: they match the same strings.
func compile(v string, fold, escapes bool) (pattern, error) {
	var b strings.Builder
	b.Grow(len(v))
	wild := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c < 0x20 || c == 0x7f:
			return pattern{}, fmt.Errorf("%q holds the control character %q", v, c)
		case escapes && c == '\\':
			i++
			if i == len(v) || v[i] != '*' && v[i] != '?' && v[i] != '\\' {
				return pattern{}, fmt.Errorf(`%q: \ escapes only *, ? and \`, v)
			}
			b.WriteByte(v[i])
		case c == '*':
			if s := b.String(); len(s) == 0 || s[len(s)-1] != star {
				b.WriteByte(star)
			}
			wild = true
		case c == '?':
			b.WriteByte(one)
			wild = true
		default:
			if fold {
				c = lower(c)
			}
			b.WriteByte(c)
		}
	}
	return pattern{s: b.String(), wild: wild}, nil
}

// prefix returns the literal text before p's first wildcard.
func (p pattern) prefix() string {
	if i := strings.IndexAny(p.s, "\x01\x02"); i >= 0 {
		return p.s[:i]
	}
	return p.s
}

// suffix returns the literal text after p's last wildcard.
func (p pattern) suffix() string {
	if i := strings.LastIndexAny(p.s, "\x01\x02"); i >= 0 {
		return p.s[i+1:]
	}
	return p.s
}

// match reports whether s matches p. fold compares s in lower case (p is
// lower case already); decode reads s percent-decoded (%41 is A; a %
// without two hex digits is itself).
//
// It is the greedy algorithm with a single backtrack point, the last star
// seen: a later star makes retrying an earlier one pointless, since it can
// absorb whatever the earlier one would have. So it takes at most
// len(p)*len(s) steps whatever the pattern (*a*a*a*b against aaaa...
// included), and no allocation.
func (p pattern) match(s []byte, fold, decode bool) bool {
	if !p.wild && !decode {
		if fold {
			return h1.EqualLower(s, p.s)
		}
		return string(s) == p.s
	}
	px, sx := 0, 0
	starPx, starSx := -1, 0
	for {
		if px < len(p.s) {
			c := p.s[px]
			if c == star {
				if px+1 == len(p.s) {
					return true // a trailing star matches whatever is left
				}
				starPx, starSx = px, sx
				px++
				continue
			}
			if sx < len(s) {
				b, w := s[sx], 1
				if decode {
					b, w = decodeAt(s, sx)
				}
				if fold {
					b = lower(b)
				}
				if c == one || c == b {
					px++
					sx += w
					continue
				}
			}
		} else if sx == len(s) {
			return true
		}
		// Mismatch: let the last star absorb one more character.
		if starPx < 0 || starSx >= len(s) {
			return false
		}
		w := 1
		if decode {
			_, w = decodeAt(s, starSx)
		}
		starSx += w
		px, sx = starPx+1, starSx
	}
}

// anyMatch reports whether s matches any of ps.
func anyMatch(ps []pattern, s []byte, fold, decode bool) bool {
	for i := range ps {
		if ps[i].match(s, fold, decode) {
			return true
		}
	}
	return false
}

// decodeAt returns the character at s[i], percent-decoded, and how many
// bytes it takes.
func decodeAt(s []byte, i int) (byte, int) {
	if s[i] == '%' && i+2 < len(s) {
		if h, ok := unhex(s[i+1]); ok {
			if l, ok := unhex(s[i+2]); ok {
				return h<<4 | l, 3
			}
		}
	}
	return s[i], 1
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
