package dashboard

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/latch-lb/latch/internal/admin"
	"github.com/latch-lb/latch/internal/server"
)

// chromium finds Debian's chromium (which .ci/run installs), or another
// Chrome the machine has.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium binary found (apt-get install chromium; .ci/run installs it): the browser test cannot run")
	return ""
}

// browser is a headless chromium on one page, recording every console
// error, failed load and uncaught exception the page has.
type browser struct {
	ctx context.Context
	mu  sync.Mutex
	bad []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.WindowSize(1400, 1000),
		// Root cannot run chromium in its sandbox (CI runs as root); the
		// page is our own.
		chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{ctx: ctx}
	// Listen starts chromium (the browser lives as long as ctx, which has
	// no timeout for that reason); chromedp enables the Runtime and Log
	// domains whose events this watches.
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				b.record("console." + string(ev.Type) + ": " + strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			b.record(fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber, msg))
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError {
				b.record(fmt.Sprintf("log (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	})
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

func (b *browser) record(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bad = append(b.bad, s)
}

func (b *browser) problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.bad...)
}

// do runs steps on the page, failing t if they do not finish within d.
func (b *browser) do(t *testing.T, d time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v (page problems: %q)", what, err, b.problems())
	}
}

// get runs one action that reads the page, failing t if it does not
// finish within d.
func get[T any](t *testing.T, b *browser, d time.Duration, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v (page problems: %q)", what, err, b.problems())
	}
	return v
}

// row is the CSS selector of a target's row, in the state given ("" for
// any).
func row(id, state string) string {
	s := fmt.Sprintf(`section[data-group="web"] tr[data-target=%q]`, id)
	if state != "" {
		s += fmt.Sprintf(`[data-state=%q]`, state)
	}
	return s
}

// load sends requests to url as users clients, one request every gap in
// turn, at most n, until stop is closed: the traffic the page shows. Even
// clients keep a cookie jar (a sticky session), odd ones none (picked
// afresh each time, by weight).
func load(url string, users, n int, gap time.Duration, stop <-chan struct{}) {
	clients := make([]*http.Client, users)
	for i := range clients {
		clients[i] = &http.Client{Timeout: 2 * time.Second}
		if i%2 == 0 {
			clients[i].Jar, _ = cookiejar.New(nil)
		}
	}
	tick := time.NewTicker(gap)
	defer tick.Stop()
	for i := 0; i < n; i++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		resp, err := clients[i%users].Get(url)
		if err != nil {
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// startLoad runs load until the returned stop is called (or the test
// ends), and stop waits for it.
func startLoad(t *testing.T, url string, users int, gap time.Duration) (stop func()) {
	done := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); load(url, users, 100000, gap, done) }()
	stop = func() { once.Do(func() { close(done) }); wg.Wait() }
	t.Cleanup(stop)
	return stop
}

// TestBrowser opens the dashboard of a real latch in headless chromium:
// the page loads with no console error or exception, shows every target,
// shows a target whose process was killed turn unhealthy with ALB's
// reason, and starts a drain that completes.
func TestBrowser(t *testing.T) {
	b := newBrowser(t)
	procs := []*process{startProcess(t, "app-1"), startProcess(t, "app-2"), startProcess(t, "app-3")}
	var ids []string
	for _, p := range procs {
		ids = append(ids, p.addr)
	}
	totals := startMetrics(t)
	srv := startLatch(t, configYAML(t.TempDir(), fastHealth, ids...), totals.Observer())
	page := startAdmin(t, srv, New(srv, totals, testLogger(t))) + "/"

	stopLoad := startLoad(t, "http://"+srv.Addr("front"), 12, 5*time.Millisecond)

	b.do(t, 20*time.Second, "open the page and see every target healthy", chromedp.Navigate(page),
		chromedp.WaitVisible(row(ids[0], "healthy")), chromedp.WaitVisible(row(ids[1], "healthy")),
		chromedp.WaitVisible(row(ids[2], "healthy")))
	if conn := get(t, b, 5*time.Second, "read the stream's status", chromedp.Text("#conn")); conn != "live" {
		t.Errorf("stream status %q; want live", conn)
	}

	// A target's process killed: its checks fail to connect.
	if err := procs[1].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	b.do(t, 10*time.Second, "see the killed target unhealthy", chromedp.WaitVisible(row(ids[1], "unhealthy")))
	reason := get(t, b, 5*time.Second, "read its reason", chromedp.Text(row(ids[1], "")+" .reason"))
	title := get(t, b, 5*time.Second, "read its description", chromedp.AttributeValue(row(ids[1], "")+" td:nth-child(2)", "title")).Value
	// Whichever saw it first, a health check or a request, the connect
	// was refused.
	if reason != "Target.FailedHealthChecks" || !strings.Contains(title, "connection refused") {
		t.Errorf("killed target: reason %q, description (on hover) %q; want Target.FailedHealthChecks, one that says the connection was refused", reason, title)
	}

	// Nothing is writable without the token.
	b.do(t, 5*time.Second, "see the controls off", chromedp.WaitVisible(row(ids[0], "")+` button.drain-btn[disabled]`))

	// The token, then a drain of the first target from its row, keeping
	// its sessions until none has come for 1 s.
	first := row(ids[0], "")
	get(t, b, 10*time.Second, "see sessions on the first target",
		chromedp.Poll[bool](fmt.Sprintf(`Number(document.querySelector('%s td:nth-child(10)').textContent) > 0`, first)))
	b.do(t, 10*time.Second, "enter the token and drain", chromedp.SendKeys("#token", testToken),
		chromedp.Click("#token-save"), chromedp.WaitEnabled(first+" button.drain-btn"),
		chromedp.SendKeys(first+" input.idle", "1s"),
		chromedp.Click(first+" button.drain-btn"),
		chromedp.WaitVisible(row(ids[0], "draining")+`[data-drain="draining"]`))
	if got := get(t, b, 5*time.Second, "read the notice", chromedp.Text("#notice")); !strings.Contains(got, "drain started") {
		t.Errorf("notice %q; want one that says the drain started", got)
	}
	if got := get(t, b, 5*time.Second, "read the reason", chromedp.Text(first+" .reason")); got != "Latch.Drained" {
		t.Errorf("drained target's reason %q; want Latch.Drained", got)
	}
	// Its users keep coming to it: the drain waits for them.
	if got := get(t, b, 5*time.Second, "read the drain's progress", chromedp.Text(first+" td:nth-child(11)")); !strings.Contains(got, "keep sessions") || !strings.Contains(got, "sessions left") {
		t.Errorf("drain cell %q; want keep sessions, n sessions left", got)
	}
	if got := get(t, b, 5*time.Second, "read the token from sessionStorage",
		chromedp.Evaluate[string](`sessionStorage.getItem('latch-token') + ' ' + document.cookie.length`)); got != testToken+" 0" {
		t.Errorf("sessionStorage token and cookie length: %q; want %q", got, testToken+" 0")
	}
	// The users go: 1 s later the drain is complete.
	stopLoad()
	b.do(t, 10*time.Second, "see the drain complete", chromedp.WaitVisible(row(ids[0], "draining")+`[data-drain="complete"]`))
	if d := srv.Snapshot().Group("web").Targets[0].Drain; d == nil || !d.Complete {
		t.Errorf("latch's own state: drain %+v; want complete", d)
	}
	b.do(t, 10*time.Second, "undrain", chromedp.Click(first+" button.undrain-btn"),
		chromedp.WaitVisible(row(ids[0], "healthy")+`[data-drain=""]`))

	// A weight from the page.
	b.do(t, 10*time.Second, "set a weight", chromedp.SendKeys(row(ids[2], "")+" input.weight", "7"),
		chromedp.Click(row(ids[2], "")+" button.set-weight"))
	get(t, b, 10*time.Second, "see the weight 7 on the page",
		chromedp.Poll[bool](fmt.Sprintf(`document.querySelector('tr[data-target=%q] td:nth-child(3)').textContent === '7'`, ids[2])))

	if p := b.problems(); len(p) > 0 {
		t.Errorf("the page had problems:\n%s", strings.Join(p, "\n"))
	}
}

// TestBrowserScreenshot runs a minute and a quarter of a small story and
// saves the page as a PNG at $LATCH_DASHBOARD_SCREENSHOT (docs/dashboard.png
// is one): steady load over three targets, one's weight raised to 4 from
// the page, another's process killed, the first drained keeping its
// sessions. It runs only when asked.
func TestBrowserScreenshot(t *testing.T) {
	path := os.Getenv("LATCH_DASHBOARD_SCREENSHOT")
	if path == "" {
		t.Skip("set LATCH_DASHBOARD_SCREENSHOT=file.png to take the README's screenshot (75 s)")
	}
	b := newBrowser(t)
	procs := []*process{startProcess(t, "app-1"), startProcess(t, "app-2"), startProcess(t, "app-3")}
	var ids []string
	for _, p := range procs {
		ids = append(ids, p.addr)
	}
	totals := startMetrics(t)
	srv := startLatch(t, configYAML(t.TempDir(), fastHealth, ids...), totals.Observer())
	page := startAdmin(t, srv, New(srv, totals, testLogger(t))) + "/"
	startLoad(t, "http://"+srv.Addr("front"), 40, 5*time.Millisecond)
	b.do(t, 20*time.Second, "open the page", chromedp.Navigate(page), chromedp.WaitVisible(row(ids[2], "healthy")),
		chromedp.SendKeys("#token", testToken), chromedp.Click("#token-save"))
	time.Sleep(20 * time.Second) // the story needs the clock: a chart of minutes
	b.do(t, 10*time.Second, "raise a weight", chromedp.SendKeys(row(ids[2], "")+" input.weight", "4"),
		chromedp.Click(row(ids[2], "")+" button.set-weight"))
	time.Sleep(20 * time.Second)
	procs[1].cmd.Process.Signal(syscall.SIGKILL)
	time.Sleep(15 * time.Second)
	b.do(t, 10*time.Second, "drain", chromedp.Click(row(ids[0], "")+" button.drain-btn"),
		chromedp.WaitVisible(row(ids[0], "draining")))
	time.Sleep(15 * time.Second)
	png := get(t, b, 10*time.Second, "take a screenshot", chromedp.FullScreenshot(100))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if p := b.problems(); len(p) > 0 {
		t.Errorf("the page had problems:\n%s", strings.Join(p, "\n"))
	}
}

// testToken is the admin token of the tests' admin listeners.
const testToken = "s3cret-token-for-tests"

// startAdmin runs latch's admin listener on loopback, with the API, the
// dashboard and its stream, stopped when the test ends, and returns its
// base URL.
func startAdmin(t *testing.T, srv *server.Server, d *Dashboard) string {
	t.Helper()
	adm, err := admin.Start(admin.Options{Server: srv, Address: "127.0.0.1:0", Token: testToken,
		Dashboard: d.Handler(), Stream: d.Stream(), Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A page's stream is open still: Shutdown must end it, not wait.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := adm.Shutdown(ctx); err != nil {
			t.Errorf("admin shutdown: %v", err)
		}
	})
	return "http://" + adm.Addr()
}

// TestBrowserCrossOriginWriteRefused: a page of another site, in the same
// browser, that knows the token still cannot drain a target: its request
// with the token needs a CORS preflight the admin listener never grants,
// and the one a form could send carries its Origin and no token. Neither
// changes latch.
func TestBrowserCrossOriginWriteRefused(t *testing.T) {
	b := newBrowser(t)
	id := startTarget(t, "a")
	srv := startLatch(t, configYAML(t.TempDir(), "", id), nil)
	d := New(srv, nil, testLogger(t))
	adm, err := admin.New(admin.Options{Server: srv, Address: "127.0.0.1:0", Token: testToken,
		Dashboard: d.Handler(), Stream: d.Stream(), Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	// The admin API behind a recorder of what reached it.
	type seen struct {
		method, origin string
		status         int
	}
	var mu sync.Mutex
	var got []seen
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusWriter{ResponseWriter: w, status: 200}
		adm.Handler().ServeHTTP(rec, r)
		mu.Lock()
		got = append(got, seen{r.Method, r.Header.Get("Origin"), rec.status})
		mu.Unlock()
	}))
	t.Cleanup(api.Close)
	drain := api.URL + "/api/v1/target-groups/web/targets/" + url.PathEscape(id) + "/drain"

	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><title>evil</title><script>
window.results = [];
const u = %q;
fetch(u, {method: 'POST', mode: 'no-cors', headers: {'Content-Type': 'text/plain'}, body: '{"mode":"immediate"}'})
  .then(r => results.push('simple: ' + r.type), e => results.push('simple: ' + e));
fetch(u, {method: 'POST', headers: {'Authorization': 'Bearer %s', 'Content-Type': 'application/json'}, body: '{"mode":"immediate"}'})
  .then(r => results.push('token: ' + r.status), e => results.push('token: blocked'));
</script>`, drain, testToken)
	}))
	t.Cleanup(evil.Close)

	b.do(t, 10*time.Second, "open the other site's page", chromedp.Navigate(evil.URL))
	results := get(t, b, 10*time.Second, "wait for both requests to settle",
		chromedp.Poll[[]string](`window.results.length === 2 ? window.results : null`))
	if !slices.Contains(results, "token: blocked") {
		t.Errorf("the page's request with the token: %q; want it blocked by the browser", results)
	}
	if ts := srv.Snapshot().Group("web").Targets[0]; ts.Drained {
		t.Fatalf("target %s drained by another site's page", id)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("reached the API: %+v; the page saw %q", got, results)
	refused := false
	for _, s := range got {
		if s.method == http.MethodPost && s.status < 400 {
			t.Errorf("a POST from %q reached the API and got %d; want it refused", s.origin, s.status)
		}
		if s.method == http.MethodPost && s.origin == evil.URL {
			refused = s.status == http.StatusForbidden
		}
	}
	if !refused {
		t.Errorf("requests that reached the API: %+v; want the page's simple POST refused with 403 for its Origin", got)
	}
}

// statusWriter keeps the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}
