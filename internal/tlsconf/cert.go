package tlsconf

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"time"
)

// Part names the part of a certificate pair a CertError is about.
type Part int

const (
	CertFile Part = iota // the certificate chain file
	KeyFile              // the private key file
	Pair                 // the two together: the key does not match
)

// CertError is a problem with a certificate pair, with the part it is about
// so that a config file can point at the right line.
type CertError struct {
	Part Part
	Msg  string
}

func (e *CertError) Error() string { return e.Msg }

func certErrorf(part Part, format string, args ...any) *CertError {
	return &CertError{Part: part, Msg: fmt.Sprintf(format, args...)}
}

// LoadCertificate reads a PEM certificate chain (the server's certificate
// first, then its intermediates) and the PEM private key of the first, and
// checks them as ALB checks an imported certificate: both parse, the key
// matches, and the certificate has not expired at now. Its errors are
// *CertError.
func LoadCertificate(certFile, keyFile string, now time.Time) (*tls.Certificate, error) {
	certPEM, err := readPEM(certFile)
	if err != nil {
		return nil, &CertError{Part: CertFile, Msg: err.Error()}
	}
	keyPEM, err := readPEM(keyFile)
	if err != nil {
		return nil, &CertError{Part: KeyFile, Msg: err.Error()}
	}
	return ParseCertificate(certPEM, keyPEM, now)
}

// maxPEM bounds what is read of a certificate or key file: a chain is a
// few KiB, and a path such as /dev/zero must not exhaust memory.
const maxPEM = 1 << 20

func readPEM(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEM+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxPEM {
		return nil, fmt.Errorf("%s is larger than 1 MiB, too large for a PEM certificate or key", name)
	}
	return b, nil
}

// ParseCertificate is LoadCertificate on the files' contents.
func ParseCertificate(certPEM, keyPEM []byte, now time.Time) (*tls.Certificate, error) {
	var c tls.Certificate
	var chain []*x509.Certificate
	sawKey := false
	for rest := certPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		switch b.Type {
		case "CERTIFICATE":
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
			sawKey = true // a file with both (as HAProxy takes) may serve as both
			continue
		default:
			continue // e.g. the EC PARAMETERS block openssl writes
		}
		x, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, certErrorf(CertFile, "certificate %d in the file: %v", len(chain)+1, err)
		}
		chain = append(chain, x)
		c.Certificate = append(c.Certificate, b.Bytes)
	}
	if len(chain) == 0 && sawKey {
		return nil, certErrorf(CertFile, "the file holds a private key, not a certificate; are cert_file and key_file swapped?")
	}
	if len(chain) == 0 {
		return nil, certErrorf(CertFile, "the file holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	c.PrivateKey, c.Leaf = key, chain[0]
	if !samePublicKey(chain[0].PublicKey, key.Public()) {
		for i, x := range chain[1:] {
			if samePublicKey(x.PublicKey, key.Public()) {
				return nil, certErrorf(Pair, "the private key matches certificate %d of cert_file, not the first; "+
					"the server's own certificate must come first, then its intermediates", i+2)
			}
		}
		return nil, certErrorf(Pair, "the private key does not match the certificate")
	}
	if now.After(c.Leaf.NotAfter) {
		return nil, certErrorf(CertFile, "the certificate expired on %s", c.Leaf.NotAfter.UTC().Format("2006-01-02 15:04:05 UTC"))
	}
	return &c, nil
}

// parseKey reads the first private key in keyPEM: PKCS #8, PKCS #1 (RSA) or
// SEC 1 (EC), as openssl and the ACME clients write them.
func parseKey(keyPEM []byte) (crypto.Signer, error) {
	sawCert := false
	for rest := keyPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "ENCRYPTED PRIVATE KEY" || b.Headers["DEK-Info"] != "" {
			return nil, certErrorf(KeyFile, "the private key is encrypted; latch needs it unencrypted (openssl pkey -in key.pem -out plain.pem)")
		}
		var key any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(b.Bytes)
		case "CERTIFICATE":
			sawCert = true
			continue
		default:
			continue
		}
		if err != nil {
			return nil, certErrorf(KeyFile, "cannot parse the %s: %v", pemKind(b.Type), err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, certErrorf(KeyFile, "the private key is a %T, which cannot sign", key)
		}
		return signer, nil
	}
	if sawCert {
		return nil, certErrorf(KeyFile, "the file holds a certificate, not a private key; are cert_file and key_file swapped?")
	}
	return nil, certErrorf(KeyFile, "the file holds no PEM private key (-----BEGIN PRIVATE KEY-----)")
}

func pemKind(t string) string {
	switch t {
	case "RSA PRIVATE KEY":
		return "RSA private key (PKCS #1)"
	case "EC PRIVATE KEY":
		return "EC private key (SEC 1)"
	}
	return "private key (PKCS #8)"
}

func samePublicKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
