package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain runs an SP instance instead of the tests when spEnv says so:
// the example starts its SP instances from its own binary, here the test
// binary.
func TestMain(m *testing.M) {
	if env := os.Getenv(spEnv); env != "" {
		os.Exit(runSP(env))
	}
	os.Exit(m.Run())
}

// testKeys are generated once for every example the tests start: RSA key
// generation is the slow part of a start.
var testKeys = sync.OnceValues(NewKeys)

// syncBuffer collects the logs of an example's processes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startExample starts the example as `go run .` does, on ports the system
// picks, with its SP instances run from the test binary. Its logs are
// shown if the test fails.
func startExample(t *testing.T, sticky, appCookie string) *Example {
	t.Helper()
	return startExampleWith(t, Options{Sticky: sticky, AppCookie: appCookie})
}

// startExampleWith starts the example with o, on ports the system picks.
func startExampleWith(t *testing.T, o Options) *Example {
	t.Helper()
	keys, err := testKeys()
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	o.Addr, o.IdPAddr, o.AdminAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	o.Keys, o.Exe, o.Log = keys, os.Args[0], logs
	e, err := Start(ctx, o)
	if err != nil {
		t.Fatalf("start: %v\nlogs:\n%s", err, logs)
	}
	t.Cleanup(func() {
		e.Close()
		if t.Failed() {
			t.Logf("the example's logs:\n%s", logs)
		}
	})
	return e
}

// The library's own message when the IdP's answer reaches an instance that
// did not send the AuthnRequest (crewjam/saml's ServiceProvider.ParseResponse).
const inResponseToError = "`InResponseTo` does not match any of the possible request IDs"

// TestStickiness: README's table. 50 SP-initiated logins through latch,
// each by a new browser, for each kind of stickiness: without, most fail
// with the library's own error; with lb_cookie, and with app_cookie on the
// cookie the SP sets when a login starts, all succeed, spread over the
// three instances; with app_cookie on samlsp's session cookie, set only
// after a login succeeded, they fail as without stickiness (over HTTP/1.1,
// or HTTP/2 once the connection the login began on is gone), unless one
// HTTP/2 connection carries the whole login: latch's first-burst affinity
// then keeps it on one instance.
func TestStickiness(t *testing.T) {
	cases := []struct {
		name, sticky, appCookie, proto string
		newConn                        bool
		succeed                        bool // all succeed; else most fail
		logins                         int
	}{
		{"none", "none", "", "h2", false, false, 50},
		{"lb_cookie", "lb_cookie", "", "h2", false, true, 50},
		{"app_cookie_on_saml_login", "app_cookie", loginCookie, "h2", false, true, 50},
		{"app_cookie_on_token_http1", "app_cookie", "token", "h1", false, false, 50},
		{"app_cookie_on_token_http2_new_connection", "app_cookie", "token", "h2", true, false, 20},
		{"app_cookie_on_token_http2_one_connection", "app_cookie", "token", "h2", false, true, 20},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			logins := c.logins
			e := startExample(t, c.sticky, c.appCookie)
			ok := 0
			finished := map[string]int{}
			reasons := map[string]int{}
			for i := range logins {
				r := login(e.Keys, e.URL, c.proto, c.newConn)
				if r.err != nil {
					t.Fatalf("login %d: %v", i, r)
				}
				switch r.outcome {
				case "logged-in":
					ok++
					finished[r.finished]++
					if r.finished != r.started {
						t.Errorf("login %d finished on %s, began on %s: %v", i, r.finished, r.started, r)
					}
				case "failed":
					reasons[r.reason]++
					if !strings.Contains(r.reason, inResponseToError) {
						t.Errorf("login %d failed, but not with the library's InResponseTo error: %v", i, r)
					}
					if r.finished != "" || r.shownBy == r.started || r.beganOn != r.started {
						t.Errorf("login %d: the failure page, shown by %s, says the login began on %q: %v", i, r.shownBy, r.beganOn, r)
					}
				default:
					t.Fatalf("login %d: %v", i, r)
				}
			}
			t.Logf("%s over %s: %d of %d logins succeeded; finished on %v; failures: %v", c.name, c.proto, ok, logins, finished, reasons)
			if c.succeed {
				if ok != logins {
					t.Errorf("%d of %d logins succeeded; want all", ok, logins)
				}
				for _, p := range e.SPs {
					if finished[p.Name] < logins/5 {
						t.Errorf("%s finished %d of the logins; want them spread over the three instances (a fifth each at least): %v", p.Name, finished[p.Name], finished)
					}
				}
			} else if ok > logins/2 {
				t.Errorf("%d of %d logins succeeded; want most to fail", ok, logins)
			}
		})
	}
}

// TestKilledSPWhileIdPAnswersAtOnce: the user already has a session at
// the IdP, which answers the AuthnRequest at once; the SP instance that
// sent it is killed (SIGKILL) between its answer and the IdP's POST. latch
// does not send the POST onto its dead pooled connection (no 502): it
// finds the instance refusing connections and moves the session, with
// X-Latch-Session-Moved, to another, which begins the login again. The
// user ends logged in there without an error page. Once per instance.
func TestKilledSPWhileIdPAnswersAtOnce(t *testing.T) {
	t.Parallel()
	e := startExample(t, "lb_cookie", "")
	for try := range Instances {
		b := newBrowser(e.Keys, "h2")
		// A session at the IdP first, as from a login to another app.
		s, err := b.submit(&form{action: mustParse(t, e.IdPURL+"login"), method: "POST",
			fields: map[string][]string{"user": {User}, "password": {Password}}})
		if err != nil || s.status != 200 {
			t.Fatalf("try %d: sign in at the IdP: %v, %+v", try, err, s)
		}
		b.hops = nil
		resp, err := b.start(e.URL)
		if err != nil || resp.StatusCode != 302 {
			t.Fatalf("try %d: the SP's answer that begins the login: %v %v", try, resp, err)
		}
		holder := e.instance(resp.Header.Get("X-Served-By"))
		if holder == nil {
			t.Fatalf("try %d: no instance %q", try, resp.Header.Get("X-Served-By"))
		}
		holder.Kill()
		s, err = b.get(resp.Header.Get("Location"))
		if err == nil {
			s, err = b.carryOn(s, nil)
		}
		var r result
		r.read(b, s, err)
		b.close()
		checkMovedLogin(t, fmt.Sprintf("try %d", try), r, holder)
		restart(t, e, holder)
	}
}

// TestKilledSPBeforeIdPAnswers: the SP instance that sent the
// AuthnRequest is killed while the user is at the IdP's login form. The
// IdP's answer goes to another instance with X-Latch-Session-Moved, which
// begins the login again; the IdP, where the user has just signed in,
// answers at once, and the user ends logged in without an error page.
func TestKilledSPBeforeIdPAnswers(t *testing.T) {
	t.Parallel()
	e := startExample(t, "lb_cookie", "")
	for try := range Instances {
		b := newBrowser(e.Keys, "h2")
		var holder *SPProcess
		s, err := b.get(e.URL)
		if err == nil {
			s, err = b.carryOn(s, func() {
				holder = e.instance(b.hops[0].servedBy)
				if holder != nil {
					holder.Kill()
				}
			})
		}
		var r result
		r.read(b, s, err)
		b.close()
		if holder == nil {
			t.Fatalf("try %d: the login never reached the IdP's form, or began on no instance: %v", try, r)
		}
		checkMovedLogin(t, fmt.Sprintf("try %d", try), r, holder)
		restart(t, e, holder)
	}
}

// checkMovedLogin checks a login whose instance was killed: logged in on
// another, begun again there, and no error page on the way.
func checkMovedLogin(t *testing.T, what string, r result, killed *SPProcess) {
	t.Helper()
	if r.err != nil || r.outcome != "logged-in" {
		t.Fatalf("%s: %s killed; want logged in on another instance: %v", what, killed.Name, r)
	}
	if r.started != killed.Name || r.finished == killed.Name || !r.moved {
		t.Errorf("%s: %s killed; want the login begun again on another instance: %v", what, killed.Name, r)
	}
	if r.errorPage() {
		t.Errorf("%s: an error page on the way: %v", what, r)
	}
	t.Logf("%s: began on %s, killed; logged in on %s after %d responses", what, killed.Name, r.finished, len(r.hops))
}

// restart starts a killed instance again and waits until latch finds it
// healthy.
func restart(t *testing.T, e *Example, p *SPProcess) {
	t.Helper()
	events := e.Latch.Subscribe(64)
	defer events.Close()
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.waitHealthy(ctx, events, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

// loginLoad is browsers logging in without pause through the example,
// each user taking typing at the IdP's login form, until stopped (at
// most 2,000 logins, 60 s). It knows which instance each login in flight
// began on.
type loginLoad struct {
	mu       sync.Mutex
	results  []result
	inFlight map[string]int // logins at the IdP's form, by the instance that began them
	changed  chan struct{}  // a login reached the form
	stop     chan struct{}
	wg       sync.WaitGroup
}

func startLogins(e *Example, browsers int, typing time.Duration) *loginLoad {
	l := &loginLoad{inFlight: map[string]int{}, changed: make(chan struct{}, 1), stop: make(chan struct{})}
	deadline := time.Now().Add(60 * time.Second)
	for range browsers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for time.Now().Before(deadline) {
				select {
				case <-l.stop:
					return
				default:
				}
				b := newBrowser(e.Keys, "h2")
				var began string
				s, err := b.get(e.URL)
				if err == nil {
					s, err = b.carryOn(s, func() {
						began = b.hops[0].servedBy
						l.mu.Lock()
						l.inFlight[began]++
						l.mu.Unlock()
						select {
						case l.changed <- struct{}{}:
						default:
						}
						// The user types: a drain finds logins half done.
						time.Sleep(typing)
					})
				}
				var r result
				r.read(b, s, err)
				b.close()
				l.mu.Lock()
				if began != "" {
					l.inFlight[began]--
				}
				l.results = append(l.results, r)
				n := len(l.results)
				l.mu.Unlock()
				if n >= 2000 {
					return
				}
			}
		}()
	}
	return l
}

// waitInFlight waits until a login that began on p is at the IdP's form,
// and returns how many are; 0 after 10 s.
func (l *loginLoad) waitInFlight(p *SPProcess) int {
	timeout := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		n := l.inFlight[p.Name]
		l.mu.Unlock()
		if n > 0 {
			return n
		}
		select {
		case <-l.changed:
		case <-timeout:
			return 0
		}
	}
}

// end stops the logins and returns how each ended.
func (l *loginLoad) end() []result {
	close(l.stop)
	l.wg.Wait()
	return l.results
}

// TestRollingRestartLosesNoLogin: README "Session-aware drain". Browsers
// log in without pause, each user taking 300 ms at the IdP's login form,
// while every SP instance in turn, once a login it began is at the IdP,
// is drained with keep_sessions (`latch ctl drain -wait`), stopped with
// SIGTERM, started again and undrained. Every login succeeds on the
// instance that began it: none failed, none needed beginning again. It
// does not run in parallel with other tests: the drain's 1 s idle window
// must outlast a login's steps after the user's 300 ms of typing.
func TestRollingRestartLosesNoLogin(t *testing.T) {
	e := startExample(t, "lb_cookie", "")
	l := startLogins(e, 4, 300*time.Millisecond)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	inFlight := map[string]int{}
	err := e.RollingRestart(ctx, &out, time.Second, func(p *SPProcess) {
		inFlight[p.Name] = l.waitInFlight(p)
	})
	results := l.end()
	if err != nil {
		t.Fatalf("rolling restart: %v\n%s", err, out.String())
	}
	t.Logf("the rolling restart:\n%s", out.String())

	finished := map[string]int{}
	for i, r := range results {
		if r.err != nil || r.outcome != "logged-in" || r.moved || r.finished != r.started || r.errorPage() {
			t.Errorf("login %d of %d: %v", i, len(results), r)
		}
		finished[r.finished]++
	}
	t.Logf("%d logins during the rolling restart, none lost; logins in flight on each instance when its drain began: %v; finished on %v",
		len(results), inFlight, finished)
	for _, p := range e.SPs {
		if inFlight[p.Name] == 0 {
			t.Errorf("no login began on %s was in flight when its drain began (within 10 s)", p.Name)
		}
		if finished[p.Name] == 0 {
			t.Errorf("no login finished on %s: %v", p.Name, finished)
		}
		if p.Pid() == 0 {
			t.Errorf("%s is not running after the rolling restart", p.Name)
		}
	}
}

// TestImmediateDrainBeginsLoginsAgain: the same drain with -mode immediate
// (ALB's deregistration) moves the sessions of the logins in flight at
// once, and their AuthnRequests stay behind; the SP's code for
// X-Latch-Session-Moved begins them again on another instance, and they
// end logged in there, without an error page.
func TestImmediateDrainBeginsLoginsAgain(t *testing.T) {
	t.Parallel()
	e := startExample(t, "lb_cookie", "")
	l := startLogins(e, 4, 300*time.Millisecond)
	p := e.SPs[0]
	n := l.waitInFlight(p)
	var out bytes.Buffer
	code := e.Ctl(context.Background(), &out, "drain", Group, p.Addr, "-mode", "immediate")
	results := l.end()
	if n == 0 || code != 0 {
		t.Fatalf("%d logins in flight on %s; drain -mode immediate: exit %d: %s", n, p.Name, code, out.String())
	}
	moved := 0
	for i, r := range results {
		if r.err != nil || r.outcome != "logged-in" || r.errorPage() {
			t.Errorf("login %d of %d: %v", i, len(results), r)
		}
		if r.moved {
			moved++
			if r.started != p.Name || r.finished == p.Name {
				t.Errorf("login %d began again, but not off %s: %v", i, p.Name, r)
			}
		}
	}
	t.Logf("%d logins, %d in flight on %s when it was drained with -mode immediate; %d began again on another instance, none lost",
		len(results), n, p.Name, moved)
	if moved == 0 {
		t.Errorf("no login began again after the immediate drain of %s", p.Name)
	}
}
