package h1

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/tlsconf/tlstest"
)

func TestRelease(t *testing.T) {
	const two = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
	rd := NewReader(strings.NewReader(two), false)
	rd.Release() // nothing held: a no-op
	if rd.buf != nil {
		t.Fatal("a new Reader holds a buffer")
	}
	var req Request
	if _, err := rd.ReadRequest(&req); err != nil {
		t.Fatal(err)
	}
	if rd.Buffered() == 0 {
		t.Fatal("test bug: the second request is not buffered")
	}
	rd.Release()
	if rd.buf == nil {
		t.Fatal("Release gave the buffer back with a request buffered")
	}
	if _, err := rd.ReadRequest(&req); err != nil || string(req.Target) != "/2" {
		t.Fatalf("second request: %v, target %q", err, req.Target)
	}
	if rd.Buffered() != 0 {
		t.Fatalf("Buffered = %d after both requests", rd.Buffered())
	}
	rd.Release()
	if rd.buf != nil || rd.bufp != nil || rd.r != 0 || rd.w != 0 {
		t.Fatalf("after Release: buf %v, r %d, w %d", rd.buf != nil, rd.r, rd.w)
	}
	rd.Release() // twice is fine
	// The Reader reads on, with a new buffer.
	rd.src = strings.NewReader("GET /3 HTTP/1.1\r\nHost: a\r\n\r\n")
	if _, err := rd.ReadRequest(&req); err != nil || string(req.Target) != "/3" {
		t.Fatalf("after Release: %v, target %q", err, req.Target)
	}
	rd.Close()
	if rd.buf != nil {
		t.Fatal("Close kept the buffer")
	}
}

// TestReleaseLarge gives back the large buffer, and the next message gets a
// small one.
func TestReleaseLarge(t *testing.T) {
	rd := NewReader(strings.NewReader(headOf(30<<10)+"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), false)
	var req Request
	if _, err := rd.ReadRequest(&req); err != nil {
		t.Fatal(err)
	}
	if len(rd.buf) != MaxRequestHead+bufSize {
		t.Fatalf("buffer of %d bytes, want the large one", len(rd.buf))
	}
	if _, err := rd.ReadRequest(&req); err != nil {
		t.Fatal(err)
	}
	rd.Release()
	if rd.buf != nil {
		t.Fatal("Release kept the large buffer")
	}
	rd.src = strings.NewReader("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if _, err := rd.ReadRequest(&req); err != nil {
		t.Fatal(err)
	}
	if len(rd.buf) != bufSize {
		t.Fatalf("buffer of %d bytes after a release, want %d", len(rd.buf), bufSize)
	}
}

func TestReadBuffered(t *testing.T) {
	rd := NewReader(strings.NewReader("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: ws\r\n\r\nhello, tunnel"), false)
	p := make([]byte, 5)
	if n := rd.ReadBuffered(p); n != 0 {
		t.Fatalf("ReadBuffered before any read = %d", n)
	}
	var req Request
	if _, err := rd.ReadRequest(&req); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for {
		n := rd.ReadBuffered(p)
		if n == 0 {
			break
		}
		got = append(got, p[:n]...)
	}
	if string(got) != "hello, tunnel" || rd.Buffered() != 0 {
		t.Fatalf("ReadBuffered gave %q, %d left", got, rd.Buffered())
	}
	if n := rd.ReadBuffered(make([]byte, 100)); n != 0 {
		t.Fatalf("ReadBuffered when drained = %d", n)
	}
}

// TestHeadAcrossCompaction: a head that starts near the end of the
// buffer (behind a pipelined body) is moved to the front to be completed.
func TestHeadAcrossCompaction(t *testing.T) {
	body := strings.Repeat("b", bufSize-100)
	in := "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body +
		"GET /next HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("x", 500) + "\r\n\r\n"
	for _, feed := range feeds {
		rd, _ := newFeed(in, feed.wrap)
		var req Request
		var b Body
		if _, err := rd.ReadRequest(&req); err != nil {
			t.Fatal(err)
		}
		if err := req.Frame(); err != nil {
			t.Fatal(err)
		}
		b.Reset(rd, req.Framing, req.ContentLength, false)
		if data, err := readBody(&b, nil); err != nil || len(data) != len(body) {
			t.Fatalf("%s: body %d bytes, %v", feed.name, len(data), err)
		}
		if _, err := rd.ReadRequest(&req); err != nil {
			t.Fatalf("%s: %v", feed.name, err)
		}
		if string(req.Target) != "/next" || len(req.Fields) != 2 || len(req.Fields[1].Value) != 500 {
			t.Fatalf("%s: next request %q, fields %d", feed.name, req.Target, len(req.Fields))
		}
	}
}

// tcpPair returns both ends of a TCP connection on 127.0.0.1.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

func TestNewReaderRaw(t *testing.T) {
	_, server := tcpPair(t)
	if rd := NewReader(server, true); rd.raw == nil {
		t.Error("NewReader(TCP conn, true) reads through the conn, want raw reads")
	}
	if rd := NewReader(strings.NewReader(""), true); rd.raw != nil {
		t.Error("NewReader(strings.Reader, true) reads raw")
	}
}

// TestTCPRaw reads requests off a real socket through the raw path:
// pipelined requests, one cut across writes, a body, then the peer closing.
func TestTCPRaw(t *testing.T) {
	client, server := tcpPair(t)
	rd := NewReader(server, true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		client.Write([]byte("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhe"))
		time.Sleep(10 * time.Millisecond)
		client.Write([]byte("llo"))
		time.Sleep(10 * time.Millisecond)
		client.Write([]byte("GET /3 HT"))
		time.Sleep(10 * time.Millisecond)
		client.Write([]byte("TP/1.1\r\nHost: a\r\n\r\n"))
		time.Sleep(10 * time.Millisecond)
		client.Close()
	}()
	var req Request
	var b Body
	for _, want := range []struct{ target, body string }{{"/1", ""}, {"/2", "hello"}, {"/3", ""}} {
		started, err := rd.ReadRequest(&req)
		if err != nil || !started {
			t.Fatalf("ReadRequest = %v, %v", started, err)
		}
		if err := req.Frame(); err != nil {
			t.Fatal(err)
		}
		target := string(req.Target)
		b.Reset(rd, req.Framing, req.ContentLength, false)
		data, err := readBody(&b, nil)
		if err != nil || target != want.target || string(data) != want.body {
			t.Fatalf("request %s %q, %v; want %s %q", target, data, err, want.target, want.body)
		}
		rd.Release()
	}
	started, err := rd.ReadRequest(&req)
	if started || err != io.EOF {
		t.Fatalf("after the peer closed: %v, %v; want false, EOF", started, err)
	}
	if rd.buf != nil {
		t.Fatal("the Reader holds a buffer after EOF")
	}
	<-done
}

// TestTCPRawDeadline: a read deadline that expires while waiting for a
// request returns os.ErrDeadlineExceeded itself, not started; one that
// expires inside a head reports the head started.
func TestTCPRawDeadline(t *testing.T) {
	client, server := tcpPair(t)
	rd := NewReader(server, true)
	var req Request
	server.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	started, err := rd.ReadRequest(&req)
	if started || err != os.ErrDeadlineExceeded {
		t.Fatalf("idle deadline: %v, %v; want false, os.ErrDeadlineExceeded", started, err)
	}
	if rd.buf != nil {
		t.Fatal("the Reader holds a buffer after an idle deadline")
	}

	// The connection still works once the deadline moves.
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	client.Write([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
	if _, err := rd.ReadRequest(&req); err != nil {
		t.Fatalf("after moving the deadline: %v", err)
	}

	client.Write([]byte("GET / HT"))
	server.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	started, err = rd.ReadRequest(&req)
	if !started || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("deadline inside a head: %v, %v; want true, os.ErrDeadlineExceeded", started, err)
	}
}

// TestTCPRawReset: a peer that resets the connection while the Reader waits.
func TestTCPRawReset(t *testing.T) {
	client, server := tcpPair(t)
	rd := NewReader(server, true)
	client.SetLinger(0)
	client.Close()
	var req Request
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	started, err := rd.ReadRequest(&req)
	if started || !errors.Is(err, syscall.ECONNRESET) && err != io.EOF {
		t.Fatalf("after a reset: %v, %v; want false, ECONNRESET or EOF", started, err)
	}
	if rd.buf != nil {
		t.Fatal("the Reader holds a buffer after a reset")
	}
}

// hookedConn is a TCP connection whose raw reads call wait each time the
// socket has nothing to read, right before the runtime parks the reading
// goroutine until it has.
type hookedConn struct {
	*net.TCPConn
	wait func()
}

func (c hookedConn) SyscallConn() (syscall.RawConn, error) {
	raw, err := c.TCPConn.SyscallConn()
	return hookedRaw{raw, c.wait}, err
}

type hookedRaw struct {
	syscall.RawConn
	wait func()
}

func (r hookedRaw) Read(f func(fd uintptr) bool) error {
	return r.RawConn.Read(func(fd uintptr) bool {
		if f(fd) {
			return true
		}
		r.wait()
		return false
	})
}

// TestTCPRawWaitsUnbuffered proves that a Reader waiting for a request on
// a socket holds no buffer. The hook stops the reading goroutine at the
// moment it is about to park, and hands control to the test, which looks
// at rd.buf there (the channels order every access) before letting it wait
// and sending the request.
func TestTCPRawWaitsUnbuffered(t *testing.T) {
	client, server := tcpPair(t)
	waiting, resume := make(chan bool), make(chan struct{})
	var rd *Reader
	rd = NewReader(hookedConn{server, func() {
		waiting <- rd.buf == nil
		<-resume
	}}, true)
	if rd.raw == nil {
		t.Fatal("no raw reads on the hooked connection")
	}
	type result struct {
		target string
		err    error
	}
	results := make(chan result)
	go func() {
		var req Request
		for range 2 {
			_, err := rd.ReadRequest(&req)
			results <- result{string(req.Target), err}
			rd.Release()
		}
	}()
	for i, target := range []string{"/1", "/2"} {
		if nilInHook := <-waiting; !nilInHook {
			t.Errorf("request %d: the waiting goroutine holds a buffer", i+1)
		}
		if rd.buf != nil || rd.bufp != nil {
			t.Errorf("request %d: rd.buf is set while the Reader waits", i+1)
		}
		resume <- struct{}{}
		client.Write([]byte("GET " + target + " HTTP/1.1\r\nHost: a\r\n\r\n"))
		if r := <-results; r.err != nil || r.target != target {
			t.Fatalf("request %d: %q, %v", i+1, r.target, r.err)
		}
	}
}

// TestTCPRawWaitsUnbufferedAfterEmptyLine: RFC 9112 §2.2 lets a client send
// an empty line before a request (some send CRLF after a POST body). A
// Reader that has skipped it, with nothing else buffered, should wait for
// the request as it does otherwise: holding no buffer.
func TestTCPRawWaitsUnbufferedAfterEmptyLine(t *testing.T) {
	client, server := tcpPair(t)
	waiting, resume := make(chan bool, 1), make(chan struct{})
	var rd *Reader
	rd = NewReader(hookedConn{server, func() {
		waiting <- rd.buf == nil
		<-resume
	}}, true)
	errs := make(chan error, 1)
	go func() {
		var req Request
		_, err := rd.ReadRequest(&req)
		errs <- err
	}()
	<-waiting // the first wait, before any byte
	close(resume)
	client.Write([]byte("\r\n"))
	select {
	case nilInHook := <-waiting:
		if !nilInHook {
			t.Errorf("waiting after an empty line with a buffer")
		}
	case <-time.After(200 * time.Millisecond):
		t.Errorf("after an empty line the Reader waits in a plain Read, holding its %d-byte buffer", len(rd.buf))
	}
	client.Write([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// TestTLSWaitsUnbuffered: a TLS connection has no socket a Reader could
// wait on bare (crypto/tls reads and decrypts its records), so an idle
// Reader waits in a one-byte read, holding no buffer, and takes one only
// once that byte came; the rest of the request is read from what TLS
// decrypted. The hook sees every read the Reader makes, in its goroutine.
func TestTLSWaitsUnbuffered(t *testing.T) {
	client, server := tlsPair(t)
	type read struct {
		n       int  // len(p)
		holding bool // rd.buf != nil
	}
	reads := make(chan read, 16)
	var rd *Reader
	rd = NewReader(hookedReader{server, func(p []byte) { reads <- read{len(p), rd.buf != nil} }}, true)
	type result struct {
		target string
		err    error
	}
	results, next := make(chan result), make(chan struct{})
	go func() {
		var req Request
		for range 2 {
			err := rd.Wait()
			if err == nil {
				_, err = rd.ReadRequest(&req)
			}
			results <- result{string(req.Target), err}
			rd.Release()
			<-next
		}
	}()
	for i, target := range []string{"/1", "/2"} {
		if _, err := client.Write([]byte("GET " + target + " HTTP/1.1\r\nHost: a\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		if r := <-results; r.err != nil || r.target != target {
			t.Fatalf("request %d: %q, %v; want %q", i+1, r.target, r.err, target)
		}
		// Every read of the request was made before its result came.
		var got []read
		for len(reads) > 0 {
			got = append(got, <-reads)
		}
		// A one-byte wait holding nothing, then the rest of the record
		// into the buffer taken for it.
		if len(got) != 2 || got[0] != (read{1, false}) || got[1].n <= 1 || !got[1].holding {
			t.Errorf("request %d: reads (bytes asked, buffer held) %v, want [{1 false} {room true}]", i+1, got)
		}
		next <- struct{}{}
	}
}

// hookedReader calls hook with each read's buffer before reading.
type hookedReader struct {
	io.Reader
	hook func(p []byte)
}

func (r hookedReader) Read(p []byte) (int, error) {
	r.hook(p)
	return r.Reader.Read(p)
}

// tlsPair returns both ends of a TLS connection over loopback, its
// handshake done.
func tlsPair(t *testing.T) (client, server *tls.Conn) {
	t.Helper()
	c, s := tcpPair(t)
	ca := tlstest.NewCA(t)
	pair := ca.Issue(t, tlstest.Options{DNSNames: []string{"a.test"}})
	server = tls.Server(s, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{pair.Leaf.Raw}, PrivateKey: pair.Key}}})
	client = tls.Client(c, &tls.Config{ServerName: "a.test", RootCAs: ca.Pool})
	errs := make(chan error, 1)
	go func() { errs <- server.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	return client, server
}
