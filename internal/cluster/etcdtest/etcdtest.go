// Package etcdtest runs a real etcd server for tests: go.etcd.io/etcd's
// own, embedded in the test process, on 127.0.0.1 ports of its own.
package etcdtest

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Etcd is an embedded etcd server. Stop and Start stop it and start it
// again on the same ports and data, as an outage does.
//
// Clients reach it through a relay on Endpoint, which Stop closes with
// every connection through it before it stops the server: embed's Close
// alone lets the watch streams it has run on for its request timeout
// (7 s), refusing only new connections and calls meanwhile, which is a
// slow drain rather than the outage a test means.
type Etcd struct {
	t       testing.TB
	dir     string
	client  url.URL // the relay's: what clients dial
	inner   url.URL // etcd's own client listener
	peer    url.URL
	e       *embed.Etcd
	relay   *relay
	running bool
	tls     *TLS // nil: plain HTTP
}

// Start starts an etcd server for the rest of the test.
func Start(t testing.TB) *Etcd {
	t.Helper()
	e := &Etcd{t: t, dir: t.TempDir(), client: freeURL(t), inner: freeURL(t), peer: freeURL(t)}
	e.Start()
	t.Cleanup(e.Stop)
	return e
}

// TLS is how StartTLS's server proves itself, and whether it asks clients
// for a certificate its CA signed.
type TLS struct {
	CertFile, KeyFile string // the server's certificate and key
	CAFile            string // the CA that signs clients' certificates
	ClientCertAuth    bool
}

// StartTLS starts an etcd server that speaks TLS to its clients
// (https://).
func StartTLS(t testing.TB, tc TLS) *Etcd {
	t.Helper()
	e := &Etcd{t: t, dir: t.TempDir(), client: freeURL(t), inner: freeURL(t), peer: freeURL(t), tls: &tc}
	e.client.Scheme, e.inner.Scheme = "https", "https"
	e.Start()
	t.Cleanup(e.Stop)
	return e
}

// Endpoint is the client URL, as cluster.etcd.endpoints names it.
func (e *Etcd) Endpoint() string { return e.client.String() }

// Start starts the server (again).
func (e *Etcd) Start() {
	e.t.Helper()
	if e.running {
		return
	}
	cfg := embed.NewConfig()
	cfg.Name = "latch-test"
	cfg.Dir = e.dir
	cfg.ListenClientUrls = []url.URL{e.inner}
	cfg.AdvertiseClientUrls = []url.URL{e.client}
	cfg.ListenPeerUrls = []url.URL{e.peer}
	cfg.AdvertisePeerUrls = []url.URL{e.peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	if e.tls != nil {
		cfg.ClientTLSInfo = transport.TLSInfo{CertFile: e.tls.CertFile, KeyFile: e.tls.KeyFile,
			TrustedCAFile: e.tls.CAFile, ClientCertAuth: e.tls.ClientCertAuth}
	}
	// Metrics and a listener for them are not wanted here.
	cfg.ListenMetricsUrls = nil
	var err error
	for range 20 {
		if e.e, err = embed.StartEtcd(cfg); err == nil {
			break
		}
		// The ports of a server just stopped may take a moment to free.
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		e.t.Fatalf("etcdtest: starting etcd: %v", err)
	}
	select {
	case <-e.e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.e.Close()
		e.t.Fatal("etcdtest: etcd not ready within 30 s")
	}
	for range 20 {
		if e.relay, err = startRelay(e.client.Host, e.inner.Host); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		e.e.Close()
		e.t.Fatalf("etcdtest: listening on %s: %v", e.client.Host, err)
	}
	e.running = true
}

// Stop stops the server at once: its clients' connections are cut, new
// ones refused. Its data stays for Start.
func (e *Etcd) Stop() {
	if !e.running {
		return
	}
	e.relay.close()
	e.e.Close()
	<-e.e.Server.StopNotify()
	e.running = false
}

func freeURL(t testing.TB) url.URL {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	u, _ := url.Parse(fmt.Sprintf("http://%s", ln.Addr()))
	return *u
}

// relay passes TCP connections from its address to etcd's, and cuts them
// all when closed.
type relay struct {
	ln    net.Listener
	to    string
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startRelay(addr, to string) (*relay, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	r := &relay{ln: ln, to: to, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

func (r *relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return // closed
		}
		up, err := net.Dial("tcp", r.to)
		if err != nil {
			c.Close()
			continue
		}
		if !r.track(c, up) {
			return
		}
		r.wg.Add(2)
		go r.pipe(c, up)
		go r.pipe(up, c)
	}
}

// track adds the pair to those close cuts, or closes them if it came
// after close.
func (r *relay) track(a, b net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conns == nil {
		a.Close()
		b.Close()
		return false
	}
	r.conns[a], r.conns[b] = struct{}{}, struct{}{}
	return true
}

func (r *relay) pipe(dst, src net.Conn) {
	defer r.wg.Done()
	io.Copy(dst, src)
	// Either side gone ends both, as one connection would.
	dst.Close()
	src.Close()
	r.mu.Lock()
	delete(r.conns, dst)
	delete(r.conns, src)
	r.mu.Unlock()
}

func (r *relay) close() {
	r.ln.Close()
	r.mu.Lock()
	for c := range r.conns {
		c.Close()
	}
	r.conns = nil
	r.mu.Unlock()
	r.wg.Wait()
}
