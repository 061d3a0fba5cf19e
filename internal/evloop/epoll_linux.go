//go:build linux

package evloop

import (
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// Supported reports whether this system has event loops (Linux's epoll).
const Supported = true

// Loop is one event loop.
type Loop struct {
	ep   int // the epoll instance
	wake int // an eventfd that Post writes to wake the loop

	files []slot // by file descriptor
	gen   int32  // the tag of the latest Add

	mu      sync.Mutex // guards tasks, spare, woken and stopped
	tasks   []func()
	spare   []func()
	woken   bool
	stopped bool // Run has returned: the wake descriptor is closed
	tick    Tick
	after   func()        // called at the end of each turn; nil: none
	every   time.Duration // 0: no tick
	next    time.Time     // when the tick is next due
	closed  bool
}

// slot is a registered socket's handler and the tag its epoll events
// carry. A handler may close a socket and a new one take its number in the
// same turn, while the turn's events still include the closed one's: the
// tag tells them apart, so that the new socket's handler never sees (say)
// its predecessor's hang-up.
type slot struct {
	f   File
	gen int32
}

// New returns a loop; Run runs it.
func New(tick Tick) (*Loop, error) {
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	wake, _, errno := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if errno != 0 {
		syscall.Close(ep)
		return nil, fmt.Errorf("eventfd2: %w", errno)
	}
	l := &Loop{ep: ep, wake: int(wake), tick: tick}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(wake)}
	if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, int(wake), &ev); err != nil {
		syscall.Close(ep)
		syscall.Close(int(wake))
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	return l, nil
}

// Add registers fd, a non-blocking socket, for f. Call it in the loop's
// goroutine (or before Run).
func (l *Loop) Add(fd int, f File) error {
	l.gen++
	if l.gen <= 0 {
		l.gen = 1 // 0 is the wake descriptor's
	}
	// Fd and Pad are epoll's 64 bits of user data.
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP | epollET, Fd: int32(fd), Pad: l.gen}
	if err := syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl add: %w", err)
	}
	for fd >= len(l.files) {
		l.files = append(l.files, slot{})
	}
	l.files[fd] = slot{f, l.gen}
	return nil
}

// Remove forgets fd; the caller closes it (or hands it on). Call it in the
// loop's goroutine.
func (l *Loop) Remove(fd int) {
	syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_DEL, fd, nil)
	if fd < len(l.files) {
		l.files[fd] = slot{}
	}
}

// Post runs fn in the loop's goroutine, soon. It may be called from any
// goroutine, the loop's own included. Once the loop has stopped, fn is
// dropped: its descriptors are closed, and their numbers may already be
// another file's.
func (l *Loop) Post(fn func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	l.tasks = append(l.tasks, fn)
	if !l.woken {
		// Under mu, so that Run cannot close the descriptor meanwhile.
		l.woken = true
		one := uint64(1)
		syscall.Write(l.wake, (*[8]byte)(unsafe.Pointer(&one))[:])
	}
}

// SetTick sets the interval of the loop's tick (0: none). Call it in the
// loop's goroutine.
func (l *Loop) SetTick(every time.Duration) {
	if every == l.every {
		return
	}
	l.every = every
	if every > 0 {
		if n := time.Now().Add(every); l.next.IsZero() || n.Before(l.next) {
			l.next = n
		}
	}
}

// SetAfter has fn called at the end of every turn of the loop, once the
// events epoll reported and the tasks posted have been handled: where
// connections that gathered output during the turn write it, in one
// write each, however many of their exchanges it served. Call it before
// Run.
func (l *Loop) SetAfter(fn func()) { l.after = fn }

// Every returns the interval of the loop's tick (0: none).
func (l *Loop) Every() time.Duration { return l.every }

// Close stops the loop after the task running now; the sockets registered
// are left to their owners.
func (l *Loop) Close() {
	l.Post(func() { l.closed = true })
}

// Run runs the loop until Close.
func (l *Loop) Run() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer func() {
		l.mu.Lock()
		l.stopped = true
		l.tasks = nil
		syscall.Close(l.wake) // under mu: no Post writes to it from now on
		l.mu.Unlock()
		syscall.Close(l.ep)
	}()
	events := make([]syscall.EpollEvent, 256)
	for !l.closed {
		wait := -1
		if l.every > 0 {
			d := time.Until(l.next)
			if d <= 0 {
				wait = 0
			} else {
				wait = int((d + time.Millisecond - 1) / time.Millisecond)
			}
		}
		n, err := syscall.EpollWait(l.ep, events, wait)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			panic("evloop: epoll_wait: " + err.Error())
		}
		for i := range n {
			fd := int(events[i].Fd)
			if fd == l.wake {
				l.runTasks()
				continue
			}
			if fd < len(l.files) {
				if s := l.files[fd]; s.f != nil && s.gen == events[i].Pad {
					s.f.Ready(events[i].Events)
				}
			}
		}
		if l.every > 0 {
			if now := time.Now(); !now.Before(l.next) {
				l.next = now.Add(l.every)
				l.tick(now)
			}
		}
		if l.after != nil {
			l.after()
		}
	}
}

func (l *Loop) runTasks() {
	var buf [8]byte
	syscall.Read(l.wake, buf[:])
	l.mu.Lock()
	tasks := l.tasks
	l.tasks, l.spare = l.spare[:0], nil
	l.woken = false
	l.mu.Unlock()
	for i, fn := range tasks {
		fn()
		tasks[i] = nil
	}
	l.mu.Lock()
	if l.spare == nil {
		l.spare = tasks[:0]
	}
	l.mu.Unlock()
}

// epollET is EPOLLET, which package syscall spells as a negative int.
const epollET = 1 << 31
