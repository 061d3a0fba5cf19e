// Command burn is the CPU-bound neighbour of bench/run.sh's busy scenario:
// it spins -threads OS threads in pure user-space arithmetic (no system
// calls, no memory traffic), as a compiler or a batch job beside a proxy
// would, until -d has passed or it gets SIGINT or SIGTERM.
//
// It prints one line starting with "burning:" once every thread spins, and
// on exit the CPU time it got, so that a run can say how much CPU the
// neighbour took from the proxies.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	os.Exit(run())
}

func run() int {
	threads := flag.Int("threads", runtime.NumCPU(), "spinning threads")
	d := flag.Duration("d", time.Hour, "how long to spin at most")
	flag.Parse()
	if *threads < 1 || *d <= 0 {
		fmt.Fprintf(os.Stderr, "burn: -threads must be at least 1 and -d positive, got %d and %v\n", *threads, *d)
		return 2
	}
	// One P per spinner, plus one for main, so the spinners never wait
	// on each other for a P: only the kernel decides who runs.
	runtime.GOMAXPROCS(*threads + 1)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *d)
	defer cancel()

	var quit atomic.Bool
	var sink atomic.Uint64
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < *threads; i++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			runtime.LockOSThread()
			x := seed*0x9e3779b97f4a7c15 | 1
			for !quit.Load() {
				// A batch of xorshift steps between checks of quit keeps
				// the atomic load out of the way without making the stop slow.
				for j := 0; j < 1<<16; j++ {
					x ^= x << 13
					x ^= x >> 7
					x ^= x << 17
				}
			}
			sink.Add(x)
		}(uint64(i + 1))
	}
	fmt.Printf("burning: %d threads spinning, pid %d\n", *threads, os.Getpid())
	<-ctx.Done()
	quit.Store(true)
	wg.Wait()
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	wall := time.Since(start)
	fmt.Printf("burn: done: %.1fs of CPU in %.1fs (%.2f CPUs), checksum %x\n", cpu.Seconds(), wall.Seconds(), cpu.Seconds()/wall.Seconds(), sink.Load()&0xff)
	return 0
}
