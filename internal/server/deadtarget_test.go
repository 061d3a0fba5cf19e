package server

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// post sends a POST with body on c, with cookie, and returns the result.
func post(t *testing.T, c *http.Client, url, cookie, body string) result {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	if cookie != "" {
		req.Header.Set("Cookie", "AWSALB="+cookie)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := result{status: resp.StatusCode, body: string(b), backend: resp.Header.Get("X-Backend"),
		moved: resp.Header.Get("X-Saw-Moved"), header: resp.Header}
	for _, ck := range resp.Cookies() {
		if ck.Name == "AWSALB" {
			r.cookie = ck.Value
		}
	}
	return r
}

// TestPOSTRightAfterItsTargetDied is the SAML login's case: a POST on a
// kept-alive client connection, sent at once after its sticky target died,
// must not go onto the pooled connection the dead target closed (it could
// not be sent again): latch checks that connection first, connects anew,
// finds the target gone, and sends the POST to another target, moving the
// session. Eight times in a row, over HTTP and HTTPS.
func TestPOSTRightAfterItsTargetDied(t *testing.T) {
	for _, scheme := range []string{"http", "https"} {
		t.Run(scheme, func(t *testing.T) {
			for round := range 8 {
				a, b := startBackend(t, "a"), startBackend(t, "b")
				var lb *running
				var c *http.Client
				if scheme == "http" {
					lb = startLB(t, lbConfig{targets: []string{a.addr, b.addr}, sticky: true})
					tr := &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}
					t.Cleanup(tr.CloseIdleConnections)
					c = &http.Client{Transport: tr, Timeout: 10 * time.Second}
				} else {
					e := newTLSEnv(t)
					lb = startYAML(t, e.yaml("HTTPS", allCerts, "", a.addr, b.addr))
					c = e.client(t, false, "a.example.test")
				}
				first := post(t, c, lb.url+"/login", "", "AuthnRequest")
				if first.status != 200 {
					t.Fatalf("round %d: the first POST: %d %q", round, first.status, first.body)
				}
				dead, live := a, b
				if first.backend == "b" {
					dead, live = b, a
				}
				dead.srv.Close() // the target dies: its connections close
				r := post(t, c, lb.url+"/acs", first.cookie, "SAMLResponse")
				if r.status != 200 || r.backend != live.name || r.moved != dead.addr {
					t.Fatalf("round %d: the POST right after its target died: %d %q from %q (moved %q); want 200 from %s, moved from %s",
						round, r.status, r.body, r.backend, r.moved, live.name, dead.addr)
				}
			}
		})
	}
}

// TestRequestInFlightOnDyingTarget: a target dies with a request in flight,
// on a new connection or a reused one. A GET goes once more to another
// target, with its session; a POST fails with 502 and runs nowhere else.
func TestRequestInFlightOnDyingTarget(t *testing.T) {
	for _, method := range []string{"GET", "POST"} {
		for _, reused := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s reused %t", method, reused), func(t *testing.T) {
				a, b := startBackend(t, "a"), startBackend(t, "b")
				if !reused {
					// A target that closes every connection after its
					// response: latch pools none, each request is on a new one.
					a.handle(func(w http.ResponseWriter, r *http.Request) {
						w.Header().Set("Connection", "close")
						io.WriteString(w, "a")
					})
				}
				lb := startLB(t, lbConfig{targets: []string{a.addr, b.addr}, sticky: true})
				cookie := newSessions(t, lb, 2)["a"][0]
				started, release := make(chan struct{}), make(chan struct{})
				a.handle(func(w http.ResponseWriter, r *http.Request) {
					close(started)
					<-release
				})
				done := make(chan result, 1)
				go func() {
					var body io.Reader
					if method == "POST" {
						body = strings.NewReader("pay once")
					}
					req, _ := http.NewRequest(method, lb.url+"/", body)
					req.Header.Set("Cookie", "AWSALB="+cookie)
					resp, err := client.Do(req)
					if err != nil {
						done <- result{body: err.Error()}
						return
					}
					defer resp.Body.Close()
					bd, _ := io.ReadAll(resp.Body)
					done <- result{status: resp.StatusCode, body: string(bd), backend: resp.Header.Get("X-Backend"),
						moved: resp.Header.Get("X-Saw-Moved")}
				}()
				<-started
				aHits, bHits := a.hits.Load(), b.hits.Load()
				a.srv.Close() // the target dies under the request
				close(release)
				r := <-done
				switch method {
				case "GET":
					if r.status != 200 || r.backend != "b" || r.moved != a.addr {
						t.Errorf("GET: %d %q from %q (moved %q); want 200 from b, moved from %s", r.status, r.body, r.backend, r.moved, a.addr)
					}
				case "POST":
					if r.status != 502 || b.hits.Load() != bHits || a.hits.Load() != aHits {
						t.Errorf("POST: %d %q; a got %d more, b %d more; want latch's 502 and the POST run once, on a",
							r.status, r.body, a.hits.Load()-aHits, b.hits.Load()-bHits)
					}
				}
			})
		}
	}
}
