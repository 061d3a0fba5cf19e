package desync

import "github.com/latch-lb/latch/internal/h1"

// maxQuoted caps the escaped bytes a message shows of one name or value, so
// that a message stays under ALB's 300 bytes however long the header.
const maxQuoted = 100

// message describes f. Most messages are constants; only one that quotes a
// header is built, in a single allocation.
func (f *finding) message(fields []h1.Field) string {
	if f.detail == textOnly {
		return f.text
	}
	var buf [2*maxQuoted + 128]byte
	b := append(buf[:0], f.text...)
	b = append(b, ": "...)
	b = appendQuoted(b, fields[f.field].Name, false)
	b = append(b, ": "...)
	b = appendQuoted(b, fields[f.field].Value, f.detail == maskedValue)
	return string(b)
}

// appendQuoted appends src to dst in double quotes, escaping CR, LF, HTAB,
// backslash and quote as in Go and every other byte outside VCHAR and SP as
// \0xNN, the notation ALB's messages use. Masking replaces each run of
// visible characters with one '_', keeping spaces and escapes, so a log shows
// where a value went wrong without showing what it said.
func appendQuoted(dst, src []byte, mask bool) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	limit := len(dst) + maxQuoted
	placeholder := false // the last byte appended is a mask's '_'
	for _, c := range src {
		if len(dst) >= limit {
			dst = append(dst, "..."...)
			break
		}
		switch {
		case c == '\r':
			dst = append(dst, `\r`...)
		case c == '\n':
			dst = append(dst, `\n`...)
		case c == '\t':
			dst = append(dst, `\t`...)
		case mask && (c >= 0x80 || c > ' ' && c < 0x7f):
			if !placeholder {
				dst = append(dst, '_')
			}
			placeholder = true
			continue
		case c == '\\' || c == '"':
			dst = append(dst, '\\', c)
		case class[c]&cPrint != 0:
			dst = append(dst, c)
		default:
			dst = append(dst, `\0x`...)
			dst = append(dst, hex[c>>4], hex[c&0xf])
		}
		placeholder = false
	}
	return append(dst, '"')
}
