// Package demo runs latch in front of three instances of an app that keeps
// its login state in process memory, as the SAML library in latch's story
// does, so that what stickiness fixes can be seen in a browser.
package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/latch-lb/latch/internal/admin"
	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/proxy"
	"github.com/latch-lb/latch/internal/server"
	"github.com/latch-lb/latch/internal/target"
)

// Options configure Run.
type Options struct {
	Addr   string // where latch listens, e.g. 127.0.0.1:8080 (port 0 picks one)
	Sticky bool   // lb_cookie stickiness on the app's target group
	Out    io.Writer
	Log    *slog.Logger
	// Ready, if set, receives latch's URL once everything is serving.
	Ready func(url string)
	// DataPath is latch's data path (event loops by default).
	DataPath server.DataPath
	// Admin, if set, gives the admin listener's options for the demo's
	// server (Address, Token, and whatever it serves besides the API);
	// the demo starts it once latch serves and prints its URL. Nil: no
	// admin listener.
	Admin func(*server.Server) admin.Options
	// Observer sees every request latch serves (metrics); nil: none.
	Observer proxy.Observer
}

// Instances is how many app instances the demo runs.
const Instances = 3

// Run serves the demo until ctx is done.
func Run(ctx context.Context, o Options) error {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	idp, err := serve(http.HandlerFunc(IdentityProvider))
	if err != nil {
		return err
	}
	defer idp.Close()
	idpURL := "http://" + idp.Addr

	var apps []*httpServer
	defer func() {
		for _, a := range apps {
			a.Close()
		}
	}()
	var targets string
	for i := 1; i <= Instances; i++ {
		a, err := serve(NewApp(fmt.Sprintf("app-%d", i), idpURL))
		if err != nil {
			return err
		}
		apps = append(apps, a)
		targets += fmt.Sprintf("      - id: %s\n", a.Addr)
	}

	stateDir, err := os.MkdirTemp("", "latch-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stateDir)
	yaml := fmt.Sprintf(`listeners:
  - name: demo
    address: %s
    default_action:
      type: forward
      forward: { target_group: app }
target_groups:
  - name: app
    targets:
%s    health_check:
      path: /healthz
      interval_seconds: 1
      timeout_seconds: 0.5
      healthy_threshold_count: 2
    attributes:
      stickiness.enabled: "%t"
      stickiness.type: lb_cookie
      stickiness.lb_cookie.duration_seconds: 3600
      deregistration_delay.timeout_seconds: 1
state_dir: %s
`, o.Addr, targets, o.Sticky, stateDir)
	cfg, err := config.Parse([]byte(yaml), "")
	if err != nil {
		return fmt.Errorf("demo config: %w", err)
	}
	b, err := server.New(server.Options{Log: o.Log, DataPath: o.DataPath, Observer: o.Observer})
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b.Shutdown(ctx)
	}()
	// The running config tells where the admin API is, as a file would.
	var ao admin.Options
	cfg.Admin = config.Admin{}
	if o.Admin != nil {
		ao = o.Admin(b)
		cfg.Admin = config.Admin{Enabled: true, Address: ao.Address}
	}
	events := b.Subscribe(64)
	defer events.Close()
	if err := b.Apply(ctx, cfg); err != nil {
		return err
	}

	// Announce the URL once every instance has passed a health check, so
	// that the first logins already spread over all three.
	timeout := time.After(10 * time.Second)
wait:
	for !allHealthy(b) {
		select {
		case <-ctx.Done():
			return nil
		case <-events.C:
		case <-timeout:
			o.Log.Warn("not every app instance is healthy after 10 s; serving anyway")
			break wait
		}
	}
	u := "http://" + b.Addr("demo") + "/"
	var adminLine string
	if o.Admin != nil {
		adm, err := admin.Start(ao)
		if err != nil {
			return err
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			adm.Shutdown(ctx)
		}()
		adminLine = fmt.Sprintf("Admin API: http://%s/api/v1/\n", adm.Addr())
		if ao.Dashboard != nil {
			adminLine = fmt.Sprintf("Dashboard: http://%s/ (the admin API under /api/v1/)\n", adm.Addr())
		}
		if ao.Token != "" {
			adminLine += fmt.Sprintf("Admin token: %s\n  export LATCH_ADMIN=http://%s LATCH_ADMIN_TOKEN=%s\n  latch ctl targets app\n", ao.Token, adm.Addr(), ao.Token)
		}
	}
	fmt.Fprintf(o.Out, "latch demo: %d app instances behind latch, stickiness %s.\n\n%s\n\nOpen %s and log in. Ctrl-C ends the demo.\n%s",
		Instances, map[bool]string{true: "on (lb_cookie)", false: "OFF: watch the logins fail"}[o.Sticky], yaml, u, adminLine)
	if o.Ready != nil {
		o.Ready(u)
	}
	<-ctx.Done()
	return nil
}

func allHealthy(b *server.Server) bool {
	g := b.Snapshot().Group("app")
	if g == nil || len(g.Targets) != Instances {
		return false
	}
	for _, t := range g.Targets {
		if t.State != target.Healthy {
			return false
		}
	}
	return true
}

// httpServer is an http.Server bound to a free loopback port.
type httpServer struct {
	*http.Server
	Addr string
}

func serve(h http.Handler) (*httpServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &httpServer{Server: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, Addr: ln.Addr().String()}
	go s.Serve(ln)
	return s, nil
}

// IdentityProvider plays the IdP: it "authenticates" at once and sends the
// browser back to the app's callback with the request id, as a SAML IdP
// posts its answer back for an AuthnRequest.
func IdentityProvider(w http.ResponseWriter, r *http.Request) {
	back := r.URL.Query().Get("return")
	id := r.URL.Query().Get("request_id")
	if back == "" || id == "" {
		http.Error(w, "fake IdP: missing return or request_id", http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, back+"?id="+url.QueryEscape(id), http.StatusFound)
}

// App is the demo application: one instance keeps its pending logins in
// its own memory.
type App struct {
	name   string
	idpURL string
	mux    *http.ServeMux

	mu      sync.Mutex
	pending map[string]bool
}

// NewApp returns an app instance that sends logins to the IdP at idpURL.
func NewApp(name, idpURL string) *App {
	a := &App{name: name, idpURL: idpURL, pending: map[string]bool{}, mux: http.NewServeMux()}
	a.mux.HandleFunc("GET /{$}", a.home)
	a.mux.HandleFunc("GET /login", a.login)
	a.mux.HandleFunc("GET /callback", a.callback)
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	return a
}

func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Served-By", a.name)
	a.mux.ServeHTTP(w, r)
}

// login starts a flow: it remembers a request id here, in this process
// only, and sends the browser to the IdP.
func (a *App) login(w http.ResponseWriter, r *http.Request) {
	var b [8]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	a.mu.Lock()
	a.pending[id] = true
	a.mu.Unlock()
	back := "http://" + r.Host + "/callback"
	http.Redirect(w, r, a.idpURL+"/authorize?request_id="+id+"&return="+url.QueryEscape(back), http.StatusFound)
}

// callback ends the flow; it works only on the instance that started it.
func (a *App) callback(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	a.mu.Lock()
	ok := a.pending[id]
	delete(a.pending, id)
	a.mu.Unlock()
	d := page{Instance: a.name, ID: id, Moved: r.Header.Get("X-Latch-Session-Moved")}
	if ok {
		d.Result = "Login succeeded: this instance started the login and found request " + id + " in its memory."
		d.OK = true
	} else {
		d.Result = "Login FAILED: " + a.name + " never saw request " + id + "; another instance started this login."
		w.WriteHeader(http.StatusForbidden)
	}
	pageTmpl.Execute(w, d)
}

func (a *App) home(w http.ResponseWriter, r *http.Request) {
	pageTmpl.Execute(w, page{Instance: a.name, Moved: r.Header.Get("X-Latch-Session-Moved")})
}

type page struct {
	Instance, ID, Result, Moved string
	OK                          bool
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>latch demo</title>
<style>body{font:16px system-ui,sans-serif;max-width:40em;margin:3em auto}
.ok{color:#1a7f37}.fail{color:#cf222e}code{background:#eee;padding:0 .2em}</style></head>
<body><h1>latch demo</h1>
<p>This page was served by <strong>{{.Instance}}</strong>.</p>
{{if .Result}}<p class="{{if .OK}}ok{{else}}fail{{end}}">{{.Result}}</p>{{end}}
{{if .Moved}}<p>latch moved this session off <code>{{.Moved}}</code> (<code>X-Latch-Session-Moved</code>).</p>{{end}}
<p><a href="/login">{{if .Result}}Log in again{{else}}Log in{{end}}</a></p>
<p>The login stores a request id in the memory of the instance that served <code>/login</code>, sends you to an
identity provider, and comes back to <code>/callback</code>, which must land on that same instance.</p>
</body></html>
`))
