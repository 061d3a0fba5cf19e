// Package admin serves latch's admin API: HTTP/JSON under /api/v1/ on a listener of its own.
package admin

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/server"
)

// DefaultMaxBody bounds a request's body when Options.MaxBody is 0: the
// largest legitimate body, a RegisterTargets of a thousand targets, is
// under 64 KiB.
const DefaultMaxBody = 1 << 20

// Options configure the admin listener. Server and Address are required;
// every other field's zero value is documented.
type Options struct {
	// Server is the running latch the API reads and changes; every change
	// goes through its Update.
	Server *server.Server
	// Address is host:port to listen on; port 0 picks a free port (Addr
	// tells which).
	Address string
	// Token is the bearer token. It is required for every write, and for
	// reads too unless Address is loopback and the request's Host names a
	// loopback address or localhost. "": no write is allowed, and
	// Start refuses a non-loopback Address.
	Token string
	// Reload reloads the config file, as SIGHUP does (the same function),
	// for POST /api/v1/reload. Nil: that endpoint answers 501.
	Reload func(context.Context) error
	// Metrics is served at /metrics (reads' rules apply). Nil: 404.
	Metrics http.Handler
	// Dashboard serves every path but /api/... and /metrics, with no
	// token check: a browser cannot send one when it loads a page, so the
	// dashboard must serve its page and assets, and read and write through
	// the API with the token. Nil: JSON 404s.
	Dashboard http.Handler
	// Stream is served at GET /api/v1/stream, under reads' rules: the
	// dashboard's live state (server-sent events). Nil: 404.
	Stream http.Handler
	// Log gets the listener's errors and each change made; never the
	// token. Nil: slog.Default().
	Log *slog.Logger
	// MaxBody bounds a request's body (413 beyond it); 0: DefaultMaxBody.
	MaxBody int64
	// Cluster serves /api/v1/cluster... and the nodes' views of targets
	// in cluster mode; nil: a lone latch (those endpoints answer 404).
	Cluster Cluster
	// Discovery adds each group's DNS discovery status to its views; nil:
	// none shown.
	Discovery Discovery
}

// Admin is a running admin listener.
type Admin struct {
	o        Options
	ln       net.Listener
	srv      *http.Server
	handler  http.Handler
	openRead bool // reads need no token: the address is loopback
	done     chan struct{}
}

// New checks o and returns the admin API's handler without listening:
// Start is New and a listener. It refuses what would leave the API open
// to the network: a non-loopback Address with no Token.
func New(o Options) (*Admin, error) {
	if o.Server == nil {
		return nil, errors.New("admin: no server")
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.MaxBody == 0 {
		o.MaxBody = DefaultMaxBody
	}
	loopback := config.Admin{Address: o.Address}.Loopback()
	if !loopback && o.Token == "" {
		return nil, fmt.Errorf("admin.address %s is not a loopback address and no admin token is set: set admin.token_file or LATCH_ADMIN_TOKEN, or listen on 127.0.0.1", o.Address)
	}
	a := &Admin{o: o, openRead: loopback, done: make(chan struct{})}
	a.handler = a.routes()
	return a, nil
}

// Start listens on o.Address and serves the admin API until Shutdown.
func Start(o Options) (*Admin, error) {
	a, err := New(o)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", o.Address)
	if err != nil {
		return nil, fmt.Errorf("admin.address: %w", err)
	}
	a.ln = ln
	a.srv = &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(a.o.Log.Handler(), slog.LevelWarn),
	}
	go func() {
		defer close(a.done)
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.o.Log.Error("admin listener stopped", "err", err)
		}
	}()
	return a, nil
}

// Addr returns the bound address, which tells the port chosen for port 0
// ("" for an Admin from New).
func (a *Admin) Addr() string {
	if a.ln == nil {
		return ""
	}
	return a.ln.Addr().String()
}

// Handler returns the admin listener's handler: the API, /metrics and the
// dashboard.
func (a *Admin) Handler() http.Handler { return a.handler }

// Shutdown stops listening and waits for the requests being served, until
// ctx ends. It is a no-op for an Admin from New.
func (a *Admin) Shutdown(ctx context.Context) error {
	if a.srv == nil {
		return nil
	}
	err := a.srv.Shutdown(ctx)
	if err != nil {
		a.srv.Close()
	}
	<-a.done
	return err
}

// authorize checks the request's bearer token: writes always need it,
// reads when the listener is not loopback or the request's Host names
// neither a loopback address nor localhost. The token is compared in
// constant time, and neither it nor what the client sent is logged.
func (a *Admin) authorize(r *http.Request, write bool) *apiError {
	if write {
		// A browser sends Origin on a cross-site request; a page of
		// another site has no business writing here even with a token.
		if o := r.Header.Get("Origin"); o != "" {
			if u, err := url.Parse(o); err != nil || u.Host != r.Host {
				return &apiError{status: http.StatusForbidden, msg: fmt.Sprintf("cross-origin write refused: Origin %q is not this admin listener (%s)", o, r.Host)}
			}
		}
	}
	if !write && a.openRead && loopbackHost(r.Host) {
		return nil
	}
	if a.o.Token == "" && !write {
		// Only a loopback listener runs with no token (New).
		return &apiError{status: http.StatusForbidden, msg: fmt.Sprintf("a read for host %q needs the admin token, and none is set: "+
			"name the admin listener by a loopback address or localhost, or set admin.token_file (or LATCH_ADMIN_TOKEN) and restart latch", r.Host)}
	}
	if a.o.Token == "" {
		return &apiError{status: http.StatusForbidden, msg: "writes are off: no admin token is set (set admin.token_file in the config, or LATCH_ADMIN_TOKEN, and restart latch)"}
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		what := "a write"
		switch {
		case write:
		case a.openRead:
			what = fmt.Sprintf("a read for host %q (not a loopback address nor localhost)", r.Host)
		default:
			what = "a read on a non-loopback admin address"
		}
		return &apiError{status: http.StatusUnauthorized, msg: what + " needs the admin token: send Authorization: Bearer <token>"}
	}
	// The scheme's name is case-insensitive (RFC 9110 §11.1).
	scheme, got, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(a.o.Token)) != 1 {
		return &apiError{status: http.StatusUnauthorized, msg: "the Authorization header does not hold the admin token (want Authorization: Bearer <token>)"}
	}
	return nil
}

// loopbackHost reports whether a request's Host names a loopback address
// or localhost. Reads on a loopback listener need no token only then: a
// web page that rebinds its own name to 127.0.0.1 (DNS rebinding) reaches
// the listener from the operator's browser as its own origin, and its
// requests carry its name. A request with no Host (HTTP/1.0) comes from
// no browser.
func loopbackHost(host string) bool {
	if host == "" {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
