package main

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"html/template"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"
)

// spEnv, when set ("NAME DIR"), makes the process one SP instance instead
// of the example (or the test binary): the example starts each instance
// as a process of its own, so that killing one is a real SIGKILL.
const spEnv = "LATCH_SAML_EXAMPLE_SP"

// spSpec is what every SP instance reads from spec.json in its directory;
// sp.key, sp.crt and idp-metadata.xml lie beside it.
type spSpec struct {
	URL       string            `json:"url"`       // the SP's public URL: latch's listener
	Instances map[string]string `json:"instances"` // every instance's name and address
}

// newSPMiddleware is samlsp's middleware for the SP at u, with the same
// options for its instances and for the metadata the IdP trusts.
func newSPMiddleware(u *url.URL, key *rsa.PrivateKey, cert *x509.Certificate, idp *saml.EntityDescriptor) (*samlsp.Middleware, error) {
	return samlsp.New(samlsp.Options{URL: *u, Key: key, Certificate: cert, IDPMetadata: idp})
}

// sp is one SP instance: samlsp's middleware with the AuthnRequests in
// this process's memory.
type sp struct {
	name      string
	m         *samlsp.Middleware
	tracker   *memTracker
	instances map[string]string // address -> name, for the page
}

func newSP(name string, spec spSpec, key *rsa.PrivateKey, cert *x509.Certificate, idp *saml.EntityDescriptor) (http.Handler, error) {
	u, err := url.Parse(spec.URL)
	if err != nil {
		return nil, fmt.Errorf("spec.json: url: %w", err)
	}
	m, err := newSPMiddleware(u, key, cert, idp)
	if err != nil {
		return nil, err
	}
	s := &sp{name: name, m: m, tracker: newMemTracker(name), instances: map[string]string{}}
	for n, a := range spec.Instances {
		s.instances[a] = n
	}
	m.RequestTracker = s.tracker
	m.OnError = s.loginFailed
	m.Session = finishing{CookieSessionProvider: m.Session.(samlsp.CookieSessionProvider), name: name}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("POST /saml/acs", s.acs)
	mux.Handle("/saml/", m)
	mux.HandleFunc("POST /logout", s.logout)
	mux.Handle("GET /{$}", m.RequireAccount(http.HandlerFunc(s.home)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", name)
		mux.ServeHTTP(w, r)
	}), nil
}

// acs takes the IdP's answer (the browser's POST of the IdP's form).
//
// The AuthnRequest it answers lives in the memory of the instance that
// began the login. When latch had to move this browser's session off that
// instance (it died, or a drain ended), it says so in
// X-Latch-Session-Moved, and the request is gone: instead of an error
// page, this instance begins the login again. The IdP, where the user has
// just signed in, answers the new request at once.
func (s *sp) acs(w http.ResponseWriter, r *http.Request) {
	if moved := r.Header.Get("X-Latch-Session-Moved"); moved != "" && !s.tracker.has(r.PostFormValue("RelayState")) {
		log.Printf("latch moved this login off %s: beginning it again", moved)
		http.Redirect(w, r, "/?moved_from="+url.QueryEscape(moved), http.StatusSeeOther)
		return
	}
	s.m.ServeHTTP(w, r)
}

// loginFailed is samlsp's OnError: the page shows the library's own
// (private) reason, which a real SP would only log, because showing it is
// the point of the example.
func (s *sp) loginFailed(w http.ResponseWriter, r *http.Request, err error) {
	reason := err.Error()
	var ire *saml.InvalidResponseError
	if errors.As(err, &ire) && ire.PrivateErr != nil {
		reason = ire.PrivateErr.Error()
	}
	log.Printf("login failed: %s", reason)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusForbidden)
	s.render(w, r, page{Outcome: "failed", Error: reason, BeganOn: beganOn(r)})
}

func (s *sp) home(w http.ResponseWriter, r *http.Request) {
	p := page{Outcome: "logged-in"}
	if sess, ok := samlsp.SessionFromContext(r.Context()).(samlsp.JWTSessionClaims); ok {
		p.User = sess.Subject
		p.FinishedBy = sess.Attributes.Get(attrFinishedBy)
		p.ACSCookies = sess.Attributes[attrACSCookies]
	}
	if from := r.URL.Query().Get("moved_from"); from != "" {
		p.MovedFrom = s.label(from)
	}
	s.render(w, r, p)
}

func (s *sp) logout(w http.ResponseWriter, r *http.Request) {
	if err := s.m.Session.DeleteSession(w, r); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// label names an instance by its address, as latch names a target.
func (s *sp) label(addr string) string {
	if n, ok := s.instances[addr]; ok {
		return n + " (" + addr + ")"
	}
	return addr
}

func (s *sp) render(w http.ResponseWriter, r *http.Request, p page) {
	p.Instance = s.name
	p.MovedNow = r.Header.Get("X-Latch-Session-Moved")
	if p.MovedNow != "" {
		p.MovedNow = s.label(p.MovedNow)
	}
	w.Header().Set("Cache-Control", "no-store")
	if err := pageTmpl.Execute(w, p); err != nil {
		log.Printf("page: %v", err)
	}
}

// The attributes the SP adds to its session: which instance finished the
// login, and which cookies the IdP's POST carried to it.
const (
	attrFinishedBy = "latch_example_finished_by"
	attrACSCookies = "latch_example_acs_cookies"
)

// finishing is samlsp's cookie session provider, whose sessions also say
// which instance finished the login and which cookies reached it with the
// IdP's POST, for the page to show.
type finishing struct {
	samlsp.CookieSessionProvider
	name string
}

func (f finishing) CreateSession(w http.ResponseWriter, r *http.Request, a *saml.Assertion) error {
	var names []string
	for _, c := range r.Cookies() {
		names = append(names, c.Name)
	}
	slices.Sort(names)
	p := f.CookieSessionProvider
	p.Codec = withAttributes{SessionCodec: p.Codec, add: map[string][]string{
		attrFinishedBy: {f.name}, attrACSCookies: slices.Compact(names)}}
	return p.CreateSession(w, r, a)
}

type withAttributes struct {
	samlsp.SessionCodec
	add map[string][]string
}

func (c withAttributes) New(a *saml.Assertion) (samlsp.Session, error) {
	s, err := c.SessionCodec.New(a)
	if err != nil {
		return nil, err
	}
	claims, ok := s.(samlsp.JWTSessionClaims)
	if !ok {
		return s, nil
	}
	if claims.Attributes == nil {
		claims.Attributes = samlsp.Attributes{}
	}
	for k, v := range c.add {
		claims.Attributes[k] = v
	}
	return claims, nil
}

type page struct {
	Instance   string   // the instance that served this page
	Outcome    string   // logged-in, failed
	User       string   // the NameID
	FinishedBy string   // the instance that finished the login
	ACSCookies []string // the cookies the IdP's POST carried
	MovedFrom  string   // the login began on this instance, which latch moved it off
	MovedNow   string   // latch moved this very request (X-Latch-Session-Moved)
	Error      string   // the library's reason for a failed login
	BeganOn    string   // the instance that began the failed login, as its cookie says
}

// Sent reports whether the IdP's POST carried the cookie name.
func (p page) Sent(name string) bool { return slices.Contains(p.ACSCookies, name) }

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{"join": strings.Join}).Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>latch SAML example</title>
<style>body{font:16px system-ui,sans-serif;max-width:46em;margin:3em auto;line-height:1.4}
.ok{color:#1a7f37}.fail{color:#cf222e}code{background:#eee;padding:0 .2em}</style></head>
<body data-outcome="{{.Outcome}}" data-instance="{{.Instance}}" data-finished-by="{{.FinishedBy}}">
<h1>latch SAML example</h1>
<p>This page was served by <strong>{{.Instance}}</strong>.</p>
{{if eq .Outcome "logged-in"}}
<p class="ok" id="result">Logged in as <strong>{{.User}}</strong>. The login finished on <strong>{{.FinishedBy}}</strong>,
the instance whose memory held its AuthnRequest.</p>
<p>The IdP's POST to <code>/saml/acs</code> carried the cookies: <code id="acs-cookies">{{join .ACSCookies ", "}}</code>.
{{if and (.Sent "AWSALBCORS") (not (.Sent "AWSALB"))}}Only <code>AWSALBCORS</code> of latch's two: the POST comes from
another site, and a browser sends such a request only the cookies marked <code>SameSite=None; Secure</code>.{{end}}</p>
{{if .MovedFrom}}<p id="moved">The login began on {{.MovedFrom}}, and latch had to move it off that instance
(<code>X-Latch-Session-Moved</code>): {{.FinishedBy}} began it again with the IdP instead of showing an error.</p>{{end}}
{{else}}
<p class="fail" id="result">Login FAILED on <strong>{{.Instance}}</strong>. crewjam/saml says:</p>
<pre id="error">{{.Error}}</pre>
<p>This instance never sent the AuthnRequest the IdP answered: {{if .BeganOn}}<strong id="began-on">{{.BeganOn}}</strong>
did{{else}}another instance did{{end}}, and the request lives in that instance's memory.</p>
{{end}}
{{if .MovedNow}}<p>latch moved this request's session off {{.MovedNow}} (<code>X-Latch-Session-Moved</code>).</p>{{end}}
<form method="post" action="/logout"><button id="again">Log in again</button></form>
</body></html>
`))

// runSP serves one SP instance as spEnv says, until SIGTERM; it then
// finishes the requests it has and returns 0.
func runSP(env string) int {
	f := strings.Fields(env)
	if len(f) != 2 {
		fmt.Fprintf(os.Stderr, "%s: want \"NAME DIR\", got %q\n", spEnv, env)
		return 2
	}
	name, dir := f[0], f[1]
	log.SetFlags(0)
	log.SetPrefix(name + ": ")
	if err := serveSP(name, dir); err != nil {
		log.Print(err)
		return 1
	}
	return 0
}

func serveSP(name, dir string) error {
	var spec spSpec
	b, err := os.ReadFile(filepath.Join(dir, "spec.json"))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, "spec.json"), err)
	}
	addr, ok := spec.Instances[name]
	if !ok {
		return fmt.Errorf("%s: no instance %q", filepath.Join(dir, "spec.json"), name)
	}
	key, cert, err := readSPKey(dir)
	if err != nil {
		return err
	}
	mb, err := os.ReadFile(filepath.Join(dir, "idp-metadata.xml"))
	if err != nil {
		return err
	}
	var idp saml.EntityDescriptor
	if err := xml.Unmarshal(mb, &idp); err != nil {
		return fmt.Errorf("idp-metadata.xml: %w", err)
	}
	h, err := newSP(name, spec, key, cert, &idp)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	// The parent waits for this line: the instance serves from now.
	fmt.Println("SERVING")
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	<-done
	return nil
}
