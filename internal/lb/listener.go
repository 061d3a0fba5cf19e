package lb

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/proxy"
)

// listener owns one bound socket; its accept loop hands each connection to
// the listener's proxy.Handler, which reads its settings from the current
// route, so a reload changes them without touching the socket.
type listener struct {
	cfg     config.Listener
	ln      net.Listener
	handler *proxy.Handler
	log     *slog.Logger
	done    chan struct{} // closed when the accept loop ends
}

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

// start begins accepting connections.
func (l *listener) start() { go l.accept() }

func (l *listener) accept() {
	defer close(l.done)
	for {
		c, err := l.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: wait, do not spin.
				l.log.Warn("accept failed; retrying", "err", err)
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return
		}
		l.handler.ServeConn(c)
	}
}

// isTemporary reports accept errors that pass (EMFILE, ENFILE, ECONNABORTED).
func isTemporary(err error) bool {
	return !errors.Is(err, net.ErrClosed)
}

// close stops accepting and shuts the listener's connections down
// gracefully, until ctx is done.
func (l *listener) close(ctx context.Context) error {
	l.ln.Close()
	<-l.done
	return l.handler.Shutdown(ctx)
}
