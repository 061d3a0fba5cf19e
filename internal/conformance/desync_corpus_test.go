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
type corpusHeader = desynctest.Header

// corpusCase is one request of the corpus and the verdict ALB gives it.
type corpusCase = desynctest.Case

// loadCorpusFiles loads every corpus file, in name order.
func loadCorpusFiles(t testing.TB) []corpusCase {
	t.Helper()
	return desynctest.LoadDir(t, corpusDir)
}
