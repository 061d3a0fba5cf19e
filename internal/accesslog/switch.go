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
	log *slog.Logger
	cur atomic.Pointer[Log]
	mu  sync.Mutex // serialises Apply, Reopen and Close
	cfg *config.AccessLog
	// countMu keeps what Dropped adds up consistent while a log is
	// switched away from: dropped counts the logs closed, closing is the
	// one being closed (its count grows until its Close returns). It is
	// never held across a Close, which may wait on a slow disk.
	countMu sync.Mutex
	dropped uint64
	closing *Log
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
	s.retire(next)
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
	s.cfg = nil
	return s.retire(nil)
}

// retire swaps next in and closes the log it replaces, counting what that
// log dropped, those lines its Close drops included. s.mu is held.
func (s *Switch) retire(next *Log) error {
	s.countMu.Lock()
	old := s.cur.Swap(next)
	s.closing = old
	s.countMu.Unlock()
	if old == nil {
		return nil
	}
	err := old.Close()
	s.countMu.Lock()
	s.dropped += old.Dropped()
	s.closing = nil
	s.countMu.Unlock()
	return err
}

// Dropped is how many lines every log the Switch has had dropped. It
// never goes down, a switch of logs included: it is a metric's counter.
func (s *Switch) Dropped() uint64 {
	s.countMu.Lock()
	defer s.countMu.Unlock()
	n := s.dropped
	if s.closing != nil {
		n += s.closing.Dropped()
	}
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
