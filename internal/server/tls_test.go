package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/tlsconf/tlstest"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// tlsEnv is a test CA and a directory of certificate files: front.* (the
// default, front.example.test), a.* (a.example.test) and wild.*
// (*.wild.example.test).
type tlsEnv struct {
	ca    *tlstest.CA
	dir   string
	pairs map[string]*tlstest.Pair
}

func newTLSEnv(t *testing.T) *tlsEnv {
	t.Helper()
	e := &tlsEnv{ca: tlstest.NewCA(t), dir: t.TempDir(), pairs: map[string]*tlstest.Pair{}}
	e.issue(t, "front", "front.example.test")
	e.issue(t, "a", "a.example.test")
	e.issue(t, "wild", "*.wild.example.test")
	return e
}

// issue writes a new certificate for names to dir/name.crt and name.key.
func (e *tlsEnv) issue(t *testing.T, name string, names ...string) *tlstest.Pair {
	t.Helper()
	p := e.ca.Issue(t, tlstest.Options{DNSNames: names})
	p.Write(t, e.dir, name)
	e.pairs[name] = p
	return p
}

// yaml renders an HTTPS listener named front on 127.0.0.1:0 with the named
// certificates (the first the default) and extra listener keys (indented
// by 4), in front of a sticky group of the targets.
func (e *tlsEnv) yaml(protocol string, certs []string, extra string, targets ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listeners:\n  - name: front\n    address: 127.0.0.1:0\n    protocol: %s\n"+
		"    default_action:\n      type: forward\n      forward: { target_group: web }\n", protocol)
	if len(certs) > 0 {
		b.WriteString("    certificates:\n")
		for _, c := range certs {
			fmt.Fprintf(&b, "      - cert_file: %s\n        key_file: %s\n", filepath.Join(e.dir, c+".crt"), filepath.Join(e.dir, c+".key"))
		}
	}
	b.WriteString(extra)
	b.WriteString("target_groups:\n  - name: web\n    targets:\n")
	for _, id := range targets {
		fmt.Fprintf(&b, "      - id: %s\n", id)
	}
	b.WriteString("    health_check:\n      enabled: false\n    attributes:\n      stickiness.enabled: true\n" +
		"      deregistration_delay.timeout_seconds: 0\n")
	b.WriteString(keyYAML())
	return b.String()
}

var allCerts = []string{"front", "a", "wild"}

// startYAML runs an LB on a config; its listener is front.
func startYAML(t *testing.T, yaml string) *running {
	t.Helper()
	return startRunning(t, yaml, "", "https")
}

// client returns an HTTPS client that trusts the test CA and asks for
// serverName; h2 offers HTTP/2 by ALPN, otherwise only HTTP/1.1 is spoken.
// It keeps one connection, so that a test can tell a reused one.
func (e *tlsEnv) client(t *testing.T, h2 bool, serverName string) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: e.ca.Pool, ServerName: serverName},
		ForceAttemptHTTP2:   h2,
		MaxIdleConnsPerHost: 1,
		MaxConnsPerHost:     1,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// fetch GETs url and reports whether the connection was reused.
func fetch(t *testing.T, c *http.Client, url string) (resp *http.Response, body string, reused bool) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
	}))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", url, err)
	}
	return resp, string(b), reused
}

// dialTLS makes a TLS connection with cfg (InsecureSkipVerify unless
// RootCAs is set) and returns its state.
func dialTLS(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	if cfg.RootCAs == nil {
		cfg.InsecureSkipVerify = true
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	return c.ConnectionState(), nil
}

func serialOf(st tls.ConnectionState) *big.Int { return st.PeerCertificates[0].SerialNumber }

// TestHTTPS serves an HTTPS listener in front of plain HTTP targets, over
// HTTP/1.1 and HTTP/2, and checks what reaches the target and the cookies.
func TestHTTPS(t *testing.T) {
	be := startBackend(t, "a")
	e := newTLSEnv(t)
	r := startYAML(t, e.yaml("HTTPS", allCerts, "", be.addr))
	_, port, _ := net.SplitHostPort(r.Addr("front"))
	for _, h2 := range []bool{false, true} {
		resp, body, _ := fetch(t, e.client(t, h2, "a.example.test"), r.url+"/path?q=1")
		want := 1
		if h2 {
			want = 2
		}
		if resp.StatusCode != 200 || body != "a" || resp.ProtoMajor != want {
			t.Errorf("h2 %t: got %d %q over %s, want 200 \"a\" over HTTP/%d", h2, resp.StatusCode, body, resp.Proto, want)
		}
		if !resp.TLS.PeerCertificates[0].Equal(e.pairs["a"].Leaf) {
			t.Errorf("h2 %t: got the certificate for %v, want a.example.test's", h2, resp.TLS.PeerCertificates[0].DNSNames)
		}
		req := be.lastRequest()
		if got := req.Header.Get("X-Forwarded-Proto"); got != "https" {
			t.Errorf("h2 %t: X-Forwarded-Proto at the target: got %q, want https", h2, got)
		}
		if got := req.Header.Get("X-Forwarded-Port"); got != port {
			t.Errorf("h2 %t: X-Forwarded-Port at the target: got %q, want %s", h2, got, port)
		}
		if req.ProtoMajor != 1 || req.URL.RequestURI() != "/path?q=1" {
			t.Errorf("h2 %t: the target got %s %s, want HTTP/1.1 /path?q=1", h2, req.Proto, req.URL.RequestURI())
		}
		// As ALB: AWSALBCORS carries Secure on HTTPS; AWSALB does not,
		// unless stickiness.lb_cookie.secure asks for it.
		var main, cors *http.Cookie
		for _, c := range resp.Cookies() {
			switch c.Name {
			case "AWSALB":
				main = c
			case "AWSALBCORS":
				cors = c
			}
		}
		if main == nil || cors == nil {
			t.Fatalf("h2 %t: cookies %v, want AWSALB and AWSALBCORS", h2, resp.Header["Set-Cookie"])
		}
		if !cors.Secure || cors.SameSite != http.SameSiteNoneMode {
			t.Errorf("h2 %t: AWSALBCORS %q, want Secure and SameSite=None", h2, cors.Raw)
		}
		if main.Secure {
			t.Errorf("h2 %t: AWSALB %q, want no Secure (ALB's)", h2, main.Raw)
		}
	}

	// A client that offers no ALPN at all speaks HTTP/1.1.
	st, err := dialTLS(r.Addr("front"), &tls.Config{ServerName: "a.example.test"})
	if err != nil || st.NegotiatedProtocol != "" {
		t.Errorf("no ALPN: got %q, %v", st.NegotiatedProtocol, err)
	}
}

func TestHTTPSSNI(t *testing.T) {
	be := startBackend(t, "a")
	e := newTLSEnv(t)
	r := startYAML(t, e.yaml("HTTPS", allCerts, "", be.addr))
	for _, c := range []struct{ sni, want string }{
		{"a.example.test", "a"},
		{"A.EXAMPLE.TEST", "a"},
		{"x.wild.example.test", "wild"},
		{"wild.example.test", "front"},
		{"a.b.wild.example.test", "front"},
		{"other.test", "front"},
		{"", "front"}, // no SNI
	} {
		st, err := dialTLS(r.Addr("front"), &tls.Config{ServerName: c.sni})
		if err != nil {
			t.Errorf("SNI %q: %v", c.sni, err)
			continue
		}
		if got := st.PeerCertificates[0]; !got.Equal(e.pairs[c.want].Leaf) {
			t.Errorf("SNI %q: got the certificate for %v, want %s's", c.sni, got.DNSNames, c.want)
		}
	}
	// A verifying client is satisfied by the wildcard.
	if _, err := dialTLS(r.Addr("front"), &tls.Config{ServerName: "q.wild.example.test", RootCAs: e.ca.Pool}); err != nil {
		t.Errorf("verifying q.wild.example.test: %v", err)
	}
}

// TestHTTPSReloadCertificates renews the certificate files and reloads:
// new connections get the new certificates while keep-alive connections
// (HTTP/1.1 and HTTP/2) go on, on the same socket.
func TestHTTPSReloadCertificates(t *testing.T) {
	be := startBackend(t, "a")
	e := newTLSEnv(t)
	yaml := e.yaml("HTTPS", allCerts, "", be.addr)
	r := startYAML(t, yaml)
	addr := r.Addr("front")
	h1, h2 := e.client(t, false, "a.example.test"), e.client(t, true, "a.example.test")
	resp1, _, _ := fetch(t, h1, r.url)
	resp2, _, _ := fetch(t, h2, r.url)
	old := e.pairs["a"].Leaf

	renewed := e.issue(t, "a", "a.example.test")
	r.applyYAML(t, yaml)
	if got := r.Addr("front"); got != addr {
		t.Fatalf("the reload moved the listener from %s to %s", addr, got)
	}
	st, err := dialTLS(addr, &tls.Config{ServerName: "a.example.test", RootCAs: e.ca.Pool})
	if err != nil {
		t.Fatal(err)
	}
	if serialOf(st).Cmp(renewed.Leaf.SerialNumber) != 0 {
		t.Errorf("a new connection after the reload: got serial %v, want the renewed %v", serialOf(st), renewed.Leaf.SerialNumber)
	}
	for _, c := range []struct {
		name   string
		client *http.Client
		before *http.Response
	}{{"HTTP/1.1", h1, resp1}, {"HTTP/2", h2, resp2}} {
		resp, body, reused := fetch(t, c.client, r.url)
		if resp.StatusCode != 200 || body != "a" || !reused || resp.ProtoMajor != c.before.ProtoMajor {
			t.Errorf("%s keep-alive after the reload: got %d %q over %s, reused %t", c.name, resp.StatusCode, body, resp.Proto, reused)
		}
		if !resp.TLS.PeerCertificates[0].Equal(old) {
			t.Errorf("%s keep-alive after the reload: its certificate changed", c.name)
		}
	}

	// A reload whose files went bad between validation and apply changes
	// nothing: the error names the file, and the old certificates serve.
	e.issue(t, "a", "a.example.test")
	cfg := parse(t, yaml, r.stateDir)
	tlstest.WriteFile(t, filepath.Join(e.dir, "a.key"), e.pairs["front"].KeyPEM)
	err = r.Apply(t.Context(), cfg)
	if want := "listener front: certificate " + filepath.Join(e.dir, "a.crt") + ": the private key does not match the certificate"; err == nil || err.Error() != want {
		t.Errorf("applying a mismatched pair: got %v, want %s", err, want)
	}
	if st, err := dialTLS(addr, &tls.Config{ServerName: "a.example.test"}); err != nil || serialOf(st).Cmp(renewed.Leaf.SerialNumber) != 0 {
		t.Errorf("after the failed reload: got %v, want the certificate of the last good reload", err)
	}
}

// TestHTTPSNoHTTP2 checks routing.http2.enabled: false, and that a reload
// turns HTTP/2 on and off for new connections.
func TestHTTPSNoHTTP2(t *testing.T) {
	be := startBackend(t, "a")
	e := newTLSEnv(t)
	off := e.yaml("HTTPS", allCerts, "    attributes:\n      routing.http2.enabled: false\n", be.addr)
	r := startYAML(t, off)
	check := func(want int) {
		t.Helper()
		resp, body, _ := fetch(t, e.client(t, true, "a.example.test"), r.url)
		if resp.ProtoMajor != want || body != "a" {
			t.Errorf("a client offering h2: got %s %q, want HTTP/%d", resp.Proto, body, want)
		}
		st, err := dialTLS(r.Addr("front"), &tls.Config{NextProtos: []string{"h2", "http/1.1"}})
		wantALPN := map[int]string{1: "http/1.1", 2: "h2"}[want]
		if err != nil || st.NegotiatedProtocol != wantALPN {
			t.Errorf("ALPN [h2 http/1.1]: got %q, %v; want %q", st.NegotiatedProtocol, err, wantALPN)
		}
	}
	check(1)
	r.applyYAML(t, e.yaml("HTTPS", allCerts, "", be.addr))
	check(2)
	r.applyYAML(t, off)
	check(1)
}

// TestHTTPSPolicy checks that old TLS versions are refused, and that a
// reload changes the policy for new connections.
func TestHTTPSPolicy(t *testing.T) {
	be := startBackend(t, "a")
	e := newTLSEnv(t)
	r := startYAML(t, e.yaml("HTTPS", allCerts, "", be.addr))
	addr := r.Addr("front")
	version := func(v uint16) error {
		st, err := dialTLS(addr, &tls.Config{MinVersion: v, MaxVersion: v})
		if err == nil && st.Version != v {
			err = fmt.Errorf("negotiated %s", tls.VersionName(st.Version))
		}
		return err
	}
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		if err := version(v); err == nil {
			t.Errorf("a %s client: got a connection, want it refused", tls.VersionName(v))
		}
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		if err := version(v); err != nil {
			t.Errorf("a %s client: %v", tls.VersionName(v), err)
		}
	}
	r.applyYAML(t, e.yaml("HTTPS", allCerts, "    ssl_policy: ELBSecurityPolicy-TLS13-1-3-2021-06\n", be.addr))
	if err := version(tls.VersionTLS12); err == nil {
		t.Error("TLS 1.3 only: a TLS 1.2 client got a connection")
	}
	if err := version(tls.VersionTLS13); err != nil {
		t.Errorf("TLS 1.3 only: a TLS 1.3 client: %v", err)
	}
}

// TestHTTPSProtocolChange reloads one listener from HTTP to HTTPS and back:
// the socket stays, and each protocol is served in turn.
func TestHTTPSProtocolChange(t *testing.T) {
	be := startBackend(t, "a")
	e := newTLSEnv(t)
	httpYAML := e.yaml("HTTP", nil, "", be.addr)
	r := startYAML(t, httpYAML)
	addr := r.Addr("front")
	plain := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	t.Cleanup(plain.CloseIdleConnections)
	if res := get(t, "http://"+addr, ""); res.status != 200 || res.body != "a" {
		t.Fatalf("HTTP: got %d %q", res.status, res.body)
	}

	r.applyYAML(t, e.yaml("HTTPS", allCerts, "", be.addr))
	if got := r.Addr("front"); got != addr {
		t.Fatalf("the listener moved from %s to %s", addr, got)
	}
	resp, body, _ := fetch(t, e.client(t, true, "a.example.test"), "https://"+addr)
	if resp.StatusCode != 200 || body != "a" || be.lastRequest().Header.Get("X-Forwarded-Proto") != "https" {
		t.Errorf("HTTPS after the change: got %d %q, X-Forwarded-Proto %q", resp.StatusCode, body, be.lastRequest().Header.Get("X-Forwarded-Proto"))
	}
	if _, err := plain.Get("http://" + addr); err == nil {
		t.Error("plain HTTP to the HTTPS listener: got a response")
	}

	r.applyYAML(t, httpYAML)
	resp, err := plain.Get("http://" + addr)
	if err != nil {
		t.Fatalf("HTTP after changing back: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || be.lastRequest().Header.Get("X-Forwarded-Proto") != "http" {
		t.Errorf("HTTP after changing back: got %d, X-Forwarded-Proto %q", resp.StatusCode, be.lastRequest().Header.Get("X-Forwarded-Proto"))
	}
}

// TestHTTPSStalledHandshake checks that a client that connects and sends
// nothing holds up no one: the handshake is not the accept loop's.
func TestHTTPSStalledHandshake(t *testing.T) {
	be := startBackend(t, "a")
	e := newTLSEnv(t)
	r := startYAML(t, e.yaml("HTTPS", allCerts, "", be.addr))
	for range 3 {
		c, err := net.Dial("tcp", r.Addr("front"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	start := time.Now()
	resp, body, _ := fetch(t, e.client(t, false, "a.example.test"), r.url)
	if resp.StatusCode != 200 || body != "a" {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the request took %v behind stalled handshakes", d)
	}
}

// writeCAFile writes the test CA's certificate for tools that verify.
func (e *tlsEnv) writeCAFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(e.dir, "ca.pem")
	tlstest.WriteFile(t, path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.ca.Cert.Raw}))
	return path
}

// TestHTTPSCurl proves a client that is not Go's: curl with OpenSSL and
// nghttp2, verifying the chain against the test CA by name.
func TestHTTPSCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	be := startBackend(t, "a")
	e := newTLSEnv(t)
	r := startYAML(t, e.yaml("HTTPS", allCerts, "", be.addr))
	_, port, _ := net.SplitHostPort(r.Addr("front"))
	ca := e.writeCAFile(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--http2", "-k", "https://127.0.0.1:" + port + "/"}, "a 2"},
		{[]string{"--http1.1", "-k", "https://127.0.0.1:" + port + "/"}, "a 1.1"},
		{[]string{"--http2", "--cacert", ca, "--resolve", "x.wild.example.test:" + port + ":127.0.0.1",
			"https://x.wild.example.test:" + port + "/"}, "a 2"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		args := append([]string{"-sS", "--max-time", "10", "-w", " %{http_version}"}, c.args...)
		out, err := exec.CommandContext(ctx, curl, args...).CombinedOutput()
		cancel()
		if err != nil || string(out) != c.want {
			t.Errorf("curl %s: got %q, %v; want %q", strings.Join(c.args, " "), out, err, c.want)
		}
	}
}

// TestHTTPSH2load runs nghttp2's load generator over h2 with concurrent
// streams on a few connections.
func TestHTTPSH2load(t *testing.T) {
	h2load, err := exec.LookPath("h2load")
	if err != nil {
		t.Skip("h2load is not installed")
	}
	be := startBackend(t, "a")
	e := newTLSEnv(t)
	r := startYAML(t, e.yaml("HTTPS", allCerts, "", be.addr))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, h2load, "-n", "400", "-c", "4", "-m", "16", r.url+"/").CombinedOutput()
	if err != nil {
		t.Fatalf("h2load: %v\n%s", err, out)
	}
	for _, want := range []string{"Application protocol: h2", "400 succeeded, 0 failed, 0 errored"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("h2load output lacks %q:\n%s", want, out)
		}
	}
	if testing.Verbose() {
		os.Stderr.Write(out)
	}
}

// TestHTTPSHTTP2SlowReader: a large answer over HTTP/2 on TLS (16 MiB) to
// a client with a small receive buffer that stops reading for a while
// fills the socket again and again, and TLS records wait in latch (the
// loop's tlsWire) for it; every byte arrives, the stream's end included.
func TestHTTPSHTTP2SlowReader(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(big) }))
	t.Cleanup(ts.Close)
	e := newTLSEnv(t)
	r := startYAML(t, e.yaml("HTTPS", allCerts, "", strings.TrimPrefix(ts.URL, "http://")))
	// A small receive buffer: the socket fills at once, so that the
	// answer's last records wait in latch too.
	d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return nil
	}}
	c, err := tls.DialWithDialer(d, "tcp", r.Addr("front"), &tls.Config{RootCAs: e.ca.Pool, ServerName: "a.example.test", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	fr := http2.NewFramer(c, c)
	fr.SetMaxReadFrameSize(1 << 20)
	io.WriteString(c, http2.ClientPreface)
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
	fr.WriteWindowUpdate(0, 1<<31-1-65535)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "a.example.test"}, {":path", "/big"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
	time.Sleep(300 * time.Millisecond) // not reading: the socket fills
	got := 0
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d bytes of the body: %v", got, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.DataFrame:
			if f.StreamID == 1 {
				got += len(f.Data())
			}
			if f.StreamEnded() {
				if got != len(big) {
					t.Errorf("got %d bytes, want the target's %d", got, len(big))
				}
				return
			}
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
			t.Fatalf("got %v after %d bytes", f, got)
		}
	}
}

// TestHTTPSPriorKnowledgeHTTP2: on an HTTPS listener that takes HTTP/2
// with prior knowledge too (routing.http2.h2c.enabled), a client whose
// handshake chose no protocol and that starts with HTTP/2's preface is
// served HTTP/2 through its TLS, on an event loop as on a goroutine.
func TestHTTPSPriorKnowledgeHTTP2(t *testing.T) {
	be := startBackend(t, "a")
	e := newTLSEnv(t)
	r := startYAML(t, e.yaml("HTTPS", allCerts, "    attributes:\n      routing.http2.h2c.enabled: true\n", be.addr))
	c, err := tls.Dial("tcp", r.Addr("front"), &tls.Config{RootCAs: e.ca.Pool, ServerName: "a.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := c.ConnectionState().NegotiatedProtocol; p != "" {
		t.Fatalf("ALPN chose %q for a client that offered nothing", p)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fr := http2.NewFramer(c, c)
	io.WriteString(c, http2.ClientPreface)
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "a.example.test"}, {":path", "/"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
	var body []byte
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %q of the body: %v", body, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.DataFrame:
			body = append(body, f.Data()...)
			if f.StreamEnded() {
				if string(body) != "a" {
					t.Errorf("got body %q, want the target's %q", body, "a")
				}
				return
			}
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
			t.Fatalf("got %v", f)
		}
	}
}
