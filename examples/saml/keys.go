package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Keys are what the example generates at start: a certificate authority
// that the TLS certificate of latch's listener and of the IdP chains to,
// and the SAML signing keys of the IdP and of the SP (one SP, three
// instances: they share its key, as the instances of one deployment do).
type Keys struct {
	CA      *x509.Certificate
	CAPEM   []byte
	TLSCert []byte // PEM: for localhost and 127.0.0.1, signed by CA
	TLSKey  []byte // PEM
	IdPKey  *rsa.PrivateKey
	IdPCert *x509.Certificate
	SPKey   *rsa.PrivateKey
	SPCert  *x509.Certificate
}

// NewKeys generates a fresh set of Keys.
func NewKeys() (*Keys, error) {
	k := &Keys{}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "latch SAML example CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	if k.CA, err = x509.ParseCertificate(caDER); err != nil {
		return nil, err
	}
	k.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})

	tlsKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leaf := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, k.CA, &tlsKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	k.TLSCert = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})
	der, err := x509.MarshalPKCS8PrivateKey(tlsKey)
	if err != nil {
		return nil, err
	}
	k.TLSKey = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})

	// SAML keys are RSA with self-signed certificates, as the metadata of
	// most IdPs and SPs carries them.
	if k.IdPKey, k.IdPCert, err = samlKey("latch example IdP"); err != nil {
		return nil, err
	}
	if k.SPKey, k.SPCert, err = samlKey("latch example SP"); err != nil {
		return nil, err
	}
	return k, nil
}

func samlKey(name string) (*rsa.PrivateKey, *x509.Certificate, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return key, cert, err
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

// writeSPKey writes the SP's key and certificate to dir for the SP
// processes, which read them with readSPKey.
func (k *Keys) writeSPKey(dir string) error {
	der := x509.MarshalPKCS1PrivateKey(k.SPKey)
	if err := os.WriteFile(filepath.Join(dir, "sp.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "sp.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.SPCert.Raw}), 0o644)
}

func readSPKey(dir string) (*rsa.PrivateKey, *x509.Certificate, error) {
	kb, err := os.ReadFile(filepath.Join(dir, "sp.key"))
	if err != nil {
		return nil, nil, err
	}
	cb, err := os.ReadFile(filepath.Join(dir, "sp.crt"))
	if err != nil {
		return nil, nil, err
	}
	kp, _ := pem.Decode(kb)
	cp, _ := pem.Decode(cb)
	if kp == nil || cp == nil {
		return nil, nil, fmt.Errorf("%s: sp.key or sp.crt is not PEM", dir)
	}
	key, err := x509.ParsePKCS1PrivateKey(kp.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: sp.key: %w", dir, err)
	}
	cert, err := x509.ParseCertificate(cp.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: sp.crt: %w", dir, err)
	}
	return key, cert, nil
}
