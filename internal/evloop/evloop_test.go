//go:build linux

package evloop

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const waitLimit = 5 * time.Second

func startLoop(t *testing.T, tick Tick) *Loop {
	t.Helper()
	if tick == nil {
		tick = func(time.Time) {}
	}
	l, err := New(tick)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { l.Run(); close(done) }()
	t.Cleanup(func() {
		l.Close()
		select {
		case <-done:
		case <-time.After(waitLimit):
			t.Error("the loop did not stop after Close")
		}
	})
	return l
}

// TestPost: tasks posted from many goroutines all run, each goroutine's in
// the order it posted them.
func TestPost(t *testing.T) {
	l := startLoop(t, nil)
	const posters, each = 8, 500
	var last [posters]int // touched only in the loop's goroutine
	var bad atomic.Int64
	var wg sync.WaitGroup
	wg.Add(posters * each)
	for p := range posters {
		go func() {
			for i := 1; i <= each; i++ {
				l.Post(func() {
					if last[p] != i-1 {
						bad.Add(1)
					}
					last[p] = i
					wg.Done()
				})
			}
		}()
	}
	waitGroup(t, &wg)
	if n := bad.Load(); n != 0 {
		t.Errorf("%d tasks ran out of their poster's order", n)
	}
}

type recorder chan uint32

func (r recorder) Ready(ev uint32) { r <- ev }

func socketpair(t *testing.T) (a, b int) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fds[0]); syscall.Close(fds[1]) })
	return fds[0], fds[1]
}

// TestReady: a registered socket's handler hears of it becoming writable,
// then readable, then of its peer closing; after Remove, of nothing.
func TestReady(t *testing.T) {
	l := startLoop(t, nil)
	a, b := socketpair(t)
	r := make(recorder, 16)
	added := make(chan error, 1)
	l.Post(func() { added <- l.Add(a, r) })
	if err := <-added; err != nil {
		t.Fatal(err)
	}
	expect(t, r, Out, "writable on registration")
	syscall.Write(b, []byte("x"))
	expect(t, r, In, "readable after the peer wrote")
	var buf [8]byte
	syscall.Read(a, buf[:])
	syscall.Shutdown(b, syscall.SHUT_WR)
	expect(t, r, RdHup, "the peer's shutdown")
	removed := make(chan struct{})
	l.Post(func() { l.Remove(a); close(removed) })
	<-removed
	syscall.Write(b, []byte("y"))
	select {
	case ev := <-r:
		t.Errorf("events %#x after Remove", ev)
	case <-time.After(50 * time.Millisecond):
	}
}

func expect(t *testing.T, r recorder, want uint32, what string) {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		select {
		case ev := <-r:
			if ev&want != 0 {
				return
			}
		case <-deadline:
			t.Fatalf("no event %#x (%s)", want, what)
		}
	}
}

// TestTick: a loop with a tick calls it about that often; SetTick(0)
// stops it.
func TestTick(t *testing.T) {
	var ticks atomic.Int64
	fifth := make(chan struct{})
	l := startLoop(t, func(time.Time) {
		if ticks.Add(1) == 5 {
			close(fifth)
		}
	})
	l.Post(func() { l.SetTick(10 * time.Millisecond) })
	select {
	case <-fifth:
	case <-time.After(waitLimit):
		t.Fatalf("%d ticks in %v at a 10ms interval", ticks.Load(), waitLimit)
	}
	stopped := make(chan struct{})
	l.Post(func() { l.SetTick(0); close(stopped) })
	<-stopped
	n := ticks.Load()
	time.Sleep(50 * time.Millisecond) // five intervals in which nothing may happen
	if m := ticks.Load(); m != n {
		t.Errorf("%d ticks after SetTick(0)", m-n)
	}
}

func waitGroup(t *testing.T, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("tasks did not all run")
	}
}

// BenchmarkPost: the cost of handing the loop a task.
func BenchmarkPost(b *testing.B) {
	l, err := New(func(time.Time) {})
	if err != nil {
		b.Fatal(err)
	}
	go l.Run()
	defer l.Close()
	var wg sync.WaitGroup
	fn := func() { wg.Done() }
	b.ReportAllocs()
	for b.Loop() {
		wg.Add(1)
		l.Post(fn)
		wg.Wait()
	}
}

// TestPostAfterStop: a task posted once the loop has stopped is dropped;
// above all, Post must not write its wake-up to the loop's closed eventfd,
// whose number another file may have taken since.
func TestPostAfterStop(t *testing.T) {
	l, err := New(func(time.Time) {})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { l.Run(); close(done) }()
	l.Close()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("the loop did not stop")
	}
	// Files that may take the loop's descriptor numbers.
	var files []*os.File
	for i := range 16 {
		f, err := os.Create(filepath.Join(t.TempDir(), fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files = append(files, f)
	}
	ran := false
	l.Post(func() { ran = true })
	for _, f := range files {
		if st, err := f.Stat(); err != nil || st.Size() != 0 {
			t.Errorf("%s (descriptor %d) holds %d bytes after a Post to a stopped loop", f.Name(), f.Fd(), st.Size())
		}
	}
	if ran {
		t.Errorf("a task posted to a stopped loop ran")
	}
}

// fileFunc is a File of a function.
type fileFunc func(events uint32)

func (f fileFunc) Ready(events uint32) { f(events) }

// TestStaleEventsDropped: a handler that closes another socket and opens
// a new one under the same descriptor number, in the turn whose events
// include the closed socket's, does not have those events delivered to
// the new socket's handler: it sees only its own. (A stale hang-up would
// make a new target connection look closed by its target.)
func TestStaleEventsDropped(t *testing.T) {
	pair := func() [2]int {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Close(fds[0]); syscall.Close(fds[1]) })
		return fds
	}
	l, err := New(func(time.Time) {})
	if err != nil {
		t.Fatal(err)
	}
	a, b := pair(), pair()
	turns := 0
	l.SetAfter(func() { turns++ })
	var newEvents []uint32 // the new socket's, in the first turn
	var newFD atomic.Int32
	// a's handler runs first in the turn (a was ready first): it closes
	// b's socket and puts a new one, c, under b's number.
	aReady := fileFunc(func(uint32) {
		if turns > 0 || newFD.Load() != 0 {
			return
		}
		l.Remove(b[0])
		c := pair()
		if err := syscall.Dup3(c[0], b[0], syscall.O_CLOEXEC); err != nil {
			t.Error(err)
			return
		}
		syscall.Close(c[0])
		c[0] = b[0] // closed with the others at the end
		if err := l.Add(b[0], fileFunc(func(ev uint32) {
			if turns == 0 {
				newEvents = append(newEvents, ev)
			}
		})); err != nil {
			t.Error(err)
		}
		newFD.Store(int32(b[0]))
	})
	if err := l.Add(a[0], aReady); err != nil {
		t.Fatal(err)
	}
	if err := l.Add(b[0], fileFunc(func(uint32) { t.Error("the closed socket's handler ran") })); err != nil {
		t.Fatal(err)
	}
	// Both readable, and b hung up, before the loop's first wait: one turn
	// reports both.
	syscall.Write(a[1], []byte("x"))
	syscall.Write(b[1], []byte("x"))
	syscall.Shutdown(b[1], syscall.SHUT_WR)
	done := make(chan struct{})
	go func() { l.Run(); close(done) }()
	deadline := time.Now().Add(waitLimit)
	for newFD.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	finished := make(chan []uint32)
	l.Post(func() { finished <- newEvents })
	var got []uint32
	select {
	case got = <-finished:
	case <-time.After(waitLimit):
		t.Fatal("the loop did not run the task")
	}
	l.Close()
	<-done
	if newFD.Load() == 0 {
		t.Fatal("a's handler did not run")
	}
	for _, ev := range got {
		if ev&(In|RdHup|Hup) != 0 {
			t.Errorf("the new socket under descriptor %d got events %#x in the turn it was added: the closed socket's", newFD.Load(), ev)
		}
	}
}
