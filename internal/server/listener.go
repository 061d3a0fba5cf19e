package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/h2"
	"github.com/latch-lb/latch/internal/proxy"
	"github.com/latch-lb/latch/internal/tlsconf"
)

// listener owns one bound socket; its accept loop hands each connection to
// the listener's proxy.Handler, which reads its settings from the current
// route, so a reload changes them without touching the socket. On HTTPS
// the loop wraps each connection with TLS, and the connection's own
// goroutine (the handler's) runs the handshake.
type listener struct {
	// h2 counts what the HTTP/2 engine answered on the listener's
	// connections, across the handlers changes replace.
	h2      h2.Counters
	cfg     config.Listener
	ln      net.Listener
	port    string
	log     *slog.Logger
	serving atomic.Pointer[serving] // what new connections get; set by update
	done    chan struct{}           // closed when the accept loop ends
}

// serving is a listener's handler for new connections and, on HTTPS, the
// TLS configuration that wraps them.
type serving struct {
	proto   string // "http" or "https"
	handler *proxy.Handler
	tls     *tlsconf.Server // nil on HTTP
}

// newListener binds lc's address. It serves nothing until update.
//
// Client connections get no TCP keepalive (Go's listeners turn it on,
// four setsockopt calls a connection): the listener's idle timeout closes
// an idle one, as HAProxy's and nginx's listeners leave it off unless
// asked.
func newListener(lc config.Listener, log *slog.Logger) (*listener, error) {
	ln, err := (&net.ListenConfig{KeepAlive: -1}).Listen(context.Background(), "tcp", lc.Address)
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return &listener{cfg: lc, ln: ln, port: port, log: log.With("listener", lc.Name), done: make(chan struct{})}, nil
}

// tlsSettings reads an HTTPS listener's certificates from disk (again: a
// reload serves renewed files) and resolves its policy; nil on HTTP.
func tlsSettings(lc config.Listener) (*tlsconf.Settings, error) {
	if lc.Protocol != config.HTTPS {
		return nil, nil
	}
	policy := lc.SSLPolicy
	if policy == "" {
		policy = tlsconf.DefaultPolicy
	}
	pol, err := tlsconf.LookupPolicy(policy)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var certs []*tls.Certificate
	for _, c := range lc.Certificates {
		cert, err := tlsconf.LoadCertificate(c.CertFile, c.KeyFile, now)
		if err != nil {
			return nil, fmt.Errorf("certificate %s: %w", c.CertFile, err)
		}
		certs = append(certs, cert)
	}
	store, err := tlsconf.NewStore(certs)
	if err != nil {
		return nil, err
	}
	return &tlsconf.Settings{Certificates: store, Policy: pol, HTTP2: lc.HTTP2}, nil
}

// update applies lc, with its TLS settings (nil on HTTP) and route, to the
// connections and requests that follow; established TLS connections keep
// their certificates. A change of protocol keeps the socket and starts a
// new handler; update returns the one it replaced, for the caller to
// retire, or nil.
func (l *listener) update(lc config.Listener, ts *tlsconf.Settings, rt *proxy.Route, o proxy.Options) (replaced *proxy.Handler) {
	l.cfg = lc
	proto := strings.ToLower(lc.Protocol.String())
	cur := l.serving.Load()
	if cur != nil && cur.proto == proto {
		cur.handler.SetRoute(rt)
		if ts != nil {
			cur.tls.Update(*ts)
		}
		return nil
	}
	o.Proto, o.Port = proto, l.port
	s := &serving{proto: proto, handler: proxy.NewHandler(o)}
	s.handler.SetRoute(rt)
	if ts != nil {
		s.tls = tlsconf.NewServer(*ts)
	}
	l.serving.Store(s)
	if cur == nil {
		return nil
	}
	l.log.Info("protocol changed; the old handler finishes its connections", "protocol", lc.Protocol)
	return cur.handler
}

// handler is the handler of new connections.
func (l *listener) handler() *proxy.Handler { return l.serving.Load().handler }

// Addr is the bound address.
func (l *listener) Addr() string { return l.ln.Addr().String() }

// start begins accepting connections.
func (l *listener) start() { go l.accept() }

func (l *listener) accept() {
	defer close(l.done)
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				// Any error but a closed listener (out of file descriptors,
				// an aborted connection and the like): wait, do not spin.
				l.log.Warn("accept failed; retrying", "err", err)
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return
		}
		s := l.serving.Load()
		if s.tls != nil {
			// No I/O here: the handshake runs in the connection's goroutine,
			// so a client that stalls it holds up no one else.
			s.handler.ServeTLS(c, s.tls.Config())
			continue
		}
		s.handler.ServeConn(c)
	}
}

// close stops accepting and shuts the listener's connections down
// gracefully, until ctx is done.
func (l *listener) close(ctx context.Context) error {
	l.ln.Close()
	<-l.done
	return l.handler().Shutdown(ctx)
}
