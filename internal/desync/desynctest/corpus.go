// Package desynctest loads http-desync-guardian's test corpus (the desync
// package's testdata) for the tests that check latch against it.
package desynctest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Size is how many cases the corpus holds, so that a loader that silently
// skips some cannot pass.
const Size = 159

// Header is one header line of a case, name and value exactly as the case
// gives them.
type Header struct{ Name, Value string }

// Case is one request of the corpus (see testdata/corpus/FORMAT.md) with
// the verdict ALB gives it.
type Case struct {
	File                 string // the corpus file's base name
	Name                 string
	Method, URI, Version string
	Headers              []Header
	Tier, Reason         string // as ALB's logs spell them
	RequiredMessageItems []string
}

// LoadDir loads every corpus file in dir, in name order, and checks that
// it found the whole corpus.
func LoadDir(t testing.TB, dir string) []Case {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus files in %s: %v", dir, err)
	}
	var all []Case
	for _, f := range files {
		all = append(all, Load(t, f)...)
	}
	if len(all) != Size {
		t.Fatalf("loaded %d corpus cases, want %d", len(all), Size)
	}
	return all
}

// Load reads one corpus file. It walks YAML nodes rather than
// decoding into structs so that it can take every scalar's text as written
// (`value: 1000` is an int to YAML but a header value here), and it fails on
// any key it does not know so that a new shape cannot be skipped silently.
func Load(t testing.TB, file string) []Case {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.SequenceNode {
		t.Fatalf("%s: not a list of cases", file)
	}
	var cases []Case
	for _, n := range doc.Content[0].Content {
		c := Case{File: filepath.Base(file)}
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("%s:%d: case %q: %s", file, n.Line, c.Name, fmt.Sprintf(format, args...))
		}
		eachKey(n, fail, func(key string, v *yaml.Node) {
			switch key {
			case "name":
				c.Name = scalar(v, fail) // names are labels: the runner does not unescape them
			case "method":
				c.Method = unescape(scalar(v, fail), fail)
			case "uri":
				c.URI = unescape(scalar(v, fail), fail)
			case "version":
				c.Version = unescape(scalar(v, fail), fail)
			case "headers":
				if v.Tag == "!!null" {
					return
				}
				if v.Kind != yaml.SequenceNode {
					fail("headers is not a list")
				}
				for _, h := range v.Content {
					var name, value string
					var hasName, hasValue bool
					eachKey(h, fail, func(key string, v *yaml.Node) {
						switch key {
						case "name":
							name, hasName = unescape(scalar(v, fail), fail), true
						case "value":
							value, hasValue = unescape(scalar(v, fail), fail), true
						case "tier":
							// The tier the library gives the header itself; a
							// Verdict has no per-header tiers.
						default:
							fail("unknown header key %q", key)
						}
					})
					if !hasName || !hasValue {
						fail("header without name or value")
					}
					c.Headers = append(c.Headers, Header{Name: name, Value: value})
				}
			case "expected":
				eachKey(v, fail, func(key string, v *yaml.Node) {
					switch key {
					case "tier":
						c.Tier = scalar(v, fail)
					case "reason":
						c.Reason = scalar(v, fail)
					case "required_message_items":
						if v.Kind != yaml.SequenceNode {
							fail("required_message_items is not a list")
						}
						for _, item := range v.Content {
							c.RequiredMessageItems = append(c.RequiredMessageItems, unescape(scalar(item, fail), fail))
						}
					default:
						fail("unknown expected key %q", key)
					}
				})
			default:
				fail("unknown key %q", key)
			}
		})
		if c.Name == "" || c.Tier == "" || c.Reason == "" {
			fail("missing name, expected tier or expected reason")
		}
		cases = append(cases, c)
	}
	if len(cases) == 0 {
		t.Fatalf("%s: no cases", file)
	}
	return cases
}

func eachKey(n *yaml.Node, fail func(string, ...any), f func(string, *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		fail("line %d: not a mapping", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		f(n.Content[i].Value, n.Content[i+1])
	}
}

// scalar returns a scalar's text as written, with YAML's own escapes
// decoded; a missing value (`uri:`) is empty.
func scalar(n *yaml.Node, fail func(string, ...any)) string {
	if n.Kind != yaml.ScalarNode {
		fail("line %d: not a scalar", n.Line)
	}
	if n.Tag == "!!null" {
		return ""
	}
	return n.Value
}

// unescape decodes the backslash escapes that are left after YAML's own, as
// the library's test runner (unescape_value in src/request_analyzer.rs) does
// to every request string and required message item: \xNN is the code point
// U+00NN, \b \f \n \r \t are the control bytes, and a backslash before any
// other character stands for that character. So `/foo/bar\t/baz` written
// plainly holds a tab, and the item "chunked\\\\0x11" means the text
// chunked\0x11.
func unescape(s string, fail func(string, ...any)) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		i++
		if i == len(s) {
			fail("malformed escape in %q", s)
		}
		switch s[i] {
		case 'x':
			if i+3 > len(s) {
				fail("malformed escape in %q", s)
			}
			r, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				fail("malformed escape in %q", s)
			}
			b.WriteRune(rune(r))
			i += 2
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		default:
			_, size := utf8.DecodeRuneInString(s[i:])
			b.WriteString(s[i : i+size])
			i += size - 1
		}
	}
	return b.String()
}
