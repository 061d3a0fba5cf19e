package metrics

import (
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/proxy"
	"github.com/latch-lb/latch/internal/sticky"
	"github.com/latch-lb/latch/internal/target"
)

// records are what the observer sees most: a target's 200 on a sticky
// session, and a target's 500.
func records() []proxy.Record {
	t := target.New("127.0.0.1:8080", 1, 1, false)
	now := time.Now()
	ok := proxy.Record{Listener: "front", Status: 200, Group: "web", Target: t, Sticky: sticky.Stuck,
		Sent: now, Head: now.Add(3 * time.Millisecond), BytesOut: 512, Classified: true}
	fail := ok
	fail.Status = 500
	return []proxy.Record{ok, fail}
}

// BenchmarkEnd measures the observer's count of one request, and
// TestEndDoesNotAllocate checks what it reports: no allocation.
func BenchmarkEnd(b *testing.B) {
	o := New().Observer()
	recs := records()
	o.End(&recs[0]) // the target's first request adds its counters
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			o.End(&recs[i&1])
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				o.End(&recs[i&1])
			}
		})
	})
}

func TestEndDoesNotAllocate(t *testing.T) {
	m := New()
	o := m.Observer()
	recs := records()
	o.End(&recs[0])
	o.Conn(proxy.ConnEvent{Kind: proxy.ConnOpened, Listener: "front"})
	if n := testing.AllocsPerRun(1000, func() {
		o.End(&recs[0])
		o.End(&recs[1])
		o.Refused(&recs[1])
		o.Conn(proxy.ConnEvent{Kind: proxy.ConnClosed, Listener: "front"})
	}); n != 0 {
		t.Errorf("%v allocations a run, want 0", n)
	}
	// AllocsPerRun runs the function once more, to warm up.
	if got, want := m.Targets()[0].Requests, uint64(1+2*1001); got != want {
		t.Errorf("the target counted %d requests, want %d", got, want)
	}
}
