package desync

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/latch-lb/latch/internal/desync/desynctest"
	"github.com/latch-lb/latch/internal/h1"
)

func TestCorpus(t *testing.T) {
	for _, c := range desynctest.LoadDir(t, filepath.Join("testdata", "corpus")) {
		var fields []h1.Field
		for _, h := range c.Headers {
			fields = append(fields, h1.Field{Name: []byte(h.Name), Value: []byte(h.Value)})
		}
		t.Run(c.File+"/"+c.Name, func(t *testing.T) {
			v := Classify([]byte(c.Method), []byte(c.URI), []byte(c.Version), fields)
			if v.Tier.String() != c.Tier || v.Reason.String() != c.Reason {
				t.Errorf("got %v/%v, want %s/%s; message %q", v.Tier, v.Reason, c.Tier, c.Reason, v.Message)
			}
			if tier, reason := referenceClassify([]byte(c.Method), []byte(c.URI), []byte(c.Version), fields); tier.String() != c.Tier || reason.String() != c.Reason {
				t.Errorf("the fuzzing reference gives %v/%v, want %s/%s", tier, reason, c.Tier, c.Reason)
			}
			for _, item := range c.RequiredMessageItems {
				if !strings.Contains(strings.ToLower(v.Message), strings.ToLower(item)) {
					t.Errorf("message %q does not contain %q", v.Message, item)
				}
			}
		})
	}
}
