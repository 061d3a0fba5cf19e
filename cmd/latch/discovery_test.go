package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/miekg/dns"
)

// TestServeDNSDiscovery runs `latch serve` with a group discovered through
// a real DNS server (in this process): the answer's target is registered
// and serves, its lookups are in /metrics and its row in `latch ctl
// targets`, and a SIGHUP that changes the discovery settings looks the
// name up anew while the discovered target stays.
func TestServeDNSDiscovery(t *testing.T) {
	target := backend(t, "a", 0)
	host, port, _ := net.SplitHostPort(target)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	ds := &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) },
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(r)
			rr, _ := dns.NewRR("app.test. 5 IN A " + host)
			m.Answer = []dns.RR{rr}
			w.WriteMsg(m)
		})}
	go ds.ActivateAndServe()
	<-started
	t.Cleanup(func() { ds.Shutdown() })

	a := &adminLatch{tokenFile: filepath.Join(t.TempDir(), "admin.token"), addr: freeAddr(t)}
	dir := filepath.Dir(a.tokenFile)
	a.cfgPath = filepath.Join(dir, "latch.yaml")
	if err := os.WriteFile(a.tokenFile, []byte(ctlToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := func(refresh string) string {
		cfg := configYAML(a.addr, nil, dir) + "  token_file: admin.token\n"
		return strings.Replace(cfg, "    health_check:", "    discovery:\n      dns: {name: app.test, port: "+port+
			", refresh_seconds: "+refresh+", resolver: \""+pc.LocalAddr().String()+"\"}\n    health_check:", 1)
	}
	if err := os.WriteFile(a.cfgPath, []byte(yaml("5")), 0o644); err != nil {
		t.Fatal(err)
	}
	a.start(t)
	a.waitLog(t, "DNS discovery: registered a target its name resolves to", 1)
	a.waitLog(t, "to=healthy", 1)

	resp, err := http.Get(a.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "a" {
		t.Errorf("GET through latch: %d %q, want 200 from a", resp.StatusCode, body)
	}
	if out := a.ctl(t, 0, "targets", "web"); !strings.Contains(out, target+" (dns)") || !strings.Contains(out, "# DNS A app.test: 1 targets in the last answer") {
		t.Errorf("latch ctl targets web does not list %s as discovered, under the lookup's line:\n%s", target, out)
	}
	req, _ := http.NewRequest("GET", a.admin+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+ctlToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`latch_dns_lookups_total{target_group="web"} 1`, `latch_dns_lookup_failing{target_group="web"} 0`, `latch_dns_targets{target_group="web"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics has no line %s", want)
		}
	}

	if err := os.WriteFile(a.cfgPath, []byte(yaml("6")), 0o644); err != nil {
		t.Fatal(err)
	}
	a.cmd.Process.Signal(syscall.SIGHUP)
	a.waitLog(t, "config reloaded", 1)
	if out := a.ctl(t, 0, "targets", "web"); !strings.Contains(out, target) {
		t.Errorf("after a reload, latch ctl targets web does not list %s:\n%s", target, out)
	}
	if strings.Contains(a.logs.String(), "DNS discovery: draining") {
		t.Errorf("the reload drained the discovered target:\n%s", a.logs.String())
	}
}
