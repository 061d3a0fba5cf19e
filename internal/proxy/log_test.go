package proxy

import (
	"sync"
	"testing"
	"time"
)

// TestLogLimiter: failed requests are logged at most once per interval,
// and the line that is logged counts those held back since the last one.
func TestLogLimiter(t *testing.T) {
	l := logLimiter{every: time.Second}
	t0 := time.Unix(1800000000, 0).UnixNano()
	if ok, n := l.allow(t0); !ok || n != 0 {
		t.Fatalf("first line: %v, %d suppressed; want logged, 0", ok, n)
	}
	for i := range 5 {
		if ok, _ := l.allow(t0 + int64(i+1)*int64(100*time.Millisecond)); ok {
			t.Errorf("line %d within the second: logged, want held back", i)
		}
	}
	if ok, n := l.allow(t0 + int64(time.Second)); !ok || n != 5 {
		t.Errorf("a second later: %v, %d suppressed; want logged, 5", ok, n)
	}
	if ok, n := l.allow(t0 + int64(3*time.Second)); !ok || n != 0 {
		t.Errorf("later still: %v, %d suppressed; want logged, 0", ok, n)
	}
}

// TestLogLimiterConcurrent: goroutines failing at once log one line
// between them, and count every other.
func TestLogLimiterConcurrent(t *testing.T) {
	l := logLimiter{every: time.Hour}
	now := time.Now().UnixNano()
	var mu sync.Mutex
	logged, reported := 0, int64(0)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if ok, n := l.allow(now); ok {
					mu.Lock()
					logged++
					reported += n
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	// A failure held back while the one allowed was being decided may be
	// counted in that line's "held back" (it came at the same time);
	// none is lost or counted twice.
	if logged != 1 || reported+l.suppressed.Load() != 799 {
		t.Errorf("800 failures at once: %d logged, %d held back (%d of them reported with the line); want 1, 799",
			logged, reported+l.suppressed.Load(), reported)
	}
}
