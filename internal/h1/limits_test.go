package h1

import (
	"fmt"
	"io"
	"strings"
	"testing"
)

// requestLineOf returns a request line of exactly n bytes, without its CRLF.
func requestLineOf(n int) string {
	const pre, post = "GET /", " HTTP/1.1"
	return pre + strings.Repeat("a", n-len(pre)-len(post)) + post
}

// fieldOf returns a field line of exactly n bytes, without its CRLF.
func fieldOf(name string, n int) string {
	return name + ": " + strings.Repeat("v", n-len(name)-2)
}

// headOf returns a request head of exactly n bytes, its final empty line
// included, made of lines no longer than 8 KiB.
func headOf(n int) string {
	head := "GET / HTTP/1.1\r\nHost: a\r\n"
	for i := 0; ; i++ {
		left := n - len(head) - 2 // the final CRLF
		if left <= 8<<10+2 {
			return head + fieldOf(fmt.Sprintf("X-%d", i), left-2) + "\r\n\r\n"
		}
		head += fieldOf(fmt.Sprintf("X-%d", i), 8<<10) + "\r\n"
	}
}

func TestRequestLimits(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"request line at the limit", requestLineOf(MaxRequestLine) + "\r\nHost: a\r\n\r\n", nil},
		{"request line over the limit", requestLineOf(MaxRequestLine+1) + "\r\nHost: a\r\n\r\n", ErrLineTooLong},
		{"request line over the head limit", requestLineOf(MaxRequestHead+1) + "\r\nHost: a\r\n\r\n", ErrHeadTooLarge},
		{"field at the limit", "GET / HTTP/1.1\r\nHost: a\r\n" + fieldOf("X", MaxField) + "\r\n\r\n", nil},
		{"field over the limit", "GET / HTTP/1.1\r\nHost: a\r\n" + fieldOf("X", MaxField+1) + "\r\n\r\n", ErrFieldTooLong},
		{"nameless line over the limit", "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("x", MaxField+1) + "\r\n\r\n", ErrFieldTooLong},
		{"head at the limit", headOf(MaxRequestHead), nil},
		{"head over the limit", headOf(MaxRequestHead + 1), ErrHeadTooLarge},
		{"head over the limit, never ending", headOf(MaxRequestHead + 1)[:MaxRequestHead+1], ErrHeadTooLarge},
	}
	for _, tt := range tests {
		for _, feed := range feeds {
			t.Run(tt.name+"/"+feed.name, func(t *testing.T) {
				// More bytes follow the head: they must stay unread.
				rd, sr := newFeed(tt.in+"NEXT", feed.wrap)
				if strings.Contains(tt.name, "never ending") {
					rd, sr = newFeed(tt.in+strings.Repeat("x", 1<<20), feed.wrap)
				}
				var req Request
				_, err := rd.ReadRequest(&req)
				if err != tt.want {
					t.Fatalf("ReadRequest error = %s, want %s", errName(err), errName(tt.want))
				}
				if err != nil {
					return
				}
				if err := req.Frame(); err != nil {
					t.Fatalf("Frame error = %s", errName(err))
				}
				if got := rest(rd, sr); got != "NEXT" {
					t.Errorf("left after the head: %q, want NEXT", got)
				}
			})
		}
	}
	if n := len(headOf(MaxRequestHead)); n != MaxRequestHead {
		t.Fatalf("test bug: headOf = %d bytes", n)
	}
}

func TestResponseHeadLimit(t *testing.T) {
	respOf := func(n int) string {
		const pre = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
		var b strings.Builder
		b.WriteString(pre)
		for i := 0; b.Len() < n-8<<10-4; i++ {
			b.WriteString(fieldOf(fmt.Sprintf("X-%d", i), 8<<10) + "\r\n")
		}
		b.WriteString(fieldOf("Y", n-b.Len()-4) + "\r\n\r\n")
		return b.String()
	}
	if n := len(respOf(MaxResponseHead)); n != MaxResponseHead {
		t.Fatalf("test bug: respOf = %d bytes", n)
	}
	for _, tt := range []struct {
		name string
		in   string
		want error
	}{
		{"at the limit", respOf(MaxResponseHead), nil},
		{"over the limit", respOf(MaxResponseHead + 1), ErrResponseTooLarge},
		{"over the limit, never ending", strings.Repeat("x", 1<<20), ErrResponseTooLarge},
	} {
		for _, feed := range feeds {
			rd, sr := newFeed(tt.in+"NEXT", feed.wrap)
			var resp Response
			started, err := rd.ReadResponse(&resp, false)
			if err != tt.want || !started {
				t.Errorf("%s/%s: ReadResponse = %v, %s; want true, %s", tt.name, feed.name, started, errName(err), errName(tt.want))
				continue
			}
			if err == nil {
				if got := rest(rd, sr); got != "NEXT" {
					t.Errorf("%s/%s: left after the head: %q, want NEXT", tt.name, feed.name, got)
				}
			}
		}
	}
}

// TestLargeHead reads a head that needs the large buffer, then a small one
// pipelined behind it.
func TestLargeHead(t *testing.T) {
	big := headOf(40 << 10)
	for _, feed := range feeds {
		rd, _ := newFeed(big+"GET /2 HTTP/1.1\r\nHost: b\r\n\r\n", feed.wrap)
		var req Request
		if _, err := rd.ReadRequest(&req); err != nil {
			t.Fatalf("%s: %v", feed.name, err)
		}
		if err := req.Frame(); err != nil {
			t.Fatalf("%s: %v", feed.name, err)
		}
		if len(rd.buf) != MaxRequestHead+bufSize {
			t.Errorf("%s: buffer of %d bytes, want the large one", feed.name, len(rd.buf))
		}
		if n := len(req.Fields); n != 6 || string(req.Host) != "a" {
			t.Errorf("%s: %d fields, Host %q; want 6, a", feed.name, n, req.Host)
		}
		if _, err := rd.ReadRequest(&req); err != nil {
			t.Fatalf("%s: second request: %v", feed.name, err)
		}
		if err := req.Frame(); err != nil {
			t.Fatalf("%s: second request: %v", feed.name, err)
		}
		if string(req.Target) != "/2" || string(req.Host) != "b" {
			t.Errorf("%s: second request %s, Host %s", feed.name, req.Target, req.Host)
		}
		rd.Release()
		if rd.buf != nil {
			t.Errorf("%s: Release kept the buffer with nothing buffered", feed.name)
		}
		if _, err := rd.ReadRequest(&req); err != io.EOF {
			t.Errorf("%s: after the last request: %v, want EOF", feed.name, err)
		}
	}
}
