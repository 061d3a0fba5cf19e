package conformance_test

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

// The corpus of aws/http-desync-guardian, the library behind ALB's desync
// mitigation mode, lives in internal/desync/testdata/corpus (FORMAT.md
// there describes it). This file loads it for the raw-socket tests in
// desync_test.go. The loader is this package's own (a _test file of
// another package cannot be imported) but follows the same rules as
// internal/desync/corpus_test.go: YAML scalars are taken as written, then
// unescaped once more as the library's runner does.

// corpusDir is the corpus, relative to this package's directory.
var corpusDir = filepath.Join("..", "desync", "testdata", "corpus")

// corpusSize is how many cases the corpus holds (as internal/desync's
// corpus test says), so that a loader that silently skips some cannot pass.
const corpusSize = 159

// corpusHeader is one header line of a case: name and value exactly as
// the case gives them, to be written as "name: value\r\n".
type corpusHeader struct{ name, value string }

// corpusCase is one request of the corpus and the verdict ALB gives it.
type corpusCase struct {
	file                 string // the corpus file's base name
	name                 string
	method, uri, version string
	headers              []corpusHeader
	tier, reason         string // as ALB's logs spell them
}

// loadCorpusFiles loads every corpus file, in name order.
func loadCorpusFiles(t testing.TB) []corpusCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus files in %s: %v", corpusDir, err)
	}
	var all []corpusCase
	for _, f := range files {
		all = append(all, loadCorpusFile(t, f)...)
	}
	if len(all) != corpusSize {
		t.Fatalf("loaded %d corpus cases, want %d", len(all), corpusSize)
	}
	return all
}

// loadCorpusFile reads one corpus file. It walks YAML nodes rather than
// decoding into structs, so that every scalar's text is taken as written
// (`value: 1000` is an int to YAML but a header value here), and fails on
// any key it does not know, so that a new shape cannot be skipped silently.
func loadCorpusFile(t testing.TB, file string) []corpusCase {
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
		c := corpusCase{file: filepath.Base(file)}
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("%s:%d: case %q: %s", file, n.Line, c.name, fmt.Sprintf(format, args...))
		}
		yamlEach(n, fail, func(key string, v *yaml.Node) {
			switch key {
			case "name":
				c.name = yamlScalar(v, fail) // a label: the library's runner does not unescape it
			case "method":
				c.method = corpusUnescape(yamlScalar(v, fail), fail)
			case "uri":
				c.uri = corpusUnescape(yamlScalar(v, fail), fail)
			case "version":
				c.version = corpusUnescape(yamlScalar(v, fail), fail)
			case "headers":
				if v.Tag == "!!null" {
					return
				}
				if v.Kind != yaml.SequenceNode {
					fail("headers is not a list")
				}
				for _, h := range v.Content {
					var hd corpusHeader
					var hasName, hasValue bool
					yamlEach(h, fail, func(key string, v *yaml.Node) {
						switch key {
						case "name":
							hd.name, hasName = corpusUnescape(yamlScalar(v, fail), fail), true
						case "value":
							hd.value, hasValue = corpusUnescape(yamlScalar(v, fail), fail), true
						case "tier":
							// The library's tier for the header alone; ALB acts on the request's.
						default:
							fail("unknown header key %q", key)
						}
					})
					if !hasName || !hasValue {
						fail("header without name or value")
					}
					c.headers = append(c.headers, hd)
				}
			case "expected":
				yamlEach(v, fail, func(key string, v *yaml.Node) {
					switch key {
					case "tier":
						c.tier = yamlScalar(v, fail)
					case "reason":
						c.reason = yamlScalar(v, fail)
					case "required_message_items":
						// Checked by internal/desync's own corpus test: the
						// data path does not show messages to clients.
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

func yamlEach(n *yaml.Node, fail func(string, ...any), f func(string, *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		fail("line %d: not a mapping", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		f(n.Content[i].Value, n.Content[i+1])
	}
}

// yamlScalar returns a scalar's text as written, with YAML's own escapes
// decoded; a missing value (`uri:`) is empty.
func yamlScalar(n *yaml.Node, fail func(string, ...any)) string {
	if n.Kind != yaml.ScalarNode {
		fail("line %d: not a scalar", n.Line)
	}
	if n.Tag == "!!null" {
		return ""
	}
	return n.Value
}

// corpusUnescape decodes the backslash escapes left after YAML's own, as
// the library's test runner (unescape_value in src/request_analyzer.rs)
// does to every request string: \xNN is the code point U+00NN (so \xff
// becomes the two UTF-8 bytes of U+00FF, as the runner's Rust String
// holds it), \b \f \n \r \t are the control bytes, and a backslash before
// any other character stands for that character. So `/foo/bar\t/baz`
// written plainly holds a tab, and "\\r" in double quotes holds a CR.
func corpusUnescape(s string, fail func(string, ...any)) string {
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
