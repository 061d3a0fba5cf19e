// Package etcdtest runs a real etcd server for tests: go.etcd.io/etcd's
// own, embedded in the test process, on 127.0.0.1 ports of its own.
package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Etcd is an embedded etcd server. Stop and Start stop it and start it
// again on the same ports and data, as an outage does.
type Etcd struct {
	t       testing.TB
	dir     string
	client  url.URL
	peer    url.URL
	e       *embed.Etcd
	running bool
}

// Start starts an etcd server for the rest of the test.
func Start(t testing.TB) *Etcd {
	t.Helper()
	e := &Etcd{t: t, dir: t.TempDir(), client: freeURL(t), peer: freeURL(t)}
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
	cfg.ListenClientUrls = []url.URL{e.client}
	cfg.AdvertiseClientUrls = []url.URL{e.client}
	cfg.ListenPeerUrls = []url.URL{e.peer}
	cfg.AdvertisePeerUrls = []url.URL{e.peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
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
	e.running = true
}

// Stop stops the server; its data stays for Start.
func (e *Etcd) Stop() {
	if !e.running {
		return
	}
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
