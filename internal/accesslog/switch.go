package accesslog

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/proxy"
)

// Switch is the access log the running config asks for, as one
// proxy.Observer that outlives reloads: latch's server takes its observer
// once, at start, while access_log may change on every SIGHUP. Apply opens
// the log a config describes and swaps it in; the request path reads the
// current one with an atomic load.
type Switch struct {
	log     *slog.Logger
	cur     atomic.Pointer[Log]
	mu      sync.Mutex // serialises Apply, Reopen and Close
	cfg     *config.AccessLog
	dropped atomic.Uint64 // of the logs switched away from
}

var _ proxy.Observer = (*Switch)(nil)

// NewSwitch returns a Switch with no access log, until Apply.
func NewSwitch(log *slog.Logger) *Switch {
	if log == nil {
		log = slog.Default()
	}
	return &Switch{log: log}
}

// Apply makes the access log what cfg says (nil: none). Unchanged, it
// does nothing. Changed, it opens the new log first, swaps it in, then
// closes the old one, which writes what it had queued: no line is lost
// and none is written twice. If the new log cannot be opened, the old one
// stays and the error is returned (a reload logs it; at start it is
// fatal).
func (s *Switch) Apply(cfg *config.AccessLog) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cfg == nil && s.cfg == nil || cfg != nil && s.cfg != nil && *cfg == *s.cfg {
		return nil
	}
	var next *Log
	if cfg != nil {
		var err error
		if next, err = Open(*cfg, s.log); err != nil {
			return err
		}
	}
	old := s.cur.Swap(next)
	if old != nil {
		s.dropped.Add(old.Dropped())
		old.Close()
	}
	if cfg != nil {
		c := *cfg
		s.cfg = &c
		s.log.Info("access log opened", "path", c.Path, "format", c.Format.String())
	} else {
		s.cfg = nil
		s.log.Info("access log closed")
	}
	return nil
}

// Reopen reopens the current log's file (SIGUSR1, after logrotate
// renamed it).
func (s *Switch) Reopen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.cur.Load(); l != nil {
		return l.Reopen()
	}
	return nil
}

// Close closes the current log, writing what it had queued. Call it once
// the server has shut down.
func (s *Switch) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.cur.Swap(nil); l != nil {
		s.dropped.Add(l.Dropped())
		s.cfg = nil
		return l.Close()
	}
	return nil
}

// Dropped is how many lines every log the Switch has had dropped.
func (s *Switch) Dropped() uint64 {
	n := s.dropped.Load()
	if l := s.cur.Load(); l != nil {
		n += l.Dropped()
	}
	return n
}

func (s *Switch) Begin(*proxy.Record) {}

func (s *Switch) End(r *proxy.Record) {
	if l := s.cur.Load(); l != nil {
		l.add(r)
	}
}

func (s *Switch) Refused(r *proxy.Record) {
	if l := s.cur.Load(); l != nil {
		l.add(r)
	}
}

func (s *Switch) Conn(proxy.ConnEvent) {}
