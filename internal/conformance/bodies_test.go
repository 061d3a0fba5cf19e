package conformance_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
)

// hashTarget is a net/http target that reads each request's body and
// answers "len=<bytes read> cl=<Content-Length, -1 if none> te=<transfer
// codings> sha=<sha256 of the body>".
func hashTarget(t *testing.T) string {
	t.Helper()
	return startHTTPTarget(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "len=%d cl=%d te=%s sha=%x", n, r.ContentLength, strings.Join(r.TransferEncoding, ","), h.Sum(nil))
	}))
}

// payload is n reproducible pseudo-random bytes: a body in which a lost,
// repeated or reordered piece changes the hash.
func payload(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// TestLargeRequestBodies: 8 and 32 MiB uploads, with Content-Length and
// chunked, reach the target byte for byte. An upload with Content-Length
// keeps it (targets such as object stores need the length up front).
func TestLargeRequestBodies(t *testing.T) {
	t.Parallel()
	l := startLatch(t, hashTarget(t))
	client := newClient(t)
	for _, size := range []int{8 << 20, 32 << 20} {
		for _, chunked := range []bool{false, true} {
			name := fmt.Sprintf("%dMiB content-length", size>>20)
			if chunked {
				name = fmt.Sprintf("%dMiB chunked", size>>20)
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				p := payload(size, byte(size>>20))
				var body io.Reader = bytes.NewReader(p)
				if chunked {
					body = io.MultiReader(body) // hides the length: net/http sends it chunked
				}
				req, err := http.NewRequest("PUT", l.url("/upload"), body)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				want := fmt.Sprintf("len=%d cl=%d te= sha=%s", size, size, sha(p))
				if chunked {
					want = fmt.Sprintf("len=%d cl=-1 te=chunked sha=%s", size, sha(p))
				}
				if resp.StatusCode != 200 || string(got) != want {
					t.Errorf("the target got %d %q, want 200 %q", resp.StatusCode, got, want)
				}
			})
		}
	}
}

// TestLargeResponseBodies: an 8 MiB response reaches the client byte for
// byte whether the target frames it with Content-Length, chunked, or by
// closing the connection (an HTTP/1.0-style target).
func TestLargeResponseBodies(t *testing.T) {
	t.Parallel()
	const size = 8 << 20
	p := payload(size, 7)
	cases := []struct {
		name, head string
		frame      func([]byte) string // one piece of the body
		end        string
	}{
		{"content-length", fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", size),
			func(b []byte) string { return string(b) }, ""},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
			func(b []byte) string { return chunk(string(b)) }, "0\r\n\r\n"},
		{"until close", "HTTP/1.0 200 OK\r\n\r\n",
			func(b []byte) string { return string(b) }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			target := startRawTarget(t, func(c *targetConn) {
				if _, err := readRequest(c.br); err != nil {
					return
				}
				if c.write(tc.head) != nil {
					return
				}
				// Uneven pieces, so chunk and read boundaries fall anywhere.
				for off, n := 0, 1; off < size; off, n = off+n, n*3+17 {
					n = min(n, size-off, 1<<20)
					if c.write(tc.frame(p[off:off+n])) != nil {
						return
					}
				}
				c.write(tc.end)
				// Returning closes the connection: the end of the "until close" body.
			})
			l := startLatch(t, target.addr)
			resp, err := newClient(t).Get(l.url("/download"))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			if err != nil {
				t.Fatalf("reading the body: %v after %d bytes", err, n)
			}
			if sum := hex.EncodeToString(h.Sum(nil)); n != size || sum != sha(p) {
				t.Errorf("got %d bytes sha256 %s, want %d bytes sha256 %s", n, sum, size, sha(p))
			}
			if tc.name == "content-length" && resp.ContentLength != size {
				t.Errorf("Content-Length: got %d, want %d", resp.ContentLength, size)
			}
		})
	}
}

// TestIncompleteRequestBody: a client that sends less body than it announced
// and then stops sending must not make the target see a complete request.
// latch streams uploads, so the target gets the head and the first part; once
// the client has stopped, the target's connection must end without the rest
// (no padding, no final chunk). A client that only half-closes can still
// read an answer: ALB sends 400, and so must latch, naming the body as the
// cause.
func TestIncompleteRequestBody(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		head  string
		first string // sent with the head
		cut   string // sent once the target has the head; then the client stops
	}{
		{"content-length", "Content-Length: 100\r\n", strings.Repeat("x", 40), strings.Repeat("y", 20)},
		{"chunked, no last chunk", "Transfer-Encoding: chunked\r\n", chunk(strings.Repeat("x", 40)), chunk("yy")},
		{"chunked, cut inside a chunk", "Transfer-Encoding: chunked\r\n", chunk(strings.Repeat("x", 40)), "64\r\n" + strings.Repeat("y", 20)},
	}
	for _, tc := range cases {
		for _, half := range []bool{true, false} {
			name := tc.name + ", full close"
			if half {
				name = tc.name + ", half close"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				heads := make(chan string, 4)
				complete := make(chan bool, 4)
				target := startRawTarget(t, func(c *targetConn) {
					m, err := readHead(c.br)
					if err != nil {
						return
					}
					heads <- m.StartLine
					err = readBody(c.br, m, false)
					complete <- err == nil
					if err == nil {
						c.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					}
				})
				l := startLatch(t, target.addr)
				c := dialRaw(t, l.addr)
				c.write("POST /upload HTTP/1.1\r\nHost: example.com\r\n" + tc.head + "\r\n" + tc.first)
				await(t, heads, "the request head at the target (uploads stream)")
				c.write(tc.cut)
				if half {
					c.c.CloseWrite()
				} else {
					c.c.Close()
				}
				if await(t, complete, "the target's connection to end") {
					t.Error("the target read a complete request although the client sent only part of the body")
				}
				if half {
					resp := c.response("POST")
					if resp.status() != 400 || !strings.Contains(strings.ToLower(string(resp.Body)), "body") {
						t.Errorf("the client got %d %q, want 400 naming the body", resp.status(), resp.Body)
					}
				}
			})
		}
	}
}
