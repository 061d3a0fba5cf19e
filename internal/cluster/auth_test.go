package cluster

import (
	"context"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/latch-lb/latch/internal/cluster/etcdtest"
	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/tlsconf/tlstest"
)

// openWith opens a node with the cluster section's etcd settings replaced
// by etcd, and returns it and Open's error.
func openWith(t *testing.T, etcd config.Etcd) (*Cluster, error) {
	t.Helper()
	dir := t.TempDir()
	cfg := nodeConfig(t, dir, "http://127.0.0.1:1", "a", []string{"127.0.0.1:9"})
	cfg.Cluster.Etcd = etcd
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return Open(context.Background(), Options{Config: cfg.Cluster, Node: "a", StateDir: dir, Timeout: 2 * time.Second}, cfg)
}

// TestEtcdOverMutualTLS: cluster.etcd.tls with a CA, a server name and a
// client certificate reaches an etcd that asks for one; without the client
// certificate, or trusting another CA, Open fails naming etcd.
func TestEtcdOverMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t)
	serverCert, serverKey := ca.Issue(t, tlstest.Options{DNSNames: []string{"etcd.test"}}).Write(t, dir, "server")
	clientCert, clientKey := ca.Issue(t, tlstest.Options{CommonName: "latch", Client: true}).Write(t, dir, "client")
	caFile := filepath.Join(dir, "ca.crt")
	tlstest.WriteFile(t, caFile, pemOf(ca))
	e := etcdtest.StartTLS(t, etcdtest.TLS{CertFile: serverCert, KeyFile: serverKey, CAFile: caFile, ClientCertAuth: true})
	good := config.Etcd{Endpoints: []string{e.Endpoint()}, Prefix: "/latch-tls",
		TLS: &config.EtcdTLS{CAFile: caFile, CertFile: clientCert, KeyFile: clientKey, ServerName: "etcd.test"}}
	cl, err := openWith(t, good)
	if err != nil {
		t.Fatalf("over mutual TLS: %v", err)
	}
	if ks, err := cl.Keys(context.Background()); err != nil || len(ks) != 1 {
		t.Errorf("the seeded key ring over TLS: %v, %v", ks, err)
	}
	cl.Close()

	noCert := good
	noCert.TLS = &config.EtcdTLS{CAFile: caFile, ServerName: "etcd.test"}
	if _, err := openWith(t, noCert); err == nil || !strings.Contains(err.Error(), e.Endpoint()) {
		t.Errorf("without a client certificate: %v, want a failure naming etcd", err)
	}
	otherCA := filepath.Join(dir, "other.crt")
	tlstest.WriteFile(t, otherCA, pemOf(tlstest.NewCA(t)))
	wrongCA := good
	wrongCA.TLS = &config.EtcdTLS{CAFile: otherCA, CertFile: clientCert, KeyFile: clientKey, ServerName: "etcd.test"}
	if _, err := openWith(t, wrongCA); err == nil {
		t.Error("trusting another CA: Open succeeded")
	}
}

// TestEtcdUserAndPassword: with etcd's auth on, cluster.etcd.username and
// password_file reach it; a wrong password fails Open, naming etcd.
func TestEtcdUserAndPassword(t *testing.T) {
	e := etcdtest.Start(t)
	admin, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint()}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx := context.Background()
	for _, step := range []func() error{
		func() error { _, err := admin.UserAdd(ctx, "root", "root-secret"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := admin.RoleAdd(ctx, "latch"); return err },
		func() error {
			_, err := admin.RoleGrantPermission(ctx, "latch", "/latch-auth/", clientv3.GetPrefixRangeEnd("/latch-auth/"),
				clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := admin.UserAdd(ctx, "latch", "latch-secret"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "latch", "latch"); return err },
		func() error { _, err := admin.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	pw := filepath.Join(dir, "etcd.password")
	os.WriteFile(pw, []byte("latch-secret\n"), 0o600)
	good := config.Etcd{Endpoints: []string{e.Endpoint()}, Prefix: "/latch-auth", Username: "latch", PasswordFile: pw}
	cl, err := openWith(t, good)
	if err != nil {
		t.Fatalf("with the user and its password: %v", err)
	}
	cl.Close()
	bad := filepath.Join(dir, "wrong.password")
	os.WriteFile(bad, []byte("nope\n"), 0o600)
	wrong := good
	wrong.PasswordFile = bad
	if _, err := openWith(t, wrong); err == nil || !strings.Contains(err.Error(), e.Endpoint()) {
		t.Errorf("a wrong password: %v, want a failure naming etcd", err)
	}
	// Outside its role's prefix, the user may not write: seeding fails.
	outside := good
	outside.Prefix = "/elsewhere"
	if _, err := openWith(t, outside); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("a prefix the user may not write: %v, want permission denied", err)
	}
}

func pemOf(ca *tlstest.CA) []byte {
	return pemCert(ca.Cert.Raw)
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
