package desync

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/latch-lb/latch/internal/h1"
)

// corpusCase is one request of http-desync-guardian's corpus (see
// testdata/corpus/FORMAT.md) with the verdict ALB gives it.
type corpusCase struct {
	name                 string
	method, uri, version string
	fields               []h1.Field
	tier, reason         string
	requiredMessageItems []string
}

// corpusSize is how many cases testdata/corpus holds, so that a loader that
// silently skips some cannot pass.
const corpusSize = 159

func TestCorpus(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "corpus", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus files: %v", err)
	}
	total := 0
	for _, file := range files {
		cases := loadCorpus(t, file)
		total += len(cases)
		for _, c := range cases {
			t.Run(filepath.Base(file)+"/"+c.name, func(t *testing.T) {
				v := Classify([]byte(c.method), []byte(c.uri), []byte(c.version), c.fields)
				if v.Tier.String() != c.tier || v.Reason.String() != c.reason {
					t.Errorf("got %v/%v, want %s/%s; message %q", v.Tier, v.Reason, c.tier, c.reason, v.Message)
				}
				if tier, reason := referenceClassify([]byte(c.method), []byte(c.uri), []byte(c.version), c.fields); tier.String() != c.tier || reason.String() != c.reason {
					t.Errorf("the fuzzing reference gives %v/%v, want %s/%s", tier, reason, c.tier, c.reason)
				}
				for _, item := range c.requiredMessageItems {
					if !strings.Contains(strings.ToLower(v.Message), strings.ToLower(item)) {
						t.Errorf("message %q does not contain %q", v.Message, item)
					}
				}
			})
		}
	}
	if total != corpusSize {
		t.Errorf("loaded %d corpus cases, want %d", total, corpusSize)
	}
}

// loadCorpus reads one corpus file. It walks YAML nodes rather than
// decoding into structs so that it can take every scalar's text as written
// (`value: 1000` is an int to YAML but a header value here), and it fails on
// any key it does not know so that a new shape cannot be skipped silently.
func loadCorpus(t testing.TB, file string) []corpusCase {
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
	var cases []corpusCase
	for _, n := range doc.Content[0].Content {
		var c corpusCase
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("%s:%d: case %q: %s", file, n.Line, c.name, fmt.Sprintf(format, args...))
		}
		eachKey(n, fail, func(key string, v *yaml.Node) {
			switch key {
			case "name":
				c.name = scalar(v, fail) // names are labels: the runner does not unescape them
			case "method":
				c.method = unescape(scalar(v, fail), fail)
			case "uri":
				c.uri = unescape(scalar(v, fail), fail)
			case "version":
				c.version = unescape(scalar(v, fail), fail)
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
					c.fields = append(c.fields, h1.Field{Name: []byte(name), Value: []byte(value)})
				}
			case "expected":
				eachKey(v, fail, func(key string, v *yaml.Node) {
					switch key {
					case "tier":
						c.tier = scalar(v, fail)
					case "reason":
						c.reason = scalar(v, fail)
					case "required_message_items":
						if v.Kind != yaml.SequenceNode {
							fail("required_message_items is not a list")
						}
						for _, item := range v.Content {
							c.requiredMessageItems = append(c.requiredMessageItems, unescape(scalar(item, fail), fail))
						}
					default:
						fail("unknown expected key %q", key)
					}
				})
			default:
				fail("unknown key %q", key)
			}
		})
		if c.name == "" || c.tier == "" || c.reason == "" {
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
