package dashboard

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHandlerServesThePage: the page, its script, style and icon come
// from the binary with the headers that keep the script its own; other
// paths and methods get JSON errors naming what was wrong.
func TestHandlerServesThePage(t *testing.T) {
	srv := startLatch(t, configYAML(t.TempDir(), "", startTarget(t, "a")), nil)
	web := httptest.NewServer(New(srv, nil, nil).Handler())
	t.Cleanup(web.Close)
	for _, c := range []struct{ path, ctype, has string }{
		{"/", "text/html; charset=utf-8", `<script src="/app.js" defer></script>`},
		{"/app.js", "text/javascript; charset=utf-8", "/api/v1/stream"},
		{"/app.css", "text/css; charset=utf-8", ".state.unhealthy"},
		{"/favicon.svg", "image/svg+xml", "<svg"},
	} {
		resp, err := http.Get(web.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != c.ctype || !strings.Contains(string(body), c.has) {
			t.Errorf("GET %s: %d, %q, body has %q: %t; want 200, %q, true", c.path, resp.StatusCode,
				resp.Header.Get("Content-Type"), c.has, strings.Contains(string(body), c.has), c.ctype)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") ||
			resp.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET %s: CSP %q, X-Frame-Options %q; want scripts from the listener only, no framing", c.path, csp, resp.Header.Get("X-Frame-Options"))
		}
	}
	for _, c := range []struct {
		method, path string
		status       int
		says         string
	}{
		{"GET", "/index.html", 404, "no such page: /index.html"},
		{"GET", "/static/app.js", 404, "no such page: /static/app.js"},
		{"POST", "/", 405, "method POST is not allowed on /"},
	} {
		req, _ := http.NewRequest(c.method, web.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error string }
		err = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != c.status || err != nil || !strings.Contains(e.Error, c.says) {
			t.Errorf("%s %s: %d, %q (%v); want %d, an error saying %q", c.method, c.path, resp.StatusCode, e.Error, err, c.status, c.says)
		}
	}
}
