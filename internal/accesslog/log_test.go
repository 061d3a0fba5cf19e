package accesslog

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/proxy"
)

// gate is a writer that blocks until released, as a disk that stalls.
type gate struct {
	entered chan struct{} // closed when the first Write has begun
	release chan struct{}
	once    sync.Once
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (g *gate) Write(p []byte) (int, error) {
	g.once.Do(func() { close(g.entered) })
	<-g.release
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Write(p)
}

// request is a record for path, as latch would give End.
func request(path string) *proxy.Record {
	r := testRecord()
	r.URI = []byte(path)
	return r
}

// TestFullQueueDropsAndCounts: with the writer stuck on a stalled disk,
// End queues as many lines as the queue holds, then drops and counts the
// rest, and never waits; what was queued is written once the disk moves.
func TestFullQueueDropsAndCounts(t *testing.T) {
	g := &gate{entered: make(chan struct{}), release: make(chan struct{})}
	l := New(g, Options{Queue: 4, Log: slog.New(slog.DiscardHandler)})
	l.End(request("/first"))
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer did not write the first line within 10s")
	}
	// The writer is stuck in Write now, every buffer free.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 14 {
			l.End(request("/r" + string(rune('a'+i))))
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		close(g.release)
		t.Fatal("End blocked behind a stalled writer")
	}
	if got := l.Dropped(); got != 10 {
		t.Errorf("Dropped = %d, want 10 (14 lines, room for 4)", got)
	}
	close(g.release)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	out := g.buf.String()
	if n := strings.Count(out, "\n"); n != 5 {
		t.Fatalf("%d lines written, want 5 (the first, then 4 queued):\n%s", n, out)
	}
	for _, p := range []string{"/first", "/ra", "/rb", "/rc", "/rd"} {
		if !strings.Contains(out, ":443"+p+" HTTP/1.1") {
			t.Errorf("the line of %s is missing:\n%s", p, out)
		}
	}
	if l.Written() != 5 {
		t.Errorf("Written = %d, want 5", l.Written())
	}
	l.End(request("/after-close")) // neither written nor a panic
}

// TestReopenAfterRename is logrotate's way: rename the file, signal,
// and the lines go on in a new file at the old name, none lost.
func TestReopenAfterRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	l, err := Open(config.AccessLog{Path: path}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.End(request("/before"))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	l.End(request("/after"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{path + ".1": "/before", path: "/after"} {
		lines := readLines(t, file)
		if len(lines) != 1 || !strings.Contains(lines[0], ":443"+want+" HTTP/1.1") {
			t.Errorf("%s holds %q, want the one line of %s", filepath.Base(file), lines, want)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("the new file: %v, %v; want mode 0640", fi.Mode(), err)
	}
}

func TestOpenRefuses(t *testing.T) {
	_, err := Open(config.AccessLog{Path: filepath.Join(t.TempDir(), "no-such-dir", "access.log")}, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "access_log.path: open ") || !strings.Contains(err.Error(), "no such file or directory") {
		t.Errorf("Open in a missing directory: %v, want access_log.path named, and the cause", err)
	}
}

// TestSwitch: Apply opens and swaps, leaves an unchanged log alone, and
// keeps the old log when the new one cannot open.
func TestSwitch(t *testing.T) {
	dir := t.TempDir()
	s := NewSwitch(slog.New(slog.DiscardHandler))
	s.End(request("/off")) // no log yet: nothing
	a := &config.AccessLog{Path: filepath.Join(dir, "a.log")}
	if err := s.Apply(a); err != nil {
		t.Fatal(err)
	}
	first := s.cur.Load()
	s.End(request("/a1"))
	if err := s.Apply(&config.AccessLog{Path: a.Path}); err != nil || s.cur.Load() != first {
		t.Errorf("Apply of the same config: %v, and the log changed: %t", err, s.cur.Load() != first)
	}
	if err := s.Apply(&config.AccessLog{Path: filepath.Join(dir, "missing", "b.log")}); err == nil {
		t.Error("Apply with a path that cannot open: no error")
	}
	if s.cur.Load() != first {
		t.Error("a failed Apply replaced the log")
	}
	s.End(request("/a2"))
	if err := s.Apply(nil); err != nil {
		t.Fatal(err)
	}
	s.End(request("/none"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, a.Path)
	if len(lines) != 2 || !strings.Contains(lines[0], "/a1 ") || !strings.Contains(lines[1], "/a2 ") {
		t.Errorf("a.log holds %q, want /a1 and /a2", lines)
	}
}

// TestSwitchCountsLinesDroppedAtClose: the lines a log's Close drops (queued
// after its writer's last round) count in the Switch's Dropped, when the log
// is switched away from and when the Switch closes.
func TestSwitchCountsLinesDroppedAtClose(t *testing.T) {
	for _, how := range []string{"Apply(nil)", "Close"} {
		t.Run(how, func(t *testing.T) {
			s := NewSwitch(slog.New(slog.DiscardHandler))
			// A log whose writer has made its last round already: the
			// lines End queues now are those Close drops.
			var out bytes.Buffer
			l := newLog(&out, nil, Options{Queue: 8, Log: slog.New(slog.DiscardHandler)})
			close(l.done)
			s.cur.Store(l)
			s.cfg = &config.AccessLog{Path: config.Stdout}
			for range 3 {
				s.End(request("/late"))
			}
			if got := s.Dropped(); got != 0 {
				t.Fatalf("Dropped before the close = %d, want 0", got)
			}
			var err error
			if how == "Close" {
				err = s.Close()
			} else {
				err = s.Apply(nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Dropped(); got != 3 {
				t.Errorf("Dropped after %s = %d, want 3 (the lines the log's Close dropped)", how, got)
			}
			if out.Len() != 0 {
				t.Errorf("a dropped line was written: %q", out.String())
			}
		})
	}
}
