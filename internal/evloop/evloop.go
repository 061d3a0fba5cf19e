// Package evloop runs event loops: one goroutine, locked to its thread,
// waiting on one epoll instance for the sockets it owns and calling their
// handlers as they become ready, in the loop's own goroutine.
//
// latch's HTTP/1.1 data path runs on one loop per CPU, as HAProxy's threads
// do, rather than a goroutine per connection on Go's poller: a loop sees a
// socket's readiness on every turn, where Go's scheduler polls the network
// only when it runs out of goroutines, which left latch's p99 at twice
// HAProxy's on a busy machine (DESIGN-perf.md has the measurements).
//
// Everything a loop owns is touched only in the loop's goroutine; other
// goroutines hand it work with Post.
package evloop

import "time"

// A File is a socket registered with a loop.
type File interface {
	// Ready is called in the loop's goroutine with the events epoll
	// reported for the socket (edge-triggered: In, Out, Hup, together).
	Ready(events uint32)
}

// Events, as Ready receives them.
const (
	In  uint32 = 0x001 // EPOLLIN: readable
	Out uint32 = 0x004 // EPOLLOUT: writable
	Err uint32 = 0x008 // EPOLLERR
	Hup uint32 = 0x010 // EPOLLHUP
	// RdHup (EPOLLRDHUP): the peer shut its side down.
	RdHup uint32 = 0x2000
)

// Tick is called by a loop every interval it was given (SetTick), in the
// loop's goroutine, with the time.
type Tick func(now time.Time)
