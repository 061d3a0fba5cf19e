package h1

import (
	"strings"
	"testing"
	"time"
)

// connectionBomb is a request head of 64 KiB: Connection fields listing
// some 24,000 names, then some 4,400 fields, none of them named.
func connectionBomb() string {
	var b strings.Builder
	b.WriteString("GET / HTTP/1.1\r\nHost: a\r\n")
	for b.Len() < 32<<10 {
		b.WriteString("Connection: " + strings.Repeat("b,", 8000) + "\r\n")
	}
	for b.Len() < MaxRequestHead-10 {
		b.WriteString("a:\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// TestFrameConnectionTokensLinear: markNamed compares every name listed in
// Connection with every field (request.go, markNamed: "It is rare, so it
// may be quadratic"), but the client chooses how rare: one 64 KiB request
// costs some 100 million comparisons, about 0.3 s of CPU, and a client may
// send them back to back. Frame should stay linear in the head (a set of
// the listed names, or a cap on how many Connection may list).
func TestFrameConnectionTokensLinear(t *testing.T) {
	if raceEnabled {
		t.Skip("a timing test; the race detector slows everything tenfold (.ci/run runs it without -race)")
	}
	in := connectionBomb()
	best := time.Hour
	for i := 0; i < 3 && best > 50*time.Millisecond; i++ {
		rd, _ := newFeed(in, feeds[0].wrap)
		var req Request
		start := time.Now()
		// Refusing the head (too many fields, too many names in
		// Connection) is as good a defence as framing it fast.
		if _, err := rd.ReadRequest(&req); err == nil {
			if err := req.Frame(); err != nil && err != ErrConnectionList {
				t.Fatalf("Frame: %v", err)
			}
		} else if err != ErrTooManyFields {
			t.Fatal(err)
		}
		best = min(best, time.Since(start))
	}
	// A linear pass over 64 KiB takes well under a millisecond.
	if best > 50*time.Millisecond {
		t.Errorf("Frame took %v on a 64 KiB head with many Connection names and fields, want a linear pass (< 50ms)", best)
	}
}

// TestRequestDoesNotKeepHugeFieldSlices: a Request lives as long as its
// connection, and reset keeps Fields and Kinds for the next request. One
// head of 64 KiB in 4-byte lines ("a:\r\n") grows them to some 16,000
// entries, about 900 KiB, which an idle keep-alive connection then holds
// forever: 16 times the read buffer that Reader takes care to give back.
func TestRequestDoesNotKeepHugeFieldSlices(t *testing.T) {
	big := "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("a:\r\n", (MaxRequestHead-40)/4) + "\r\n"
	rd, _ := newFeed(big+"GET / HTTP/1.1\r\nHost: a\r\n\r\n", feeds[0].wrap)
	var req Request
	if _, err := rd.ReadRequest(&req); err == ErrTooManyFields {
		// Refused: the client gets a 400 and its connection closes, so no
		// Request is left holding the fields. Check the cap on what a
		// Request keeps with the most fields a request may have.
		big = "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("a:\r\n", MaxFields-1) + "\r\n"
		rd, _ = newFeed(big+"GET / HTTP/1.1\r\nHost: a\r\n\r\n", feeds[0].wrap)
		if _, err := rd.ReadRequest(&req); err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	n := len(req.Fields)
	if _, err := rd.ReadRequest(&req); err != nil {
		t.Fatal(err)
	}
	const fieldSize = 48 // two slice headers
	kept := cap(req.Fields)*fieldSize + cap(req.Kinds)
	if kept > 8<<10 {
		t.Errorf("after a request of %d fields and then one of %d, the Request keeps %d KiB of field slices; want at most 8 KiB",
			n, len(req.Fields), kept>>10)
	}
}
