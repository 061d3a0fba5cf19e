// Package accesslog writes latch's access log: one line per request, in
// ALB's access-log format or as JSON, through a bounded queue that never
// makes a request wait.
package accesslog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/proxy"
)

// Log is an access log: a proxy.Observer that formats a line at the end of
// every request (and for every request latch refused before it began, as
// ALB logs its 400s), and a goroutine that writes the lines. The request
// path formats into a buffer taken from a fixed set and hands it to the
// writer through a bounded queue: when the writer has fallen behind (a
// slow disk) and no buffer is free, the line is dropped and counted
// (Dropped), never waited for. The writer writes what was queued every
// 10 ms through a bufio.Writer, and flushes it then.
type Log struct {
	format config.AccessLogFormat
	path   string // the file, for Reopen; "" for a writer given to New
	log    *slog.Logger

	free  chan *buffer // buffers to format into
	queue chan *buffer // lines for the writer

	dropped atomic.Uint64
	written atomic.Uint64
	closed  atomic.Bool

	reopen    chan chan error
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	// The writer goroutine's alone (and Close's, once it has exited).
	out    io.Writer
	closer io.Closer // out's file, closed on Reopen and Close; nil for stdout or a caller's writer
	bw     *bufio.Writer
	failed bool // the last write failed: logged once until one succeeds
}

// buffer is one line's bytes. A line that grew past maxKept is not kept
// for the next, so that one huge request does not pin its memory.
type buffer struct{ b []byte }

const (
	// DefaultQueue is how many lines may wait for the writer: 4096
	// buffers of 512 bytes (2 MiB, allocated once), what 400,000
	// requests a second queue between two of the writer's rounds.
	DefaultQueue = 4096
	maxKept      = 16 << 10
	// pollEvery is how often the writer writes what was queued, and
	// flushes: a line is in the file within that of its request's end.
	pollEvery = 10 * time.Millisecond
)

var _ proxy.Observer = (*Log)(nil)

// Options configure a Log made by New.
type Options struct {
	Format config.AccessLogFormat
	// Queue is how many lines may wait for the writer before lines are
	// dropped; 0: DefaultQueue.
	Queue int
	// Log gets the writer's errors; nil: slog.Default().
	Log *slog.Logger
}

// Open opens the access log cfg describes: it appends to cfg.Path
// (created with mode 0640 if need be) or writes to standard output for
// "-".
func Open(cfg config.AccessLog, log *slog.Logger) (*Log, error) {
	o := Options{Format: cfg.Format, Log: log}
	if cfg.Path == config.Stdout {
		return New(os.Stdout, o), nil
	}
	f, err := openFile(cfg.Path)
	if err != nil {
		return nil, err
	}
	l := newLog(f, f, o)
	l.path = cfg.Path
	go l.run()
	return l, nil
}

func openFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("access_log.path: %w", err)
	}
	return f, nil
}

// New returns a Log writing to w, which it does not close. Reopen does
// nothing on it.
func New(w io.Writer, o Options) *Log {
	l := newLog(w, nil, o)
	go l.run()
	return l
}

func newLog(w io.Writer, c io.Closer, o Options) *Log {
	n := o.Queue
	if n <= 0 {
		n = DefaultQueue
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	l := &Log{format: o.Format, log: o.Log, free: make(chan *buffer, n), queue: make(chan *buffer, n),
		reopen: make(chan chan error), stop: make(chan struct{}), done: make(chan struct{}),
		out: w, closer: c, bw: bufio.NewWriterSize(w, 64<<10)}
	for range n {
		l.free <- &buffer{b: make([]byte, 0, 512)}
	}
	return l
}

// Dropped is how many lines were dropped because the writer had fallen
// behind (for the metric latch_access_log_dropped_lines_total).
func (l *Log) Dropped() uint64 { return l.dropped.Load() }

// Written is how many lines the writer has written (to its buffer: a
// line is in the file once flushed).
func (l *Log) Written() uint64 { return l.written.Load() }

// Begin does nothing: a line is written when the request ends.
func (l *Log) Begin(*proxy.Record) {}

// End logs a request that ended.
func (l *Log) End(r *proxy.Record) { l.add(r) }

// Refused logs a request latch refused before it began (malformed, over a
// limit, blocked by desync mitigation, timed out), as ALB logs its own
// 400s and 408s.
func (l *Log) Refused(r *proxy.Record) { l.add(r) }

// Conn does nothing: ALB's access log has no connection lines.
func (l *Log) Conn(proxy.ConnEvent) {}

func (l *Log) add(r *proxy.Record) {
	if l.closed.Load() {
		return
	}
	var buf *buffer
	select {
	case buf = <-l.free:
	default:
		l.dropped.Add(1)
		return
	}
	ln := line{b: buf.b[:0], json: l.format == config.AccessLogJSON}
	appendRecord(&ln, r, r.Listener)
	buf.b = ln.b
	// Never blocks: the queue has room for every buffer there is.
	l.queue <- buf
}

// Reopen closes the file and opens its path again, for logrotate: after
// a rename, lines go to a new file at the old name (on SIGUSR1). What was
// queued before goes to the old file. It does nothing on standard output
// or a writer given to New.
func (l *Log) Reopen() error {
	if l.path == "" {
		return nil
	}
	reply := make(chan error, 1)
	select {
	case l.reopen <- reply:
		return <-reply
	case <-l.done:
		return errors.New("the access log is closed")
	}
}

// Close writes every line queued, flushes, closes the file and stops the
// writer. Lines of requests that end later are not written.
func (l *Log) Close() error {
	var err error
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		close(l.stop)
		<-l.done
		// A request that passed End's check as Close began may have
		// queued its line after the writer's last round: it is dropped.
		l.dropped.Add(uint64(len(l.queue)))
		err = l.bw.Flush()
		if l.closer != nil {
			if cerr := l.closer.Close(); err == nil {
				err = cerr
			}
		}
	})
	return err
}

// run is the writer. It wakes every pollEvery, writes what was queued and
// flushes; a request never wakes it: a send on a channel with a
// goroutine waiting on it hands that goroutine to the scheduler, which on
// an event loop's thread cost a request a third of its time (BenchmarkProxy,
// access-log case: 150 µs a request against 50 µs with a polling writer).
func (l *Log) run() {
	defer close(l.done)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if l.drain() > 0 {
				l.flush()
			}
		case reply := <-l.reopen:
			l.drain() // what came before the signal goes to the old file
			reply <- l.reopenFile()
		case <-l.stop:
			l.drain()
			return // Close flushes
		}
	}
}

// drain writes every line queued now (to the bufio.Writer, which writes
// to the file as its 64 KiB fill), and returns how many.
func (l *Log) drain() (n int) {
	for {
		select {
		case buf := <-l.queue:
			l.write(buf)
			n++
		default:
			return n
		}
	}
}

func (l *Log) write(buf *buffer) {
	_, err := l.bw.Write(buf.b)
	l.check(err)
	if err == nil {
		l.written.Add(1)
	}
	if cap(buf.b) > maxKept {
		buf.b = make([]byte, 0, 512)
	}
	l.free <- buf
}

func (l *Log) flush() {
	if l.bw.Buffered() > 0 {
		l.check(l.bw.Flush())
	}
}

// check logs a write error once, until writes succeed again: a full disk
// must not flood the log.
func (l *Log) check(err error) {
	switch {
	case err != nil:
		// A bufio.Writer keeps its first error: start afresh, what it
		// held lost, so that writing resumes once the disk does.
		l.bw.Reset(l.out)
		if l.failed {
			return
		}
		l.failed = true
		l.log.Error("access log write failed; lines are lost until it succeeds", "path", l.path, "err", err)
	case err == nil && l.failed:
		l.failed = false
		l.log.Info("access log writes again", "path", l.path)
	}
}

// reopenFile flushes to the old file, closes it, and opens the path
// anew. If the path cannot be opened, the old file stays.
func (l *Log) reopenFile() error {
	l.flush()
	f, err := openFile(l.path)
	if err != nil {
		l.log.Error("access log reopen failed; writing on to the old file", "path", l.path, "err", err)
		return err
	}
	if l.closer != nil {
		l.closer.Close()
	}
	l.out, l.closer = f, f
	l.bw.Reset(f)
	return nil
}
