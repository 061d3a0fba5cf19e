package lb

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/proxy"
)

// listener owns one bound socket. Its accept loop hands connections to the
// current http.Server; a reload that changes server settings starts a new
// server and retires the old one gracefully, without closing the socket.
type listener struct {
	cfg     config.Listener
	ln      net.Listener
	handler *proxy.Handler
	log     *slog.Logger

	mu      sync.Mutex
	current *server
	old     []*server
	loop    sync.Once
	done    chan struct{} // closed when the accept loop ends
}

// server is one http.Server generation fed by a listener's accept loop.
type server struct {
	srv   *http.Server
	conns chan net.Conn
	quit  chan struct{}
	once  sync.Once
	ended chan struct{}
}

// maxHeaderBytes is ALB's limit on a whole request header (64 KiB).
const maxHeaderBytes = 64 << 10

func newListener(lc config.Listener, log *slog.Logger) (*listener, error) {
	ln, err := net.Listen("tcp", lc.Address)
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	l := &listener{cfg: lc, ln: ln, log: log.With("listener", lc.Name), done: make(chan struct{})}
	l.handler = proxy.NewHandler(strings.ToLower(lc.Protocol), port, l.log)
	return l, nil
}

// Addr is the bound address.
func (l *listener) Addr() string { return l.ln.Addr().String() }

// start puts a new server, built from lc, in charge of new connections.
func (l *listener) start(lc config.Listener) {
	s := &server{conns: make(chan net.Conn), quit: make(chan struct{}), ended: make(chan struct{})}
	s.srv = &http.Server{
		Handler:           l.handler,
		ReadHeaderTimeout: lc.IdleTimeout,
		IdleTimeout:       lc.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(l.log.Handler(), slog.LevelDebug),
	}
	go func() {
		defer close(s.ended)
		s.srv.Serve(chanListener{s, l.ln.Addr()})
	}()
	l.mu.Lock()
	prev := l.current
	l.current = s
	l.mu.Unlock()
	if prev != nil {
		go prev.shutdown(context.Background())
	}
	l.loop.Do(func() { go l.accept() })
}

func (l *listener) accept() {
	defer close(l.done)
	for {
		c, err := l.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond) // out of file descriptors and the like
				continue
			}
			return
		}
		for {
			l.mu.Lock()
			s := l.current
			l.mu.Unlock()
			select {
			case s.conns <- c:
			case <-s.quit:
				// Retired between the load and the send: hand c to its successor.
				continue
			}
			break
		}
	}
}

// close stops accepting and shuts the current server down gracefully.
func (l *listener) close(ctx context.Context) error {
	l.ln.Close()
	l.mu.Lock()
	s := l.current
	l.mu.Unlock()
	if s == nil {
		return nil
	}
	<-l.done
	return s.shutdown(ctx)
}

// shutdown stops the server taking connections and waits for its requests.
func (s *server) shutdown(ctx context.Context) error {
	s.once.Do(func() { close(s.quit) })
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	<-s.ended
	return err
}

// chanListener is the net.Listener a server sees: connections come from its
// listener's accept loop, and closing it closes nothing but the server's feed.
type chanListener struct {
	s    *server
	addr net.Addr
}

func (c chanListener) Accept() (net.Conn, error) {
	select {
	case conn := <-c.s.conns:
		return conn, nil
	case <-c.s.quit:
		return nil, net.ErrClosed
	}
}

func (c chanListener) Close() error {
	c.s.once.Do(func() { close(c.s.quit) })
	return nil
}

func (c chanListener) Addr() net.Addr { return c.addr }
