package config

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestClusterDecode(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "latch.yaml")
	cfg := mustParse(t, minimal+`cluster:
  etcd:
    endpoints: [http://127.0.0.1:2379, https://etcd.example:2379]
    prefix: /lb/prod
    tls: {ca_file: ca.pem, cert_file: c.pem, key_file: k.pem, server_name: etcd.internal}
    username: latch
    password_file: secrets/etcd
  node_name: web-1
  key_rotation_days: 30
`, file)
	want := &Cluster{
		Etcd: Etcd{
			Endpoints: []string{"http://127.0.0.1:2379", "https://etcd.example:2379"},
			Prefix:    "/lb/prod",
			TLS: &EtcdTLS{CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "c.pem"),
				KeyFile: filepath.Join(dir, "k.pem"), ServerName: "etcd.internal"},
			Username: "latch", PasswordFile: filepath.Join(dir, "secrets/etcd"),
		},
		NodeName: "web-1", KeyRotationDays: 30,
	}
	if !reflect.DeepEqual(cfg.Cluster, want) {
		t.Fatalf("Cluster = %+v, want %+v", cfg.Cluster, want)
	}
	if cfg := mustParse(t, minimal+"cluster: {etcd: {endpoints: [http://127.0.0.1:2379]}}\n", file); cfg.Cluster.Etcd.Prefix != "/latch" {
		t.Errorf("default prefix %q, want /latch", cfg.Cluster.Etcd.Prefix)
	}
	if cfg := mustParse(t, minimal, file); cfg.Cluster != nil {
		t.Errorf("no cluster section: Cluster = %+v, want nil", cfg.Cluster)
	}
}

func TestClusterRefusals(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"cluster: {}\n", "cluster.etcd: missing"},
		{"cluster: {etcd: {}}\n", "cluster.etcd.endpoints: missing"},
		{"cluster: {etcd: {endpoints: []}}\n", "cluster.etcd.endpoints: needs at least one etcd client URL"},
		{"cluster: {etcd: {endpoints: [127.0.0.1:2379]}}\n", `cluster.etcd.endpoints[0]: "127.0.0.1:2379": the scheme must be http or https`},
		{"cluster: {etcd: {endpoints: [\"http://127.0.0.1:2379/v3\"]}}\n", `cluster.etcd.endpoints[0]: "http://127.0.0.1:2379/v3" must be scheme://host:port and nothing more`},
		{"cluster: {etcd: {endpoints: [\"https://e:2379\"]}}\n", `cluster.etcd.endpoints[0]: "https://e:2379" is https, but cluster.etcd.tls is not set`},
		{"cluster: {etcd: {endpoints: [\"http://e:2379\"], prefix: latch}}\n", `cluster.etcd.prefix: "latch" must be an absolute, clean path with no trailing slash`},
		{"cluster: {etcd: {endpoints: [\"http://e:2379\"], prefix: /latch/}}\n", `cluster.etcd.prefix: "/latch/" must be an absolute, clean path`},
		{"cluster: {etcd: {endpoints: [\"http://e:2379\"], prefix: \"\"}}\n", "cluster.etcd.prefix: must not be empty"},
		{"cluster: {etcd: {endpoints: [\"http://e:2379\"], username: u}}\n", "cluster.etcd: username and password_file go together"},
		{"cluster: {etcd: {endpoints: [\"http://e:2379\"], password: hunter2}}\n", "cluster.etcd.password: the password is never written in the config"},
		{"cluster: {etcd: {endpoints: [\"http://e:2379\"], tls: {cert_file: c.pem}}}\n", "cluster.etcd.tls: cert_file and key_file go together"},
		{"cluster: {etcd: {endpoints: [\"http://e:2379\"], tls: {}}}\n", "cluster.etcd.tls: names no file"},
		{"cluster: {etcd: {endpoints: [\"http://e:2379\"]}, node_name: \"a b\"}\n", `cluster.node_name: "a b" must be 1-64 letters, digits`},
		{"cluster: {etcd: {endpoints: [\"http://e:2379\"]}, key_rotation_days: -1}\n", "cluster.key_rotation_days: -1 is not between 0 (off) and 3650"},
		{"cluster: {etcd: {endpoints: [\"http://e:2379\"], prefx: /a}}\n", `cluster.etcd.prefx: unknown key; did you mean "prefix"?`},
		{"cluster: {etcd: {endpoints: [\"http://e:2379\"]}, nodename: a}\n", `cluster.nodename: unknown key; did you mean "node_name"?`},
	}
	for _, c := range cases {
		_, err := Parse([]byte(minimal+c.yaml), "latch.yaml")
		if err == nil {
			t.Errorf("%q: no error, want %s", c.yaml, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got\n%v\nwant a line with %s", c.yaml, err, c.want)
		}
	}
}

// TestClusterIsTheFiles: a runtime change cannot set or change cluster.
func TestClusterIsTheFiles(t *testing.T) {
	running := mustParse(t, minimal, "latch.yaml")
	next := running.Clone()
	next.Cluster = &Cluster{Etcd: Etcd{Endpoints: []string{"http://127.0.0.1:2379"}, Prefix: "/latch"}}
	err := CheckRuntimeChange(running, next)
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 1 || ps[0].Path != "cluster" {
		t.Fatalf("got %v, want one problem at cluster", err)
	}
}

func TestClusterNode(t *testing.T) {
	for _, c := range []struct {
		name, host, port, want string
	}{
		{"node-a", "h", "9901", "node-a"},
		{"", "web1", "9901", "web1-9901"},
		{"", "web1.example.com", "", "web1.example.com"},
		{"", "we b/1", "0", "we-b-1-0"},
	} {
		cl := &Cluster{NodeName: c.name}
		if got := cl.Node(c.host, c.port); got != c.want {
			t.Errorf("Node(%q, %q) with node_name %q = %q, want %q", c.host, c.port, c.name, got, c.want)
		}
	}
}
