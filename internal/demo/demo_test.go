package demo

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"
)

// runDemo starts the demo on a free port and returns latch's URL.
func runDemo(t *testing.T, sticky bool) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Addr: "127.0.0.1:0", Sticky: sticky, Ready: func(u string) { ready <- u }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo.Run: %v", err)
		}
	})
	select {
	case u := <-ready:
		return u
	case err := <-done:
		t.Fatalf("demo ended before it was ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("demo not ready after 10 s")
	}
	return ""
}

// login runs one login flow as a browser would: /login through latch, the
// redirect to the IdP, the redirect back to /callback through latch.
func login(t *testing.T, c *http.Client, base string) (ok bool, instance string) {
	t.Helper()
	resp, err := c.Get(base + "login")
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(resp.Request.URL.Path, "/callback") {
		t.Fatalf("the flow ended at %s, not /callback", resp.Request.URL)
	}
	switch {
	case resp.StatusCode == 200 && strings.Contains(string(body), "Login succeeded"):
		ok = true
	case resp.StatusCode == 403 && strings.Contains(string(body), "Login FAILED"):
	default:
		t.Fatalf("callback answered %d: %s", resp.StatusCode, body)
	}
	return ok, resp.Header.Get("X-Served-By")
}

func newBrowser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second}
}

func TestDemoLoginsSucceedWithStickiness(t *testing.T) {
	base := runDemo(t, true)
	instances := map[string]int{}
	succeeded := 0
	// 100 logins by 25 browsers (each with its own cookie jar), so that the
	// sessions spread over every instance.
	for b := range 25 {
		c := newBrowser()
		for range 4 {
			ok, inst := login(t, c, base)
			if ok {
				succeeded++
			} else {
				t.Errorf("browser %d: login failed on %s", b, inst)
			}
			instances[inst]++
		}
	}
	if succeeded != 100 {
		t.Errorf("%d of 100 logins succeeded with stickiness, want 100", succeeded)
	}
	if len(instances) != Instances {
		t.Errorf("logins reached %d instances (%v), want %d", len(instances), instances, Instances)
	}
}

func TestDemoLoginsFailWithoutStickiness(t *testing.T) {
	base := runDemo(t, false)
	c := newBrowser()
	failed := 0
	for range 100 {
		if ok, _ := login(t, c, base); !ok {
			failed++
		}
	}
	// Round robin sends the callback to the instance after the one that
	// started the login, so nearly every login fails.
	if failed < 90 {
		t.Errorf("only %d of 100 logins failed without stickiness; the demo does not show the problem", failed)
	}
	t.Logf("%d of 100 logins failed without stickiness", failed)
}

func TestDemoPage(t *testing.T) {
	base := runDemo(t, true)
	resp, err := http.Get(base)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"served by <strong>app-", `href="/login"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("home page lacks %q:\n%s", want, body)
		}
	}
}
