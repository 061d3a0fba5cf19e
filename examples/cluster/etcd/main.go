// Command etcd runs a one-member etcd on 127.0.0.1:2379 for trying latch's
// cluster mode on one machine with nothing but Go: go.etcd.io/etcd's own
// server, embedded. Its data lives in a temporary directory, removed when
// it stops (Ctrl-C). In production, run etcd itself (three or five
// members); Debian's is `apt-get install etcd-server`.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

func main() {
	client := flag.String("listen", "127.0.0.1:2379", "client address")
	peer := flag.String("peer", "127.0.0.1:2380", "peer address")
	flag.Parse()
	dir, err := os.MkdirTemp("", "latch-example-etcd-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cu, _ := url.Parse("http://" + *client)
	pu, _ := url.Parse("http://" + *peer)
	cfg := embed.NewConfig()
	cfg.Name = "latch-example"
	cfg.Dir = dir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		log.Fatal(err)
	}
	<-e.Server.ReadyNotify()
	fmt.Printf("etcd is serving on %s (data in %s; Ctrl-C stops it and removes the data)\n", cu, dir)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sigs:
	case err := <-e.Err():
		log.Print(err)
	}
	e.Close()
}
