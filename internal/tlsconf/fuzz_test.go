package tlsconf

import (
	"crypto"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/tlsconf/tlstest"
)

// refLookup is the certificate a server name picks by the rule the
// README states, written without Store's index: the first certificate
// holding the name, compared in any ASCII case (RFC 6125 §6.4.1), else the
// first holding the wildcard of its parent, else the default (the first).
func refLookup(certs []*tls.Certificate, name string) *tls.Certificate {
	if name == "" {
		return certs[0]
	}
	holds := func(c *tls.Certificate, want string) bool {
		ns := c.Leaf.DNSNames
		if len(ns) == 0 {
			ns = []string{c.Leaf.Subject.CommonName}
		}
		for _, n := range ns {
			if asciiEqualFold(strings.TrimSuffix(n, "."), want) {
				return true
			}
		}
		return false
	}
	name = strings.TrimSuffix(name, ".")
	for _, c := range certs {
		if holds(c, name) {
			return c
		}
	}
	if first, parent, ok := strings.Cut(name, "."); ok && first != "" {
		for _, c := range certs {
			if holds(c, "*."+parent) {
				return c
			}
		}
	}
	return certs[0]
}

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// FuzzSNI checks the certificate a client's server name picks against
// refLookup. The name is the client's: crypto/tls refuses only a trailing
// dot, so any other bytes reach the store.
func FuzzSNI(f *testing.F) {
	ca := tlstest.NewCA(f)
	var certs []*tls.Certificate
	for _, o := range []tlstest.Options{
		{DNSNames: []string{"default.example.test"}},
		{DNSNames: []string{"a.example.test", "B.Example.Test"}},
		{DNSNames: []string{"*.wild.example.test", "k.example.test"}},
		{CommonName: "cn.example.test"},
		{DNSNames: []string{"*.example.test"}},
		{DNSNames: []string{"a.example.test"}}, // a second holder: never picked by name
	} {
		p := ca.Issue(f, o)
		c, err := ParseCertificate(p.CertPEM, p.KeyPEM, time.Now())
		if err != nil {
			f.Fatal(err)
		}
		certs = append(certs, c)
	}
	store, err := NewStore(certs)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"", "a.example.test", "A.EXAMPLE.TEST", "b.example.test", "x.wild.example.test",
		"wild.example.test", "a.b.wild.example.test", "cn.example.test", "z.example.test", ".example.test",
		"\u212a.example.test", "a.example.test.", "*.wild.example.test", "x.\u212aild.example.test"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got, err := store.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
		if err != nil {
			t.Fatalf("server name %q: %v", name, err)
		}
		if want := refLookup(certs, name); got != want {
			t.Fatalf("server name %q: got the certificate for %q (CN %q), want the one for %q (CN %q)", name,
				got.Leaf.DNSNames, got.Leaf.Subject.CommonName, want.Leaf.DNSNames, want.Leaf.Subject.CommonName)
		}
	})
}

// FuzzParseCertificate feeds ParseCertificate broken PEM: whatever the
// files hold, it returns a usable certificate or a *CertError that says
// which file is wrong.
func FuzzParseCertificate(f *testing.F) {
	ca := tlstest.NewCA(f)
	ec := ca.Issue(f, tlstest.Options{DNSNames: []string{"ec.test"}})
	f.Add(ec.CertPEM, ec.KeyPEM)
	f.Add(ec.KeyPEM, ec.CertPEM)
	f.Add(ec.CertPEM[:len(ec.CertPEM)/2], ec.KeyPEM)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), []byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"))
	f.Add([]byte{}, []byte("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: x\n\nAAAA\n-----END RSA PRIVATE KEY-----\n"))
	now := time.Now()
	f.Fuzz(func(t *testing.T, certPEM, keyPEM []byte) {
		c, err := ParseCertificate(certPEM, keyPEM, now)
		if err != nil {
			var ce *CertError
			if !errors.As(err, &ce) || ce.Msg == "" || ce.Part < CertFile || ce.Part > Pair || c != nil {
				t.Fatalf("got %v and error %T %v, want nil and a *CertError naming its part", c, err, err)
			}
			return
		}
		if c.Leaf == nil || len(c.Certificate) == 0 || c.PrivateKey == nil {
			t.Fatalf("a certificate without its leaf, chain or key: %+v", c)
		}
		if !samePublicKey(c.Leaf.PublicKey, c.PrivateKey.(crypto.Signer).Public()) {
			t.Fatal("the key does not match the leaf")
		}
		if now.After(c.Leaf.NotAfter) {
			t.Fatal("an expired certificate passed")
		}
	})
}
