package conformance_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestStreamingResponse: a response part reaches the client while the target
// still holds back the next one, whatever the target's framing. The target
// sends its first part, then waits until the test has seen that part arrive
// at the client before it sends the rest: a proxy that buffered the response
// (or waited for a full buffer) would never deliver the first part.
func TestStreamingResponse(t *testing.T) {
	t.Parallel()
	const first, second = streamedFirst, streamedSecond
	for _, tc := range streamingResponseCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			target, release := gatedTarget(t, tc)
			l := startLatch(t, target.addr)
			resp, err := newClient(t).Get(l.url("/stream"))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got := make(chan string, 1)
			go func() {
				buf := make([]byte, len(first))
				n, _ := io.ReadFull(resp.Body, buf)
				got <- string(buf[:n])
			}()
			if part := await(t, got, "the first part while the target holds back the second"); part != first {
				t.Fatalf("first part: got %q, want %q", part, first)
			}
			release.open()
			rest, err := io.ReadAll(resp.Body)
			if err != nil || string(rest) != second {
				t.Errorf("rest of the body: got %q (%v), want %q", rest, err, second)
			}
		})
	}
}

// The two parts of a streamed response.
const streamedFirst, streamedSecond = "first part;", "second part"

// streamingCase is one framing of a streamed response.
type streamingCase struct {
	name string
	head string              // status line and header, up to the blank line
	part func(string) string // how one part is framed
	end  string              // after the last part; then the target closes
}

var streamingResponseCases = []streamingCase{
	{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n", chunk, "0\r\n\r\n"},
	{"content-length", fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n", len(streamedFirst+streamedSecond)),
		func(s string) string { return s }, ""},
	{"until close", "HTTP/1.1 200 OK\r\nConnection: close\r\n", func(s string) string { return s }, ""},
}

// gatedTarget answers a request with tc's framing of streamedFirst, then
// waits until the gate opens (the test opens it; so does the test's end)
// to send streamedSecond and close.
func gatedTarget(t *testing.T, tc streamingCase) (*rawTarget, *gate) {
	t.Helper()
	release := newGate()
	target := startRawTarget(t, func(c *targetConn) {
		if _, err := readRequest(c.br); err != nil {
			return
		}
		if c.write(tc.head+"Content-Type: text/plain\r\n\r\n"+tc.part(streamedFirst)) != nil || !release.wait() {
			return
		}
		c.write(tc.part(streamedSecond) + tc.end)
	})
	t.Cleanup(release.open) // before the target's cleanup waits for it
	return target, release
}

// uploadStart is what an uploadTarget saw of an upload before it read the
// rest of the body.
type uploadStart struct {
	name string // the request's X-Case
	part string // the body's first bytes
	cl   int64  // its Content-Length, -1 if unknown
	te   []string
}

// uploadTarget is a net/http target that reads the first n bytes of each
// request's body, reports them (and the request's framing) on the channel
// it returns, then reads the rest and answers with the whole body.
func uploadTarget(t *testing.T, n int) (string, <-chan uploadStart) {
	t.Helper()
	firsts := make(chan uploadStart, 2)
	addr := startHTTPTarget(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, n)
		got, _ := io.ReadFull(r.Body, buf)
		firsts <- uploadStart{r.Header.Get("X-Case"), string(buf[:got]), r.ContentLength, r.TransferEncoding}
		rest, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s%s", buf[:got], rest)
	}))
	return addr, firsts
}

// TestStreamingRequest: an upload part reaches the target before the client
// sends the rest, with Content-Length and with chunked framing. The client
// writes its first part and waits until the target reports it before it
// writes the second.
func TestStreamingRequest(t *testing.T) {
	t.Parallel()
	const first, second = "first-part;", "second-part"
	target, firsts := uploadTarget(t, len(first))
	l := startLatch(t, target)
	cases := []struct {
		name         string
		head         string
		part1, part2 string
	}{
		{"content-length", fmt.Sprintf("Content-Length: %d\r\n", len(first+second)), first, second},
		{"chunked", "Transfer-Encoding: chunked\r\n", chunk(first), chunk(second) + "0\r\n\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Not parallel: the cases share the target's channel.
			c := dialRaw(t, l.addr)
			c.write("POST /upload HTTP/1.1\r\nHost: example.com\r\nX-Case: " + tc.name + "\r\n" + tc.head + "\r\n" + tc.part1)
			if got := await(t, firsts, "the target to get the first part of the upload"); got.name != tc.name || got.part != first {
				t.Fatalf("the target got first %q, want %q", got.name+":"+got.part, tc.name+":"+first)
			}
			c.write(tc.part2)
			resp := c.response("POST")
			if resp.status() != 200 || string(resp.Body) != first+second {
				t.Errorf("got %d %q, want 200 %q", resp.status(), resp.Body, first+second)
			}
		})
	}
}

// TestServerSentEvents: a text/event-stream response without Content-Length
// reaches the client chunked, each event as the target sends it (the next
// event is released only once the client has the previous one), with its
// Content-Type intact.
func TestServerSentEvents(t *testing.T) {
	t.Parallel()
	const events = 3
	next := make(chan struct{}, events)
	target := startHTTPTarget(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		for i := range events {
			fmt.Fprintf(w, "id: %d\nevent: tick\ndata: event %d\n\n", i, i)
			w.(http.Flusher).Flush()
			if i < events-1 {
				select {
				case <-next:
				case <-r.Context().Done():
					return
				case <-time.After(waitLimit):
					return
				}
			}
		}
	}))
	l := startLatch(t, target)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", l.url("/events"), nil)
	resp, err := newClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type: got %q, want text/event-stream", ct)
	}
	if resp.ContentLength != -1 || resp.Header.Get("Content-Length") != "" {
		t.Errorf("Content-Length: got %d %q, want none", resp.ContentLength, resp.Header.Get("Content-Length"))
	}
	if te := strings.Join(resp.TransferEncoding, ","); te != "chunked" {
		t.Errorf("Transfer-Encoding: got %q, want chunked", te)
	}
	br := bufio.NewReader(resp.Body)
	for i := range events {
		got := make(chan string, 1)
		go func() {
			var ev strings.Builder
			for {
				line, err := br.ReadString('\n')
				ev.WriteString(line)
				if err != nil || line == "\n" {
					got <- ev.String()
					return
				}
			}
		}()
		want := fmt.Sprintf("id: %d\nevent: tick\ndata: event %d\n\n", i, i)
		if ev := await(t, got, fmt.Sprintf("event %d while the target holds back the next", i)); ev != want {
			t.Fatalf("event %d: got %q, want %q", i, ev, want)
		}
		if i < events-1 {
			next <- struct{}{}
		}
	}
}
