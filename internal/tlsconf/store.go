package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
)

// Store is a listener's certificates, indexed by the names they hold. It
// is immutable: a reload builds a new one.
//
// A certificate's names are its DNS subject alternative names, or its
// subject's common name when it has none. A client's SNI name picks a
// certificate holding exactly that name, else one holding the wildcard of
// its parent (*.example.com matches a.example.com, but neither
// example.com nor a.b.example.com, as RFC 6125 §6.4.3); names compare
// case-insensitively. A client that sends no SNI, or a name no certificate
// holds, gets the first certificate: ALB's default certificate.
type Store struct {
	certs    []*tls.Certificate
	exact    map[string][]*tls.Certificate
	wildcard map[string][]*tls.Certificate // by parent: "example.com" for *.example.com
}

// NewStore indexes certs; the first is the default. Each must have its
// Leaf, as the certificates of LoadCertificate and ParseCertificate do.
func NewStore(certs []*tls.Certificate) (*Store, error) {
	if len(certs) == 0 {
		return nil, errors.New("tlsconf: a store needs at least one certificate")
	}
	s := &Store{certs: certs, exact: map[string][]*tls.Certificate{}, wildcard: map[string][]*tls.Certificate{}}
	for _, c := range certs {
		for _, name := range names(c.Leaf) {
			if parent, ok := strings.CutPrefix(name, "*."); ok {
				s.wildcard[parent] = append(s.wildcard[parent], c)
			} else {
				s.exact[name] = append(s.exact[name], c)
			}
		}
	}
	return s, nil
}

// names returns the names a certificate is chosen by: its DNS SANs, or its
// common name when it has none, in lower case.
func names(leaf *x509.Certificate) []string {
	names := leaf.DNSNames
	if len(names) == 0 && leaf.Subject.CommonName != "" {
		names = []string{leaf.Subject.CommonName}
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, normalize(n))
	}
	return out
}

// normalize lowers ASCII letters only (RFC 6125 §6.4.1), as
// x509.VerifyHostname does: strings.ToLower would turn the Kelvin sign in
// a client's "\u212a.example.com" into the "k.example.com" of a
// certificate that the client can never verify for that name.
func normalize(name string) string {
	name = strings.TrimSuffix(name, ".")
	for i := 0; i < len(name); i++ {
		if c := name[i]; 'A' <= c && c <= 'Z' {
			b := []byte(name)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return name
}

// lookup returns the certificates for a server name, best first.
func (s *Store) lookup(serverName string) []*tls.Certificate {
	if serverName == "" {
		return s.certs[:1]
	}
	name := normalize(serverName)
	if cs := s.exact[name]; cs != nil {
		return cs
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		if cs := s.wildcard[name[i+1:]]; cs != nil {
			return cs
		}
	}
	return s.certs[:1]
}

// GetCertificate is tls.Config.GetCertificate. When several certificates
// hold the client's name (an ECDSA and an RSA one, say), it picks the first
// the client supports, as ALB's "smart certificate selection"; when the
// client supports none, the first, so that the handshake fails on the
// client with a clear error rather than here.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	cs := s.lookup(hello.ServerName)
	if len(cs) > 1 {
		for _, c := range cs {
			if hello.SupportsCertificate(c) == nil {
				return c, nil
			}
		}
	}
	return cs[0], nil
}
