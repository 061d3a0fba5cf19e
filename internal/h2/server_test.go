package h2

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testServer serves internal/h2 connections on 127.0.0.1 with the echo
// handler, each connection on its own goroutine (Serve).
type testServer struct {
	t     testing.TB
	ln    net.Listener
	cfg   Config
	ctr   *Counters
	addr  string
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[*Conn]bool
	// heads counts the requests the handler got (Head calls), held the
	// streams waiting on /hold.
	heads atomic.Int64
	held  chan *Stream
	errs  chan error   // what Serve returned, for tests that look
	done  chan ErrCode // the codes of Done calls
}

// startServer starts a test server; tlsOn serves TLS with ALPN h2 and a
// generated certificate.
func startServer(t testing.TB, cfg Config, tlsOn bool) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tlsOn {
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{testCert(t)}, NextProtos: []string{"h2"}})
	}
	if cfg.Counters == nil {
		cfg.Counters = new(Counters)
	}
	srv := &testServer{t: t, ln: ln, cfg: cfg, ctr: cfg.Counters, addr: ln.Addr().String(),
		conns: map[*Conn]bool{}, held: make(chan *Stream, 1024), errs: make(chan error, 1024),
		done: make(chan ErrCode, 1<<16)}
	srv.wg.Add(1)
	go srv.accept()
	t.Cleanup(srv.close)
	return srv
}

func (srv *testServer) accept() {
	defer srv.wg.Done()
	for {
		nc, err := srv.ln.Accept()
		if err != nil {
			return
		}
		c := NewConn(&echo{srv: srv}, srv.cfg)
		srv.mu.Lock()
		srv.conns[c] = true
		srv.mu.Unlock()
		srv.wg.Add(1)
		go func() {
			defer srv.wg.Done()
			if tc, ok := nc.(*tls.Conn); ok {
				tc.SetDeadline(time.Now().Add(5 * time.Second))
				if err := tc.Handshake(); err != nil || tc.ConnectionState().NegotiatedProtocol != "h2" {
					nc.Close()
					return
				}
				tc.SetDeadline(time.Time{})
			}
			err := c.Serve(nc)
			srv.mu.Lock()
			delete(srv.conns, c)
			srv.mu.Unlock()
			select {
			case srv.errs <- err:
			default:
			}
		}()
	}
}

// shutdown sends every connection its GOAWAY.
func (srv *testServer) shutdown() {
	srv.ln.Close()
	srv.mu.Lock()
	for c := range srv.conns {
		c.Post(c.Shutdown)
	}
	srv.mu.Unlock()
}

// close stops the server and waits for its connections' goroutines.
func (srv *testServer) close() {
	srv.ln.Close()
	srv.mu.Lock()
	for c := range srv.conns {
		c.Post(func() { c.connError(NoError) })
	}
	srv.mu.Unlock()
	done := make(chan struct{})
	go func() { srv.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		srv.t.Error("the test server's connections did not end within 10 s")
	}
}

// echo answers a request: its body back, as it comes, with the request's
// trailers as the response's; a request without a body gets a greeting of
// 1 KiB, or /big?n bytes of n; /hold waits for the test to answer it.
type echo struct{ srv *testServer }

type echoStream struct {
	pending  []byte
	end      bool
	trailers []Field
	left     int // bytes of a generated body still to write
}

var greeting = func() []byte {
	b := make([]byte, 1024)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}()

// bigChunk is what a generated body is written in, as large as a
// forwarding core's reads might be.
var bigChunk = bytes.Repeat(greeting, 256)

func (e *echo) Head(s *Stream, h *Head) {
	e.srv.heads.Add(1)
	if h.Refuse != nil {
		s.WriteHead(h.Refuse.Status, []Field{{Name: []byte("Content-Type"), Value: []byte("text/plain")}}, false)
		s.Write([]byte(h.Refuse.Cause), true)
		return
	}
	path := string(h.Path)
	fields := []Field{
		{Name: []byte("X-Method"), Value: append([]byte(nil), h.Method...)},
		{Name: []byte("x-path"), Value: append([]byte(nil), h.Path...)},
		{Name: []byte("x-authority"), Value: append([]byte(nil), h.Authority...)},
		{Name: []byte("x-fields"), Value: []byte(strconv.Itoa(len(h.Fields)))},
	}
	for _, f := range h.Fields {
		if string(f.Name) == "x-echo" {
			fields = append(fields, Field{Name: []byte("x-echo"), Value: append([]byte(nil), f.Value...)})
		}
	}
	es := &echoStream{}
	s.User = es
	switch path {
	case "/hold":
		e.srv.held <- s
		return
	case "/early":
		// An answer before the body (a 413, say): the stream ends with it.
		s.WriteHead(413, nil, false)
		s.Write([]byte("too large"), true)
		return
	case "/early-data":
		es.left = -1 // answered at the first DATA frame
		return
	case "/reset":
		s.WriteHead(200, nil, false)
		s.Write([]byte("part"), false)
		s.Reset(InternalError)
		return
	}
	s.WriteHead(200, fields, false)
	if len(path) > 5 && path[:5] == "/big?" {
		es.left, _ = strconv.Atoi(path[5:])
	} else if h.End {
		es.left = len(greeting)
	}
	if h.End {
		es.end = true
		e.more(s, es)
	}
}

// more writes what the stream has for its client.
func (e *echo) more(s *Stream, es *echoStream) {
	for es.left > 0 {
		k := min(es.left, len(bigChunk))
		n, _ := s.Write(bigChunk[:k], false)
		es.left -= n
		if n < k {
			return
		}
	}
	if len(es.pending) > 0 {
		n, _ := s.Write(es.pending, false)
		s.Consume(n)
		es.pending = es.pending[n:]
		if len(es.pending) > 0 {
			return
		}
	}
	if !es.end {
		return
	}
	if len(es.trailers) > 0 {
		s.WriteTrailers(es.trailers)
		return
	}
	s.Write(nil, true)
}

func (e *echo) Data(s *Stream, p []byte, end bool) {
	es := s.User.(*echoStream)
	if es.left < 0 {
		s.WriteHead(413, nil, false)
		s.Write([]byte("too large"), true)
		return
	}
	es.pending = append(es.pending, p...)
	es.end = end
	if es.end || es.left == 0 {
		e.more(s, es)
	}
}

func (e *echo) Trailers(s *Stream, fields []Field) {
	es := s.User.(*echoStream)
	for _, f := range fields {
		es.trailers = append(es.trailers, Field{Name: append([]byte(nil), f.Name...), Value: append([]byte(nil), f.Value...)})
	}
	es.end = true
	e.more(s, es)
}

func (e *echo) Writable(s *Stream) { e.more(s, s.User.(*echoStream)) }

func (e *echo) Done(s *Stream, code ErrCode) {
	select {
	case e.srv.done <- code:
	default:
	}
}

// answerHeld answers a held stream with body, in its connection's
// goroutine.
func answerHeld(s *Stream, body string) {
	s.Conn().Post(func() {
		s.WriteHead(200, nil, false)
		s.Write([]byte(body), true)
	})
}

// testCert returns a self-signed ECDSA certificate for 127.0.0.1.
func testCert(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

var errTimeout = errors.New("timed out")
