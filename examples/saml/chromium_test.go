package main

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds Debian's chromium (which .ci/run installs), or another
// Chrome the machine has, as internal/dashboard's browser test does.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium binary found (apt-get install chromium; .ci/run installs it): the browser test cannot run")
	return ""
}

// chromiumLogin logs in to the example in a new headless Chromium, as a
// person does: open the SP's URL, type the user and password into the
// IdP's form, and let the IdP's page post its answer back. It returns the
// SP's last page: its outcome, the instance that finished the login, and
// the cookies the IdP's POST carried to it.
//
// strict takes away the two things besides AWSALBCORS that let the IdP's
// POST reach the instance that began the login: Chromium sends a cookie
// without a SameSite attribute (AWSALB) with a cross-site POST within 2
// minutes of its setting ("Lax+POST"), as if the user were back from the
// IdP later than that; and latch's HTTP/2 first-burst affinity, which
// sends the POST, if it comes on the connection the login began on, to
// that connection's instance, as if the connection were gone.
func chromiumLogin(t *testing.T, e *Example, strict bool) (outcome, finishedBy, cookies, reason string) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		// Root cannot run chromium in its sandbox (CI runs as root).
		chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true),
		// The example's certificates chain to its own CA, as a person's
		// browser warns and is told to go on.
		chromedp.Flag("ignore-certificate-errors", true),
	)
	if strict {
		opts = append(opts, chromedp.Flag("enable-features", "SameSiteDefaultChecksMethodRigorously"),
			chromedp.Flag("disable-http2", true))
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(bctx, 30*time.Second)
	defer cancelT()
	err := chromedp.Do(ctx,
		chromedp.Navigate(e.URL),
		chromedp.WaitVisible(`input[name="password"]`),
		chromedp.SendKeys(`input[name="user"]`, User),
		chromedp.SendKeys(`input[name="password"]`, Password),
		chromedp.Click(`input[type="submit"]`),
		chromedp.WaitVisible(`#again`),
	)
	if err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("log in with chromium: %v (at %s)", err, loc)
	}
	outcome = attr(t, ctx, "body", "data-outcome")
	finishedBy = attr(t, ctx, "body", "data-finished-by")
	if outcome == "logged-in" {
		c, err := chromedp.Run(ctx, chromedp.Text("#acs-cookies"))
		if err != nil {
			t.Fatal(err)
		}
		cookies = c
	} else {
		r, err := chromedp.Run(ctx, chromedp.Text("#error"))
		if err != nil {
			t.Fatal(err)
		}
		reason = r
	}
	return outcome, finishedBy, cookies, reason
}

func attr(t *testing.T, ctx context.Context, sel, name string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.AttributeValue(sel, name))
	if err != nil {
		t.Fatalf("%s's %s: %v", sel, name, err)
	}
	return v.Value
}

// TestChromium: the login in a real browser, with lb_cookie stickiness.
// The IdP (https://127.0.0.1:PORT) is another site than the SP
// (https://localhost:PORT), and so its POST back carries only the SP's
// cookies that may go with a cross-site request.
//
// As a person's Chromium does, the login succeeds. Strict (see
// chromiumLogin: the user back from the IdP after 2 minutes, on a new
// connection), the POST carries AWSALBCORS (SameSite=None; Secure) and not
// AWSALB, and the login still succeeds; with latch's AWSALBCORS turned off
// (stickiness.lb_cookie.cors_cookie.enabled: false), it fails with the
// library's InResponseTo error.
func TestChromium(t *testing.T) {
	t.Parallel()
	t.Run("as_a_person", func(t *testing.T) {
		e := startExample(t, "lb_cookie", "")
		outcome, by, cookies, reason := chromiumLogin(t, e, false)
		t.Logf("chromium: %s, finished on %s; the IdP's POST carried the cookies %q", outcome, by, cookies)
		if outcome != "logged-in" || by == "" {
			t.Fatalf("chromium's login: outcome %q, finished on %q, %q; want logged in", outcome, by, reason)
		}
		if names := strings.Split(cookies, ", "); !slices.Contains(names, "AWSALBCORS") || !slices.Contains(names, loginCookie) {
			t.Errorf("the IdP's POST carried %q; want AWSALBCORS and %s", cookies, loginCookie)
		}
	})
	t.Run("strict", func(t *testing.T) {
		e := startExample(t, "lb_cookie", "")
		outcome, by, cookies, reason := chromiumLogin(t, e, true)
		t.Logf("chromium, strict: %s, finished on %s; the IdP's POST carried the cookies %q", outcome, by, cookies)
		if outcome != "logged-in" || by == "" {
			t.Fatalf("chromium's login: outcome %q, finished on %q, %q; want logged in", outcome, by, reason)
		}
		if want := "AWSALBCORS, " + loginCookie; cookies != want {
			t.Errorf("the IdP's POST carried %q; want %q", cookies, want)
		}
	})
	t.Run("strict_without_AWSALBCORS", func(t *testing.T) {
		e := startExampleWith(t, Options{Sticky: "lb_cookie", Attributes: map[string]string{"stickiness.lb_cookie.cors_cookie.enabled": "false"}})
		outcome, by, cookies, reason := chromiumLogin(t, e, true)
		t.Logf("chromium, strict, without AWSALBCORS: %s %s %q: %s", outcome, by, cookies, reason)
		if outcome != "failed" || !strings.Contains(reason, inResponseToError) {
			t.Errorf("chromium's login: outcome %q, finished on %q, cookies %q, reason %q; want failed with the InResponseTo error",
				outcome, by, cookies, reason)
		}
	})
}
