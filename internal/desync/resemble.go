package desync

import "github.com/latch-lb/latch/internal/h1"

// The two headers that frame a request body. A header whose name is not one
// of them but that some engine might read as one (because it trims, ignores
// case or punctuation, or folds Unicode) is how most smuggling starts, so
// names are compared by resemblance, not only by equality.
const (
	teName = "transfer-encoding"
	clName = "content-length"
)

// likeness is how close a header name is to teName or clName.
type likeness uint8

const (
	unlike    likeness = iota // a different header
	lookalike                 // the same letters and digits, differing in case-insensitive punctuation, spacing or control bytes
	same                      // equal ignoring ASCII case
)

// resemble reports how closely name resembles want, which is teName or
// clName. It walks want and name together: each letter of want must match
// the next letter of name (ignoring case, and accepting the two UTF-8
// letters that upper-case to ASCII 's' and 'i'), with control bytes and
// spaces skipped after a letter; each '-' of want stands for any one byte of
// name followed by any run of non-alphanumeric bytes. A name whose letters
// all match this way is a lookalike, unless it is equal ignoring case.
// http-desync-guardian's determine_similarity defines the same relation; its
// quirks (a name that ends in punctuation where want's last letters should
// be, such as "Content-Lengt.", is a lookalike) are kept so that verdicts
// agree with ALB's.
func resemble(name []byte, want string) likeness {
	switch {
	case len(name) < len(want):
		return unlike
	case h1.EqualLower(name, want): // the usual reason to be here
		return same
	}
	i := skipNonAlnum(name, 0)
	exact := i == 0 && len(name) == len(want)
	for j := 0; j < len(want); j++ {
		if i == len(name) {
			return unlike
		}
		w := want[j]
		matched, next := matchLetter(name, i, w)
		if w == '-' {
			if !matched {
				exact = false
			}
			i = skipNonAlnum(name, next)
			continue
		}
		if !matched {
			break
		}
		i = next
		for i < len(name) && name[i] <= ' ' {
			i++
		}
	}
	switch {
	case i == len(name) && exact:
		return same
	case skipNonAlnum(name, i) == len(name):
		return lookalike
	}
	return unlike
}

// matchLetter reports whether name[i:] starts with w, which is a lower-case
// ASCII letter or '-', and where the match ends.
func matchLetter(name []byte, i int, w byte) (bool, int) {
	c := name[i]
	if 'A' <= c && c <= 'Z' {
		c += 'a' - 'A'
	}
	if c == w {
		return true, i + 1
	}
	// U+017F LATIN SMALL LETTER LONG S and U+0131 LATIN SMALL LETTER DOTLESS
	// I upper-case to ASCII 'S' and 'I', so an engine that compares names by
	// Unicode case folding reads "Tranſfer-Encoding" as Transfer-Encoding.
	// They are the only such letters in either name.
	if i+1 < len(name) {
		if w == 's' && c == 0xc5 && name[i+1] == 0xbf || w == 'i' && c == 0xc4 && name[i+1] == 0xb1 {
			return true, i + 2
		}
	}
	return false, i + 1
}

func skipNonAlnum(b []byte, i int) int {
	for i < len(b) && class[b[i]]&cAlnum == 0 {
		i++
	}
	return i
}
