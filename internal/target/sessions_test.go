package target

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

func TestSessionCountError(t *testing.T) {
	now := time.Unix(1800000000, 0)
	for _, n := range []int{0, 1, 2, 5, 10, 30, 100, 300, 1000, 5000, 20000} {
		tg := New("10.0.0.1:80", 1, 1, false)
		r := rand.New(rand.NewPCG(uint64(n), 7))
		for range n {
			id := r.Uint64()
			// Each session comes several times: only distinct ones count.
			for range 3 {
				tg.RecordSession(id, now)
			}
		}
		got := tg.SessionsSince(5*time.Minute, now)
		tol := max(1, 3*sessionStdErr(n))
		if math.Abs(float64(got-n)) > tol {
			t.Errorf("%d sessions: got %d, want within %.0f", n, got, tol)
		}
	}
}

// sessionStdErr is the estimate's standard error for n sessions, in
// sessions: linear counting's, sqrt(m(e^t - t - 1)) with t = n/m (Whang
// et al.), up to 2.5m; HyperLogLog's, 1.04/sqrt(m) of n, beyond.
func sessionStdErr(n int) float64 {
	const m = float64(sketchRegs)
	if float64(n) <= 2.5*m {
		t := float64(n) / m
		return math.Sqrt(m * (math.Exp(t) - t - 1))
	}
	return 1.04 / math.Sqrt(m) * float64(n)
}

func TestSessionWindow(t *testing.T) {
	tg := New("10.0.0.1:80", 1, 1, false)
	base := time.Unix(1800000000, 0).Truncate(time.Minute)
	// Minute k serves sessions 1000k..1000k+9: 10 new ones a minute.
	for k := range 10 {
		for i := range 10 {
			tg.RecordSession(uint64(1000*k+i+1), base.Add(time.Duration(k)*time.Minute))
		}
	}
	now := base.Add(9*time.Minute + 30*time.Second)
	for _, tt := range []struct {
		window time.Duration
		want   int
	}{{time.Minute, 10}, {5 * time.Minute, 50}, {10 * time.Minute, 100}, {60 * time.Minute, 100}, {90 * time.Second, 20}} {
		if got := tg.SessionsSince(tt.window, now); math.Abs(float64(got-tt.want)) > max(1, 3*sessionStdErr(tt.want)) {
			t.Errorf("window %v: got %d, want %d ±%.0f", tt.window, got, tt.want, 3*sessionStdErr(tt.want))
		}
	}
	// An hour on, the ring has come round: minute k's registers are old
	// and count for nothing, though nobody cleared them.
	later := base.Add(69 * time.Minute)
	tg.RecordSession(99999, later)
	if got := tg.SessionsSince(60*time.Minute, later); got != 1 {
		t.Errorf("an hour later: got %d sessions, want 1", got)
	}
	if got, want := tg.LastSession(), later; !got.Equal(want) {
		t.Errorf("LastSession: got %v, want %v", got, want)
	}
}

func TestSessionRecordConcurrent(t *testing.T) {
	tg := New("10.0.0.1:80", 1, 1, false)
	now := time.Unix(1800000000, 0)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				tg.RecordSession(uint64(w*200+i+1), now)
			}
		}()
	}
	wg.Wait()
	if got := tg.SessionsSince(time.Minute, now); math.Abs(float64(got-800)) > 3*sessionStdErr(800) {
		t.Errorf("4 writers × 200 sessions: got %d, want 800 ±%.0f", got, 3*sessionStdErr(800))
	}
}

func BenchmarkRecordSession(b *testing.B) {
	tg := New("10.0.0.1:80", 1, 1, false)
	now := time.Now()
	ids := make([]uint64, 1024)
	for i := range ids {
		ids[i] = rand.Uint64()
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tg.RecordSession(ids[i&1023], now)
		i++
	}
}

func BenchmarkRecordSessionParallel(b *testing.B) {
	tg := New("10.0.0.1:80", 1, 1, false)
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		id := rand.Uint64()
		for pb.Next() {
			tg.RecordSession(id, now)
			id++
		}
	})
}
