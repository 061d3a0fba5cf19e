package admin

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/server"
)

// FuzzWrites sends any body to every write endpoint: the answer is a
// status the API documents, an error is JSON with a message, and the
// running config stays valid whatever was accepted.
func FuzzWrites(f *testing.F) {
	for _, s := range []string{
		`{"targets": [{"id": "127.0.0.1:7", "weight": 2}]}`,
		`{"targets": [{"id": "[::1]:7"}, {"id": "nohost", "weight": -1}]}`,
		`{"weight": 1000}`, `{"weight": 1e3}`, `{"weight": "3"}`,
		`{"mode": "keep_sessions", "idle": "2s", "deadline": "1h"}`, `{"mode": "immediate"}`, `{"idle": "-1s"}`,
		`{"attributes": {"stickiness.enabled": true, "deregistration_delay.timeout_seconds": 30}}`,
		`{"attributes": {"stickiness.type": null}}`, `{"attributes": {"x": [1]}}`,
		``, `null`, `[]`, `{`, `{"targets": null}`, "\x00",
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	cfg, err := config.Parse([]byte(`listeners:
  - name: public
    address: 127.0.0.1:0
    default_action: { type: forward, forward: { target_group: web } }
target_groups:
  - name: web
    targets:
      - id: 127.0.0.1:9
    health_check: { enabled: false }
    attributes: { stickiness.enabled: "true" }
state_dir: `+dir+`
`), "")
	if err != nil {
		f.Fatal(err)
	}
	srv, err := server.New(server.Options{})
	if err != nil {
		f.Fatal(err)
	}
	if err := srv.Apply(context.Background(), cfg); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { srv.Shutdown(context.Background()) })
	a, err := New(Options{Server: srv, Address: "127.0.0.1:0", Token: testToken, Log: quiet})
	if err != nil {
		f.Fatal(err)
	}
	h := a.Handler()
	writes := []struct{ method, path string }{
		{"POST", "/api/v1/target-groups/web/targets"},
		{"PUT", "/api/v1/target-groups/web/targets/127.0.0.1:9/weight"},
		{"POST", "/api/v1/target-groups/web/targets/127.0.0.1:9/drain"},
		{"PATCH", "/api/v1/target-groups/web/attributes"},
	}
	documented := map[int]bool{200: true, 204: true, 400: true, 404: true, 409: true, 413: true, 422: true}
	f.Fuzz(func(t *testing.T, body string) {
		for _, w := range writes {
			r := httptest.NewRequest(w.method, w.path, strings.NewReader(body))
			r.Header.Set("Authorization", "Bearer "+testToken)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if !documented[rec.Code] {
				t.Fatalf("%s %s %q: status %d: %s", w.method, w.path, body, rec.Code, rec.Body)
			}
			if rec.Code >= 400 {
				var e ErrorBody
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
					t.Fatalf("%s %s %q: %d with %q, not a JSON error", w.method, w.path, body, rec.Code, rec.Body)
				}
			}
		}
		if err := srv.Snapshot().Config.ValidateExceptFiles(); err != nil {
			t.Fatalf("after %q the running config is invalid: %v", body, err)
		}
		// Each input starts from the file's groups, so that none grows
		// the config for the next.
		err := srv.Update(context.Background(), func(c *config.Config) error {
			c.TargetGroups = cfg.Clone().TargetGroups
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
