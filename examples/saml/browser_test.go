package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"

	"golang.org/x/net/html"
)

// browser is what a browser does in an SP-initiated SAML login, over a
// real http.Client with a cookie jar: it follows redirects, shows pages,
// and submits their forms (the IdP's login form with the user's
// credentials, and the auto-posting forms of the SAML bindings, which a
// browser's script submits at once). It records every response it gets.
type browser struct {
	c    *http.Client
	tr   *http.Transport
	hops []hop
	// newConnForSP makes the browser post the IdP's answer to the SP on a
	// new connection, as after a user took longer at the IdP than the
	// connection lived (the listener's idle timeout).
	newConnForSP bool
}

// hop is one response the browser got.
type hop struct {
	method, url string
	status      int
	servedBy    string // the SP instance that answered (X-Served-By), if one did
}

func (h hop) String() string {
	s := fmt.Sprintf("%s %s: %d", h.method, h.url, h.status)
	if h.servedBy != "" {
		s += " from " + h.servedBy
	}
	return s
}

// newBrowser returns a browser that trusts the example's certificate
// authority and speaks HTTP/1.1 or HTTP/2 (proto "h1" or "h2").
func newBrowser(k *Keys, proto string) *browser {
	pool := x509.NewCertPool()
	pool.AddCert(k.CA)
	var p http.Protocols
	switch proto {
	case "h1":
		p.SetHTTP1(true)
	case "h2":
		p.SetHTTP2(true)
	default:
		panic("proto " + proto)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, Protocols: &p, ForceAttemptHTTP2: proto == "h2"}
	jar, _ := cookiejar.New(nil)
	b := &browser{tr: tr}
	b.c = &http.Client{Transport: tr, Jar: jar, Timeout: 20 * time.Second}
	b.c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		r := req.Response
		b.hops = append(b.hops, hop{r.Request.Method, r.Request.URL.String(), r.StatusCode, r.Header.Get("X-Served-By")})
		return nil
	}
	return b
}

// close closes the browser's idle connections.
func (b *browser) close() { b.tr.CloseIdleConnections() }

// shown is a page the browser shows: its URL, status and body.
type shown struct {
	url    *url.URL
	status int
	body   string
	by     string // X-Served-By
}

func (b *browser) do(req *http.Request) (*shown, error) {
	resp, err := b.c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	b.hops = append(b.hops, hop{resp.Request.Method, resp.Request.URL.String(), resp.StatusCode, resp.Header.Get("X-Served-By")})
	return &shown{url: resp.Request.URL, status: resp.StatusCode, body: string(body), by: resp.Header.Get("X-Served-By")}, nil
}

func (b *browser) get(u string) (*shown, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	return b.do(req)
}

// start opens u and stops at its first answer, a redirect included: the
// SP's answer that begins a login.
func (b *browser) start(u string) (*http.Response, error) {
	c := *b.c
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(u)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	b.hops = append(b.hops, hop{http.MethodGet, u, resp.StatusCode, resp.Header.Get("X-Served-By")})
	return resp, nil
}

// form is an HTML form of a page.
type form struct {
	action *url.URL
	method string
	fields url.Values
}

// forms parses the page's forms as a browser would: each form's action
// (resolved against the page's URL), method and the named inputs.
func (s *shown) forms() ([]*form, error) {
	doc, err := html.Parse(strings.NewReader(s.body))
	if err != nil {
		return nil, err
	}
	var out []*form
	var walk func(n *html.Node, f *form)
	walk = func(n *html.Node, f *form) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "form":
				f = &form{method: http.MethodGet, fields: url.Values{}, action: s.url}
				for _, a := range n.Attr {
					switch a.Key {
					case "action":
						u, err := s.url.Parse(a.Val)
						if err == nil {
							f.action = u
						}
					case "method":
						f.method = strings.ToUpper(a.Val)
					}
				}
				out = append(out, f)
			case "input":
				if f != nil {
					var name, value string
					for _, a := range n.Attr {
						switch a.Key {
						case "name":
							name = a.Val
						case "value":
							value = a.Val
						}
					}
					if name != "" {
						f.fields.Add(name, value)
					}
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, f)
		}
	}
	walk(doc, nil)
	return out, nil
}

// submit submits f.
func (b *browser) submit(f *form) (*shown, error) {
	var req *http.Request
	var err error
	if f.method == http.MethodPost {
		req, err = http.NewRequest(http.MethodPost, f.action.String(), strings.NewReader(f.fields.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		u := *f.action
		u.RawQuery = f.fields.Encode()
		req, err = http.NewRequest(http.MethodGet, u.String(), nil)
	}
	if err != nil {
		return nil, err
	}
	return b.do(req)
}

// loginForm returns the page's form that the login goes on with: the
// IdP's login form, or a form of the SAML bindings; nil when the page has
// none (the SP's page at the end of the login).
func loginForm(s *shown) (*form, error) {
	fs, err := s.forms()
	if err != nil {
		return nil, err
	}
	for _, f := range fs {
		if f.fields.Has("SAMLResponse") || f.fields.Has("SAMLRequest") {
			return f, nil
		}
	}
	return nil, nil
}

// carryOn goes on from page s until a page with no form of the login:
// signs in at the IdP's login form, submits each auto-posting form, at
// most 6 forms in all. beforeSignIn, if set, runs while the browser shows
// the IdP's login form, before the user submits it.
func (b *browser) carryOn(s *shown, beforeSignIn func()) (*shown, error) {
	for range 6 {
		f, err := loginForm(s)
		if err != nil {
			return s, err
		}
		if f == nil {
			return s, nil
		}
		if f.fields.Has("password") {
			if beforeSignIn != nil {
				beforeSignIn()
				beforeSignIn = nil
			}
			f.fields.Set("user", User)
			f.fields.Set("password", Password)
		} else if f.fields.Has("SAMLResponse") && b.newConnForSP {
			b.tr.CloseIdleConnections()
		}
		if s, err = b.submit(f); err != nil {
			return s, err
		}
	}
	return s, errors.New("still a form to submit after 6")
}

var (
	outcomeRE  = regexp.MustCompile(`data-outcome="([a-z-]+)" data-instance="([^"]*)" data-finished-by="([^"]*)"`)
	errorRE    = regexp.MustCompile(`(?s)<pre id="error">(.*?)</pre>`)
	acsCookies = regexp.MustCompile(`<code id="acs-cookies">([^<]*)</code>`)
	beganOnRE  = regexp.MustCompile(`<strong id="began-on">([^<]*)</strong>`)
)

// result is how one login ended.
type result struct {
	outcome  string // logged-in or failed, as the SP's page says
	started  string // the instance that began the login
	beganOn  string // the instance that began it, as the SP's error page says
	finished string // the instance that finished it (logged in)
	shownBy  string // the instance that showed the last page
	reason   string // the library's reason, when the login failed
	moved    bool   // the SP began the login again after latch moved it
	cookies  string // the cookies the IdP's POST carried, as the page lists them
	hops     []hop
	err      error
}

func (r result) String() string {
	var hs []string
	for _, h := range r.hops {
		hs = append(hs, h.String())
	}
	return fmt.Sprintf("outcome %q, began on %q, finished on %q, reason %q, err %v; hops:\n  %s",
		r.outcome, r.started, r.finished, r.reason, r.err, strings.Join(hs, "\n  "))
}

// errorPage reports whether any response of the login was an error.
func (r result) errorPage() bool {
	for _, h := range r.hops {
		if h.status >= 400 {
			return true
		}
	}
	return false
}

// read fills r from the last page s.
func (r *result) read(b *browser, s *shown, err error) {
	r.hops, r.err = b.hops, err
	if len(b.hops) > 0 {
		r.started = b.hops[0].servedBy
	}
	if s == nil {
		return
	}
	r.shownBy = s.by
	m := outcomeRE.FindStringSubmatch(s.body)
	if m == nil {
		if r.err == nil {
			r.err = fmt.Errorf("the last page (%d, %s) is not the SP's: %.300q", s.status, s.url, s.body)
		}
		return
	}
	r.outcome, r.finished = m[1], m[3]
	if e := errorRE.FindStringSubmatch(s.body); e != nil {
		r.reason = html.UnescapeString(e[1])
	}
	if b := beganOnRE.FindStringSubmatch(s.body); b != nil {
		r.beganOn = b[1]
	}
	if c := acsCookies.FindStringSubmatch(s.body); c != nil {
		r.cookies = c[1]
	}
	r.moved = strings.Contains(s.body, `id="moved"`)
}

// login runs one SP-initiated login in a new browser: open the SP through
// latch, sign in at the IdP, post the IdP's answer back to the SP.
func login(k *Keys, base, proto string, newConnForSP bool) result {
	b := newBrowser(k, proto)
	b.newConnForSP = newConnForSP
	defer b.close()
	var r result
	s, err := b.get(base)
	if err == nil {
		s, err = b.carryOn(s, nil)
	}
	r.read(b, s, err)
	return r
}

func mustParse(t interface{ Fatal(...any) }, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
