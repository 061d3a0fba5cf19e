package tlsconf

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/tlsconf/tlstest"
)

// handshake runs a real TLS handshake between srv and a client with cfg
// over an in-memory connection, and returns the client's view of it.
func handshake(t *testing.T, srv *Server, cfg *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	cc, sc := net.Pipe()
	defer cc.Close()
	defer sc.Close()
	deadline := time.Now().Add(10 * time.Second)
	cc.SetDeadline(deadline)
	sc.SetDeadline(deadline)
	serr := make(chan error, 1)
	go func() {
		s := tls.Server(sc, srv.Config())
		err := s.Handshake()
		if err == nil {
			// Let a TLS 1.3 client read its session ticket.
			_, err = s.Write([]byte("x"))
		}
		serr <- err
		sc.Close()
	}()
	c := tls.Client(cc, cfg)
	err := c.Handshake()
	if err == nil {
		var b [1]byte
		_, err = c.Read(b[:])
	}
	<-serr
	return c.ConnectionState(), err
}

// fixture is a CA and certificates for a few names.
type fixture struct {
	ca                     *tlstest.CA
	def, exact, wild, cn   *tlstest.Pair
	defCert, exactC, wildC *tls.Certificate
	cnCert                 *tls.Certificate
	store                  *Store
	policy                 Policy
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{ca: tlstest.NewCA(t)}
	f.def = f.ca.Issue(t, tlstest.Options{DNSNames: []string{"default.example.test"}})
	f.exact = f.ca.Issue(t, tlstest.Options{DNSNames: []string{"a.example.test", "b.example.test"}})
	f.wild = f.ca.Issue(t, tlstest.Options{DNSNames: []string{"*.wild.example.test"}})
	// A common name is a name only when there are no SANs.
	f.cn = f.ca.Issue(t, tlstest.Options{CommonName: "cn.example.test"})
	f.defCert, f.exactC, f.wildC, f.cnCert = load(t, f.def), load(t, f.exact), load(t, f.wild), load(t, f.cn)
	var err error
	if f.store, err = NewStore([]*tls.Certificate{f.defCert, f.exactC, f.wildC, f.cnCert}); err != nil {
		t.Fatal(err)
	}
	if f.policy, err = LookupPolicy(DefaultPolicy); err != nil {
		t.Fatal(err)
	}
	return f
}

func load(t *testing.T, p *tlstest.Pair) *tls.Certificate {
	t.Helper()
	c, err := ParseCertificate(p.CertPEM, p.KeyPEM, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) client(name string) *tls.Config {
	return &tls.Config{ServerName: name, InsecureSkipVerify: true}
}

func TestSNI(t *testing.T) {
	f := newFixture(t)
	srv := NewServer(Settings{Certificates: f.store, Policy: f.policy, HTTP2: true})
	for _, c := range []struct {
		sni  string
		want *tlstest.Pair
	}{
		{"a.example.test", f.exact},
		{"b.example.test", f.exact},
		{"A.Example.TEST", f.exact},
		{"x.wild.example.test", f.wild},
		{"X-1.WILD.example.test", f.wild},
		{"wild.example.test", f.def},     // the wildcard does not match its parent
		{"a.b.wild.example.test", f.def}, // nor two labels
		{"cn.example.test", f.cn},        // CN without SANs
		{"default.example.test", f.def},
		{"unknown.test", f.def},
		{"", f.def}, // no SNI
	} {
		st, err := handshake(t, srv, f.client(c.sni))
		if err != nil {
			t.Errorf("SNI %q: %v", c.sni, err)
			continue
		}
		if got := st.PeerCertificates[0]; !got.Equal(c.want.Leaf) {
			t.Errorf("SNI %q: got the certificate for %v (CN %q), want %v (CN %q)", c.sni,
				got.DNSNames, got.Subject.CommonName, c.want.Leaf.DNSNames, c.want.Leaf.Subject.CommonName)
		}
	}

	// A client that verifies gets a chain its roots accept.
	_, err := handshake(t, srv, &tls.Config{ServerName: "q.wild.example.test", RootCAs: f.ca.Pool})
	if err != nil {
		t.Errorf("verified handshake for a wildcard name: %v", err)
	}
}

func TestSANOverridesCN(t *testing.T) {
	ca := tlstest.NewCA(t)
	def := load(t, ca.Issue(t, tlstest.Options{DNSNames: []string{"default.test"}}))
	both := ca.Issue(t, tlstest.Options{CommonName: "cn.test", DNSNames: []string{"san.test"}})
	s, err := NewStore([]*tls.Certificate{def, load(t, both)})
	if err != nil {
		t.Fatal(err)
	}
	if got := pick(t, s, "san.test"); !got.Leaf.Equal(both.Leaf) {
		t.Errorf("san.test: got %v, want the SAN certificate", got.Leaf.DNSNames)
	}
	if got := pick(t, s, "cn.test"); got != def {
		t.Errorf("cn.test: got %v, want the default: a CN is ignored when SANs are present", got.Leaf.DNSNames)
	}
	if got := names(both.Leaf); !slices.Equal(got, []string{"san.test"}) {
		t.Errorf("names: got %q, want [san.test]", got)
	}
}

// TestSNIFoldsASCIIOnly: names compare in any ASCII case only. The Kelvin
// sign (U+212A) lowers to "k" in Unicode, so strings.ToLower picked the
// certificate for k.example.test for a client asking for
// "\u212a.example.test", which that certificate can never verify for
// (found by FuzzSNI); the name's parent's wildcard holds it instead.
func TestSNIFoldsASCIIOnly(t *testing.T) {
	ca := tlstest.NewCA(t)
	def := load(t, ca.Issue(t, tlstest.Options{DNSNames: []string{"default.test"}}))
	k := load(t, ca.Issue(t, tlstest.Options{DNSNames: []string{"k.example.test"}}))
	wild := load(t, ca.Issue(t, tlstest.Options{DNSNames: []string{"*.example.test"}}))
	s, err := NewStore([]*tls.Certificate{def, k, wild})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		want *tls.Certificate
	}{
		{"k.example.test", k},
		{"K.EXAMPLE.TEST", k},
		{"\u212a.example.test", wild},
		{"\u212a.EXAMPLE.test", wild},
	} {
		if got := pick(t, s, c.name); got != c.want {
			t.Errorf("%q: got the certificate for %v, want the one for %v", c.name, got.Leaf.DNSNames, c.want.Leaf.DNSNames)
		}
	}
}

func pick(t *testing.T, s *Store, name string) *tls.Certificate {
	t.Helper()
	c, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestDualCertificates checks ALB's smart selection: of two certificates
// for one name, a client gets one it supports.
func TestDualCertificates(t *testing.T) {
	ca := tlstest.NewCA(t)
	ec := ca.Issue(t, tlstest.Options{DNSNames: []string{"dual.test"}})
	rsa := ca.Issue(t, tlstest.Options{DNSNames: []string{"dual.test"}, RSA: true})
	s, err := NewStore([]*tls.Certificate{load(t, ec), load(t, rsa)})
	if err != nil {
		t.Fatal(err)
	}
	pol, _ := LookupPolicy(DefaultPolicy)
	srv := NewServer(Settings{Certificates: s, Policy: pol})
	st, err := handshake(t, srv, &tls.Config{ServerName: "dual.test", InsecureSkipVerify: true})
	if err != nil || !st.PeerCertificates[0].Equal(ec.Leaf) {
		t.Errorf("a modern client: got %v, want the ECDSA certificate (listed first)", err)
	}
	rsaOnly := &tls.Config{ServerName: "dual.test", InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}
	st, err = handshake(t, srv, rsaOnly)
	if err != nil || !st.PeerCertificates[0].Equal(rsa.Leaf) {
		t.Errorf("an RSA-only TLS 1.2 client: got %v, want the RSA certificate", err)
	}
}

func TestNewStoreEmpty(t *testing.T) {
	if _, err := NewStore(nil); err == nil {
		t.Error("NewStore(nil): got no error")
	}
}

func TestALPN(t *testing.T) {
	f := newFixture(t)
	srv := NewServer(Settings{Certificates: f.store, Policy: f.policy, HTTP2: true})
	for _, c := range []struct {
		http2  bool
		client []string
		want   string
	}{
		{true, []string{"h2", "http/1.1"}, "h2"},
		{true, []string{"http/1.1"}, "http/1.1"},
		{true, nil, ""},
		{false, []string{"h2", "http/1.1"}, "http/1.1"},
		{false, nil, ""},
	} {
		srv.Update(Settings{Certificates: f.store, Policy: f.policy, HTTP2: c.http2})
		cfg := f.client("a.example.test")
		cfg.NextProtos = c.client
		st, err := handshake(t, srv, cfg)
		if err != nil {
			t.Errorf("HTTP2 %t, client %q: %v", c.http2, c.client, err)
			continue
		}
		if st.NegotiatedProtocol != c.want {
			t.Errorf("HTTP2 %t, client %q: got %q, want %q", c.http2, c.client, st.NegotiatedProtocol, c.want)
		}
	}
}

func TestPolicyVersions(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		policy string
		client uint16 // the client's only version
		want   uint16 // 0: refused
	}{
		{DefaultPolicy, tls.VersionTLS10, 0},
		{DefaultPolicy, tls.VersionTLS11, 0},
		{DefaultPolicy, tls.VersionTLS12, tls.VersionTLS12},
		{DefaultPolicy, tls.VersionTLS13, tls.VersionTLS13},
		{"ELBSecurityPolicy-TLS13-1-3-2021-06", tls.VersionTLS11, 0},
		{"ELBSecurityPolicy-TLS13-1-3-2021-06", tls.VersionTLS12, 0},
		{"ELBSecurityPolicy-TLS13-1-3-2021-06", tls.VersionTLS13, tls.VersionTLS13},
		{"ELBSecurityPolicy-TLS13-1-2-Res-2021-06", tls.VersionTLS12, tls.VersionTLS12},
		{"ELBSecurityPolicy-TLS-1-2-2017-01", tls.VersionTLS13, 0}, // TLS 1.2 only, as ALB
		{"ELBSecurityPolicy-TLS-1-2-2017-01", tls.VersionTLS12, tls.VersionTLS12},
		{"ELBSecurityPolicy-FS-1-2-Res-2020-10", tls.VersionTLS11, 0},
	} {
		p, err := LookupPolicy(c.policy)
		if err != nil {
			t.Fatal(err)
		}
		srv := NewServer(Settings{Certificates: f.store, Policy: p})
		cfg := f.client("a.example.test")
		cfg.MinVersion, cfg.MaxVersion = c.client, c.client
		st, err := handshake(t, srv, cfg)
		switch {
		case c.want == 0 && err == nil:
			t.Errorf("%s, a TLS %s client: got a connection (%s), want it refused", c.policy, tls.VersionName(c.client), tls.VersionName(st.Version))
		case c.want != 0 && err != nil:
			t.Errorf("%s, a TLS %s client: %v", c.policy, tls.VersionName(c.client), err)
		case c.want != 0 && st.Version != c.want:
			t.Errorf("%s, a TLS %s client: got %s", c.policy, tls.VersionName(c.client), tls.VersionName(st.Version))
		}
	}

	// A client with TLS 1.2 and 1.3 gets 1.2 from a policy from before 1.3.
	p, _ := LookupPolicy("ELBSecurityPolicy-TLS-1-2-Ext-2018-06")
	st, err := handshake(t, NewServer(Settings{Certificates: f.store, Policy: p}), f.client("a.example.test"))
	if err != nil || st.Version != tls.VersionTLS12 {
		t.Errorf("TLS-1-2-Ext-2018-06 and a modern client: got %s, %v; want TLS 1.2", tls.VersionName(st.Version), err)
	}
}

func TestPolicyCipherSuites(t *testing.T) {
	f := newFixture(t)
	cbc := []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
	for _, c := range []struct {
		policy string
		ok     bool
	}{
		{DefaultPolicy, false},
		{"ELBSecurityPolicy-TLS13-1-2-Res-2021-06", false},
		{"ELBSecurityPolicy-TLS13-1-2-Ext1-2021-06", true},
		{"ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06", true},
		{"ELBSecurityPolicy-TLS-1-2-Ext-2018-06", true},
	} {
		p, _ := LookupPolicy(c.policy)
		cfg := f.client("a.example.test")
		cfg.MaxVersion, cfg.CipherSuites = tls.VersionTLS12, cbc
		_, err := handshake(t, NewServer(Settings{Certificates: f.store, Policy: p}), cfg)
		if (err == nil) != c.ok {
			t.Errorf("%s, a client with only ECDHE-ECDSA-AES128-SHA: got %v, want success %t", c.policy, err, c.ok)
		}
	}
}

func TestPolicyTable(t *testing.T) {
	secure := map[uint16]bool{}
	for _, s := range tls.CipherSuites() {
		secure[s.ID] = true
	}
	names := PolicyNames()
	if !slices.Contains(names, DefaultPolicy) {
		t.Errorf("the default policy %s is not in the table", DefaultPolicy)
	}
	for _, name := range names {
		p, err := LookupPolicy(name)
		if err != nil || p.Name != name {
			t.Errorf("LookupPolicy(%s): %+v, %v", name, p, err)
		}
		if p.MinVersion < tls.VersionTLS12 {
			t.Errorf("%s: MinVersion %s, below TLS 1.2", name, tls.VersionName(p.MinVersion))
		}
		if (p.MinVersion == tls.VersionTLS13) != (p.CipherSuites == nil) {
			t.Errorf("%s: TLS 1.2 suites %v with MinVersion %s", name, p.CipherSuites, tls.VersionName(p.MinVersion))
		}
		for _, s := range p.CipherSuites {
			if !secure[s] {
				t.Errorf("%s: %s is not among Go's secure suites", name, tls.CipherSuiteName(s))
			}
		}
		if _, old := refused[name]; old {
			t.Errorf("%s is both accepted and refused", name)
		}
		if strings.Contains(name, "TLS13") != (p.MaxVersion == 0) {
			t.Errorf("%s: MaxVersion %d", name, p.MaxVersion)
		}
	}
}

func TestLookupPolicyErrors(t *testing.T) {
	for _, c := range []struct {
		name, want string
	}{
		{"ELBSecurityPolicy-2016-08", "ELBSecurityPolicy-2016-08 allows TLS 1.0, and latch accepts only policies with TLS 1.2 or later " +
			"(RFC 8996 deprecates TLS 1.0 and 1.1); ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06 keeps the most TLS 1.2 ciphers"},
		{"ELBSecurityPolicy-TLS13-1-1-2021-06", "ELBSecurityPolicy-TLS13-1-1-2021-06 allows TLS 1.1, and latch accepts only policies with TLS 1.2 or later " +
			"(RFC 8996 deprecates TLS 1.0 and 1.1); ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06 keeps the most TLS 1.2 ciphers"},
		{"ELBSecurityPolicy-TLS13-1-2-Res-FIPS-2023-04", "ELBSecurityPolicy-TLS13-1-2-Res-FIPS-2023-04 is a FIPS policy, which latch does not support yet"},
	} {
		_, err := LookupPolicy(c.name)
		if err == nil || err.Error() != c.want {
			t.Errorf("LookupPolicy(%s):\ngot  %v\nwant %s", c.name, err, c.want)
		}
		if errors.Is(err, ErrUnknownPolicy) {
			t.Errorf("LookupPolicy(%s): a known policy reported as unknown", c.name)
		}
	}
	for _, name := range []string{"", "TLS13-1-2-2021-06", "elbsecuritypolicy-tls13-1-2-2021-06"} {
		if _, err := LookupPolicy(name); !errors.Is(err, ErrUnknownPolicy) {
			t.Errorf("LookupPolicy(%q): got %v, want ErrUnknownPolicy", name, err)
		}
	}
}

// TestUpdate checks that new handshakes see new certificates while a
// connection made before keeps working, and that sessions resume across
// an update (the ticket keys are the Server's).
func TestUpdate(t *testing.T) {
	f := newFixture(t)
	srv := NewServer(Settings{Certificates: f.store, Policy: f.policy, HTTP2: true})

	// An established connection, over TCP so that it outlives the update.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := tls.Server(c, srv.Config())
				buf := make([]byte, 64)
				for {
					n, err := tc.Read(buf)
					if err != nil {
						return
					}
					tc.Write(buf[:n])
				}
			}()
		}
	}()
	cache := tls.NewLRUClientSessionCache(8)
	dial := func() *tls.Conn {
		t.Helper()
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: "a.example.test", RootCAs: f.ca.Pool, ClientSessionCache: cache})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	echo := func(c *tls.Conn, s string) {
		t.Helper()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(s))
		if _, err := c.Read(buf); err != nil || string(buf) != s {
			t.Fatalf("echo: got %q, %v", buf, err)
		}
	}
	old := dial()
	defer old.Close()
	echo(old, "before")

	renewed := f.ca.Issue(t, tlstest.Options{DNSNames: []string{"a.example.test"}})
	store, err := NewStore([]*tls.Certificate{f.defCert, load(t, renewed)})
	if err != nil {
		t.Fatal(err)
	}
	srv.Update(Settings{Certificates: store, Policy: f.policy, HTTP2: true})

	echo(old, "after")
	if got := old.ConnectionState().PeerCertificates[0]; !got.Equal(f.exact.Leaf) {
		t.Error("the established connection's certificate changed")
	}
	// A resumed session presents no certificate; a fresh one the new one.
	fresh, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: "a.example.test", RootCAs: f.ca.Pool})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if got := fresh.ConnectionState().PeerCertificates[0]; !got.Equal(renewed.Leaf) {
		t.Errorf("a new connection after the update: got serial %v, want the renewed certificate's %v", got.SerialNumber, renewed.Leaf.SerialNumber)
	}
	resumed := dial()
	defer resumed.Close()
	echo(resumed, "resumed")
	if !resumed.ConnectionState().DidResume {
		t.Error("a session from before the update did not resume")
	}
}

func TestParseCertificate(t *testing.T) {
	ca := tlstest.NewCA(t)
	good := ca.Issue(t, tlstest.Options{DNSNames: []string{"a.test"}})
	other := ca.Issue(t, tlstest.Options{DNSNames: []string{"b.test"}})
	rsa := ca.Issue(t, tlstest.Options{DNSNames: []string{"r.test"}, RSA: true})
	expired := ca.Issue(t, tlstest.Options{DNSNames: []string{"old.test"},
		NotBefore: time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)})
	now := time.Now()

	pkcs1 := pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey(t, rsa)))
	sec1, err := x509.MarshalECPrivateKey(ecKey(t, good))
	if err != nil {
		t.Fatal(err)
	}
	ecPEM := pemBlock("EC PRIVATE KEY", sec1)
	leafOnly := good.CertPEM[:strings.Index(string(good.CertPEM), "-----END CERTIFICATE-----")+len("-----END CERTIFICATE-----\n")]
	reversed := append(pemBlock("CERTIFICATE", ca.Cert.Raw), leafOnly...)
	combined := append(append([]byte{}, good.CertPEM...), good.KeyPEM...)

	for _, c := range []struct {
		name      string
		cert, key []byte
		part      Part
		want      string // "" for success
	}{
		{"PKCS #8 EC", good.CertPEM, good.KeyPEM, 0, ""},
		{"PKCS #1 RSA", rsa.CertPEM, pkcs1, 0, ""},
		{"SEC 1 EC", good.CertPEM, ecPEM, 0, ""},
		{"leaf only", leafOnly, good.KeyPEM, 0, ""},
		{"one file for both", combined, combined, 0, ""},
		{"no PEM in the certificate", []byte("hello"), good.KeyPEM, CertFile, "the file holds no PEM certificate (-----BEGIN CERTIFICATE-----)"},
		{"swapped", good.KeyPEM, good.CertPEM, CertFile, "the file holds a private key, not a certificate; are cert_file and key_file swapped?"},
		{"a certificate for a key", good.CertPEM, other.CertPEM, KeyFile, "the file holds a certificate, not a private key; are cert_file and key_file swapped?"},
		{"bad DER", pemBlock("CERTIFICATE", []byte{0x30, 0x03, 1, 2, 3}), good.KeyPEM, CertFile, "certificate 1 in the file: x509: malformed"},
		{"no PEM in the key", good.CertPEM, []byte("-----BEGIN NOTHING-----\n"), KeyFile, "the file holds no PEM private key (-----BEGIN PRIVATE KEY-----)"},
		{"bad key", good.CertPEM, pemBlock("PRIVATE KEY", []byte{1, 2, 3}), KeyFile, "cannot parse the private key (PKCS #8): "},
		{"encrypted key", good.CertPEM, pemBlock("ENCRYPTED PRIVATE KEY", []byte{1}), KeyFile,
			"the private key is encrypted; latch needs it unencrypted (openssl pkey -in key.pem -out plain.pem)"},
		{"another certificate's key", good.CertPEM, other.KeyPEM, Pair, "the private key does not match the certificate"},
		{"chain in the wrong order", reversed, good.KeyPEM, Pair,
			"the private key matches certificate 2 of cert_file, not the first; the server's own certificate must come first, then its intermediates"},
		{"expired", expired.CertPEM, expired.KeyPEM, CertFile, "the certificate expired on 2020-01-02 03:04:05 UTC"},
	} {
		cert, err := ParseCertificate(c.cert, c.key, now)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			} else if cert.Leaf == nil || len(cert.Certificate) == 0 {
				t.Errorf("%s: no leaf or chain", c.name)
			}
			continue
		}
		var ce *CertError
		if !errors.As(err, &ce) {
			t.Errorf("%s: got %v, want a CertError", c.name, err)
			continue
		}
		if ce.Part != c.part || !strings.HasPrefix(ce.Msg, c.want) {
			t.Errorf("%s:\ngot  part %d: %s\nwant part %d: %s", c.name, ce.Part, ce.Msg, c.part, c.want)
		}
	}
}

func TestLoadCertificateFiles(t *testing.T) {
	dir := t.TempDir()
	p := tlstest.NewCA(t).Issue(t, tlstest.Options{DNSNames: []string{"a.test"}})
	certFile, keyFile := p.Write(t, dir, "a")
	if _, err := LoadCertificate(certFile, keyFile, time.Now()); err != nil {
		t.Fatal(err)
	}
	var ce *CertError
	_, err := LoadCertificate(dir+"/missing.crt", keyFile, time.Now())
	if !errors.As(err, &ce) || ce.Part != CertFile || ce.Msg != "open "+dir+"/missing.crt: no such file or directory" {
		t.Errorf("a missing certificate file: got %#v", err)
	}
	_, err = LoadCertificate("/dev/zero", keyFile, time.Now())
	if !errors.As(err, &ce) || ce.Part != CertFile || ce.Msg != "/dev/zero is larger than 1 MiB, too large for a PEM certificate or key" {
		t.Errorf("an endless file: got %#v", err)
	}
	_, err = LoadCertificate(certFile, dir+"/missing.key", time.Now())
	if !errors.As(err, &ce) || ce.Part != KeyFile || ce.Msg != "open "+dir+"/missing.key: no such file or directory" {
		t.Errorf("a missing key file: got %#v", err)
	}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func rsaKey(t *testing.T, p *tlstest.Pair) *rsa.PrivateKey {
	t.Helper()
	k, ok := p.Key.(*rsa.PrivateKey)
	if !ok {
		t.Fatalf("key %T, want RSA", p.Key)
	}
	return k
}

func ecKey(t *testing.T, p *tlstest.Pair) *ecdsa.PrivateKey {
	t.Helper()
	k, ok := p.Key.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("key %T, want ECDSA", p.Key)
	}
	return k
}
