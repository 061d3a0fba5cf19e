package config

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/latch-lb/latch/internal/tlsconf/tlstest"
)

// readmeInvalid lists the ```yaml blocks of README.md that are wrong on
// purpose (to show an error, say), each keyed by a line only that block
// holds, with the reason. TestREADMEExamples skips them. There are none:
// README.md shows its errors in plain ``` blocks.
var readmeInvalid = map[string]string{
	// "    stickness.enabled: true": "shows the unknown-attribute error",
}

// readmePlaceholders are the values README.md leaves for the reader to
// fill in, each with what TestREADMEExamples puts in its place.
var readmePlaceholders = []struct{ text, with string }{
	// A cookie key's secret: "..." stands for 32 bytes in base64.
	{`secret: "..."`, "secret: " + key1},
}

// readmeBlock is one ```yaml block of README.md.
type readmeBlock struct {
	line int // README.md's line of the block's first line
	text string
}

// readmeBlocks returns the ```yaml blocks of the README at path.
func readmeBlocks(t *testing.T, path string) []readmeBlock {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []readmeBlock
	var cur *readmeBlock
	for i, line := range strings.Split(string(data), "\n") {
		switch {
		case cur == nil && strings.TrimSpace(line) == "```yaml":
			cur = &readmeBlock{line: i + 2}
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		}
	}
	if cur != nil {
		t.Fatalf("%s:%d: a ```yaml block is not closed", path, cur.line-1)
	}
	return blocks
}

// TestREADMEExamples parses every ```yaml block of README.md, so that no
// example there is one latch refuses.
//
// A block that is a whole config is parsed as it is, given the target
// groups it forwards to when it has no target_groups key (the HTTPS
// listener example). A fragment indented by 4 (the rules example) is put
// into a minimal config: under a listener "readme" whose default action
// forwards to a group "readme" when it holds listener keys or listener
// attributes, else under that group; every group the block forwards to is
// added, with no targets. The files the block names (certificates, keys,
// cookie key secrets) are made in a temporary directory, where the config
// is parsed from; placeholders are filled in from readmePlaceholders, and
// the blocks in readmeInvalid are skipped.
func TestREADMEExamples(t *testing.T) {
	blocks := readmeBlocks(t, filepath.Join("..", "..", "README.md"))
	if len(blocks) < 3 {
		t.Fatalf("found %d ```yaml blocks in README.md, want at least 3 (a config, an HTTPS listener, rules)", len(blocks))
	}
	for _, b := range blocks {
		t.Run(fmt.Sprintf("line %d", b.line), func(t *testing.T) {
			for key, why := range readmeInvalid {
				if slices.Contains(strings.Split(b.text, "\n"), key) {
					t.Skipf("invalid on purpose: %s", why)
				}
			}
			text := b.text
			for _, p := range readmePlaceholders {
				text = strings.ReplaceAll(text, p.text, p.with)
			}
			doc, first := wrapReadmeBlock(t, text)
			dir := t.TempDir()
			makeReadmeFiles(t, dir, text)
			_, err := Parse([]byte(doc), filepath.Join(dir, "latch.yaml"))
			if err == nil {
				return
			}
			// Report each problem at its README line when it is in the block.
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Parse: %v", err)
			}
			n := strings.Count(text, "\n")
			for _, p := range ps {
				if p.Line >= first && p.Line < first+n {
					t.Errorf("README.md:%d: %s: %s", b.line+p.Line-first, p.Path, p.Msg)
				} else {
					t.Errorf("(wrapping, line %d) %s: %s", p.Line, p.Path, p.Msg)
				}
			}
			t.Logf("the config parsed:\n%s", doc)
		})
	}
}

// wrapReadmeBlock returns the config that TestREADMEExamples parses for a
// block (see there), and the line of the config where the block starts.
func wrapReadmeBlock(t *testing.T, text string) (doc string, first int) {
	t.Helper()
	var top map[string]any
	if err := yaml.Unmarshal([]byte(text), &top); err != nil {
		t.Fatalf("not YAML: %v\n%s", err, text)
	}
	indent := -1
	for _, line := range strings.Split(text, "\n") {
		if s := strings.TrimLeft(line, " "); s != "" && !strings.HasPrefix(s, "#") {
			indent = len(line) - len(s)
			break
		}
	}

	// The groups the block forwards to, less those it defines.
	var groups []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if fw, ok := v["forward"].(map[string]any); ok {
				if g, ok := fw["target_group"].(string); ok {
					groups = append(groups, g)
				}
				if ws, ok := fw["target_groups"].([]any); ok {
					for _, w := range ws {
						if w, ok := w.(map[string]any); ok {
							if g, ok := w["name"].(string); ok {
								groups = append(groups, g)
							}
						}
					}
				}
			}
			for k, e := range v {
				if !(indent == 0 && k == "target_groups") {
					walk(e)
				}
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(top)
	if indent == 0 {
		if defined, ok := top["target_groups"].([]any); ok {
			for _, g := range defined {
				if g, ok := g.(map[string]any); ok {
					groups = slices.DeleteFunc(groups, func(s string) bool { return s == g["name"] })
				}
			}
		}
	}
	groupYAML := func(except string) string {
		slices.Sort(groups)
		groups = slices.Compact(groups)
		var s strings.Builder
		for _, g := range groups {
			if g != except {
				fmt.Fprintf(&s, "  - name: %s\n", g)
			}
		}
		return s.String()
	}

	const listener = "listeners:\n  - name: readme\n    address: 127.0.0.1:8080\n"
	const defaultAction = "    default_action: {type: forward, forward: {target_group: readme}}\n"
	switch {
	case indent == 0 && top["listeners"] != nil:
		// A whole config, or all of one but its target groups.
		if top["target_groups"] == nil && len(groups) > 0 {
			return text + "target_groups:\n" + groupYAML(""), 1
		}
		return text, 1
	case indent == 0 && top["target_groups"] != nil:
		// Target groups alone: a listener that forwards to the first.
		defined, _ := top["target_groups"].([]any)
		first, _ := defined[0].(map[string]any)
		head := listener + fmt.Sprintf("    default_action: {type: forward, forward: {target_group: %v}}\n", first["name"])
		return head + text, strings.Count(head, "\n") + 1
	case indent == 0 && top["target_groups"] == nil:
		// A top-level key of its own (access_log): a minimal config
		// around it.
		head := listener + defaultAction + "target_groups:\n  - name: readme\n"
		return head + text, strings.Count(head, "\n") + 1
	case indent == 4 && readmeListenerFragment(t, top):
		groups = append(groups, "readme")
		head := listener
		if top["default_action"] == nil {
			head += defaultAction
		}
		return head + text + "target_groups:\n" + groupYAML(""), strings.Count(head, "\n") + 1
	case indent == 4:
		head := listener + defaultAction + "target_groups:\n" + groupYAML("readme") + "  - name: readme\n"
		return head + text, strings.Count(head, "\n") + 1
	}
	t.Fatalf("a README block of a kind TestREADMEExamples cannot place in a config (first key at indent %d); teach wrapReadmeBlock:\n%s", indent, text)
	return "", 0
}

// readmeListenerFragment reports whether the keys of a fragment indented
// by 4 are a listener's rather than a target group's.
func readmeListenerFragment(t *testing.T, top map[string]any) bool {
	t.Helper()
	listener, group := false, false
	for k, v := range top {
		switch k {
		case "address", "protocol", "rules", "default_action", "ssl_policy", "certificates":
			listener = true
		case "targets", "health_check", "protocol_version":
			group = true
		case "attributes":
			attrs, _ := v.(map[string]any)
			for a := range attrs {
				if strings.HasPrefix(a, "routing.") || strings.HasPrefix(a, "idle_timeout.") {
					listener = true
				} else {
					group = true
				}
			}
		}
	}
	if listener == group {
		t.Fatalf("cannot tell whether a README fragment with keys %v belongs to a listener or a target group; teach readmeListenerFragment", slices.Sorted(maps.Keys(top)))
	}
	return listener
}

var readmeFileRE = regexp.MustCompile(`\b(cert_file|key_file|secret_file):\s*([^\s,}]+)`)

// makeReadmeFiles makes under dir the files a README block names: for each
// cert_file and the key_file after it, a certificate for the name the file
// is named after ("star." for "*.") and its key; for each secret_file, a
// cookie key.
func makeReadmeFiles(t *testing.T, dir, text string) {
	t.Helper()
	var ca *tlstest.CA
	var pair *tlstest.Pair
	write := func(name string, data []byte) {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		tlstest.WriteFile(t, path, data)
	}
	for _, m := range readmeFileRE.FindAllStringSubmatch(text, -1) {
		switch kind, name := m[1], m[2]; kind {
		case "cert_file":
			if ca == nil {
				ca = tlstest.NewCA(t)
			}
			host := strings.TrimSuffix(filepath.Base(name), filepath.Ext(name))
			if rest, ok := strings.CutPrefix(host, "star."); ok {
				host = "*." + rest
			}
			pair = ca.Issue(t, tlstest.Options{DNSNames: []string{host}})
			write(name, pair.CertPEM)
		case "key_file":
			if pair == nil {
				t.Fatalf("key_file %s without a cert_file before it", name)
			}
			write(name, pair.KeyPEM)
			pair = nil
		case "secret_file":
			write(name, []byte(key2+"\n"))
		}
	}
}
