package conformance_test

import (
	"path/filepath"
	"testing"

	"github.com/latch-lb/latch/internal/desync/desynctest"
)

// The corpus of aws/http-desync-guardian, the library behind ALB's desync
// mitigation mode, lives in internal/desync/testdata/corpus (FORMAT.md
// there describes it); desynctest loads it for the raw-socket tests in
// desync_test.go, as for the classifier's own.

// corpusDir is the corpus, relative to this package's directory.
var corpusDir = filepath.Join("..", "desync", "testdata", "corpus")

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
	var all []corpusCase
	for _, c := range desynctest.LoadDir(t, corpusDir) {
		cc := corpusCase{file: c.File, name: c.Name, method: c.Method, uri: c.URI, version: c.Version, tier: c.Tier, reason: c.Reason}
		for _, h := range c.Headers {
			cc.headers = append(cc.headers, corpusHeader{h.Name, h.Value})
		}
		all = append(all, cc)
	}
	return all
}
