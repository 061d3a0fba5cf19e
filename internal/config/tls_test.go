package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/tlsconf"
	"github.com/latch-lb/latch/internal/tlsconf/tlstest"
)

// httpsBase is an HTTPS listener on lines 5-11, with its certificates (or
// other keys, indented by 4) appended from line 12.
const httpsBase = `target_groups:
  - name: web
    targets:
      - id: 127.0.0.1:9001
listeners:
  - name: public
    address: 127.0.0.1:8443
    protocol: HTTPS
    default_action:
      type: forward
      forward: {target_group: web}
`

// goodCert is the certificates block of a valid HTTPS listener, lines 12-14.
const goodCert = `    certificates:
      - cert_file: certs/good.crt
        key_file: certs/good.key
`

// certDir writes the certificate files the TLS tests name, under dir/certs.
func certDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	if err := os.Mkdir(certs, 0o700); err != nil {
		t.Fatal(err)
	}
	ca := tlstest.NewCA(t)
	ca.Issue(t, tlstest.Options{DNSNames: []string{"a.example.test"}}).Write(t, certs, "good")
	ca.Issue(t, tlstest.Options{DNSNames: []string{"*.example.test"}}).Write(t, certs, "wild")
	other := ca.Issue(t, tlstest.Options{DNSNames: []string{"b.example.test"}})
	tlstest.WriteFile(t, filepath.Join(certs, "other.key"), other.KeyPEM)
	ca.Issue(t, tlstest.Options{DNSNames: []string{"old.example.test"},
		NotBefore: time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:  time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)}).Write(t, certs, "expired")
	tlstest.WriteFile(t, filepath.Join(certs, "text.crt"), []byte("not a certificate\n"))
	return dir
}

func TestParseHTTPS(t *testing.T) {
	dir := certDir(t)
	abs := filepath.Join(dir, "certs")
	cfg := mustParse(t, httpsBase+`    ssl_policy: ELBSecurityPolicy-TLS13-1-3-2021-06
    certificates:
      - cert_file: certs/good.crt
        key_file: ./certs/good.key
      - {cert_file: `+abs+`/wild.crt, key_file: `+abs+`/wild.key}
    attributes:
      routing.http2.enabled: false
`, filepath.Join(dir, "latch.yaml"))
	l := cfg.Listeners[0]
	want := []Certificate{
		{CertFile: filepath.Join(abs, "good.crt"), KeyFile: filepath.Join(abs, "good.key")},
		{CertFile: filepath.Join(abs, "wild.crt"), KeyFile: filepath.Join(abs, "wild.key")},
	}
	if l.Protocol != HTTPS || !reflect.DeepEqual(l.Certificates, want) {
		t.Errorf("got protocol %s, certificates %+v;\nwant HTTPS, %+v", l.Protocol, l.Certificates, want)
	}
	if l.SSLPolicy != "ELBSecurityPolicy-TLS13-1-3-2021-06" || l.HTTP2 {
		t.Errorf("got ssl_policy %q, HTTP2 %t; want ELBSecurityPolicy-TLS13-1-3-2021-06, false", l.SSLPolicy, l.HTTP2)
	}

	// The defaults: ALB's recommended policy, HTTP/2 on.
	l = mustParse(t, httpsBase+goodCert, filepath.Join(dir, "latch.yaml")).Listeners[0]
	if l.SSLPolicy != tlsconf.DefaultPolicy || !l.HTTP2 {
		t.Errorf("defaults: got ssl_policy %q, HTTP2 %t; want %s, true", l.SSLPolicy, l.HTTP2, tlsconf.DefaultPolicy)
	}

	// Every policy latch knows parses.
	for _, name := range tlsconf.PolicyNames() {
		l = mustParse(t, httpsBase+goodCert+"    ssl_policy: "+name+"\n", filepath.Join(dir, "latch.yaml")).Listeners[0]
		if l.SSLPolicy != name {
			t.Errorf("ssl_policy %s: got %q", name, l.SSLPolicy)
		}
	}
}

// checkIn is checkExact for a config file in dir, so that relative
// certificate paths resolve there.
func checkIn(t *testing.T, dir, data string, want []wantProblem) {
	t.Helper()
	file := filepath.Join(dir, "latch.yaml")
	cfg, err := Parse([]byte(data), file)
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("got error %v, want %d problems", err, len(want))
	}
	if cfg != nil {
		t.Errorf("got a config with an error, want nil")
	}
	if len(ps) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(want), err)
	}
	for i, w := range want {
		if p := ps[i]; p.File != file || p.Line != w.line || p.Path != w.path || p.Msg != w.msg {
			t.Errorf("problem %d:\ngot  %d %s: %s\nwant %d %s: %s", i, p.Line, p.Path, p.Msg, w.line, w.path, w.msg)
		}
	}
}

func TestParseHTTPSProblems(t *testing.T) {
	dir := certDir(t)
	const l0 = "listeners[0]"
	const c0 = l0 + ".certificates[0]"
	cert := func(certFile, keyFile string) string {
		return "    certificates:\n      - cert_file: " + certFile + "\n        key_file: " + keyFile + "\n"
	}
	http := strings.Replace(httpsBase, "protocol: HTTPS", "protocol: HTTP", 1)
	refused := "ELBSecurityPolicy-2016-08 allows TLS 1.0, and latch accepts only policies with TLS 1.2 or later " +
		"(RFC 8996 deprecates TLS 1.0 and 1.1); ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06 keeps the most TLS 1.2 ciphers"
	one := func(line int, path, msg string) []wantProblem { return []wantProblem{{line, path, msg}} }

	for _, c := range []struct {
		name, yaml string
		want       []wantProblem
	}{
		// Where certificates and ssl_policy belong.
		{"no certificates", httpsBase,
			one(6, l0+".certificates", "missing; an HTTPS listener needs at least one certificate")},
		{"an empty list", httpsBase + "    certificates: []\n",
			one(12, l0+".certificates", "empty; at least one is needed")},
		{"null", httpsBase + "    certificates:\n",
			one(12, l0+".certificates", "missing; an HTTPS listener needs at least one certificate")},
		{"not a list", httpsBase + "    certificates: certs/good.crt\n",
			one(12, l0+".certificates", `expected a list, got "certs/good.crt"`)},
		{"on an HTTP listener", http + goodCert + "    ssl_policy: ELBSecurityPolicy-TLS13-1-2-2021-06\n",
			[]wantProblem{
				{13, l0 + ".certificates", "set only on HTTPS listeners (this listener is HTTP)"},
				{15, l0 + ".ssl_policy", "set only on HTTPS listeners (this listener is HTTP)"},
			}},
		{"without a protocol", strings.Replace(httpsBase, "    protocol: HTTPS\n", "", 1) + goodCert,
			one(12, l0+".certificates", "set only on HTTPS listeners (this listener is HTTP)")},

		// Each certificate's keys.
		{"no key_file", httpsBase + "    certificates:\n      - cert_file: certs/good.crt\n",
			one(13, c0+".key_file", "missing")},
		{"a misspelt key", httpsBase + "    certificates:\n      - certfile: certs/good.crt\n        key_file: certs/good.key\n",
			[]wantProblem{{13, c0 + ".certfile", `unknown key; did you mean "cert_file"?`}, {13, c0 + ".cert_file", "missing"}}},
		{"a string for a certificate", httpsBase + "    certificates: [certs/good.crt]\n",
			one(12, c0, `expected a mapping, got "certs/good.crt"`)},
		{"an empty file name", httpsBase + cert(`""`, "certs/good.key"),
			one(13, c0+".cert_file", "must not be empty")},
		{"a list for a file name", httpsBase + cert("[a, b]", "certs/good.key"),
			one(13, c0+".cert_file", "expected a string, got a list")},

		// The files.
		{"a missing certificate file", httpsBase + cert("certs/nope.crt", "certs/good.key"),
			one(13, c0+".cert_file", "open "+filepath.Join(dir, "certs/nope.crt")+": no such file or directory")},
		{"a missing key file", httpsBase + cert("certs/good.crt", "certs/nope.key"),
			one(14, c0+".key_file", "open "+filepath.Join(dir, "certs/nope.key")+": no such file or directory")},
		{"no PEM", httpsBase + cert("certs/text.crt", "certs/good.key"),
			one(13, c0+".cert_file", "the file holds no PEM certificate (-----BEGIN CERTIFICATE-----)")},
		{"no PEM key", httpsBase + cert("certs/good.crt", "certs/text.crt"),
			one(14, c0+".key_file", "the file holds no PEM private key (-----BEGIN PRIVATE KEY-----)")},
		{"swapped", httpsBase + cert("certs/good.key", "certs/good.crt"),
			one(13, c0+".cert_file", "the file holds a private key, not a certificate; are cert_file and key_file swapped?")},
		{"another certificate's key", httpsBase + cert("certs/good.crt", "certs/other.key"),
			one(13, c0, "the private key does not match the certificate")},
		{"expired", httpsBase + cert("certs/expired.crt", "certs/expired.key"),
			one(13, c0+".cert_file", "the certificate expired on 2020-01-02 03:04:05 UTC")},
		{"the second of two", httpsBase + goodCert + "      - cert_file: certs/expired.crt\n        key_file: certs/expired.key\n",
			one(15, l0+".certificates[1].cert_file", "the certificate expired on 2020-01-02 03:04:05 UTC")},

		// ssl_policy.
		{"a misspelt policy", httpsBase + goodCert + "    ssl_policy: ELBSecurityPolicy-TLS13-1-2-2021-6\n",
			one(15, l0+".ssl_policy", `"ELBSecurityPolicy-TLS13-1-2-2021-6" is not a security policy latch knows; did you mean "ELBSecurityPolicy-TLS13-1-2-2021-06"?`)},
		{"an unknown policy", httpsBase + goodCert + "    ssl_policy: modern\n",
			one(15, l0+".ssl_policy", `"modern" is not a security policy latch knows`)},
		{"a TLS 1.0 policy", httpsBase + goodCert + "    ssl_policy: ELBSecurityPolicy-2016-08\n",
			one(15, l0+".ssl_policy", refused)},
		{"a FIPS policy", httpsBase + goodCert + "    ssl_policy: ELBSecurityPolicy-TLS13-1-2-FIPS-2023-04\n",
			one(15, l0+".ssl_policy", "ELBSecurityPolicy-TLS13-1-2-FIPS-2023-04 is a FIPS policy, which latch does not support yet")},
		{"a list for a policy", httpsBase + goodCert + "    ssl_policy: [a]\n",
			one(15, l0+".ssl_policy", "expected a string, got a list")},

		// routing.http2.enabled.
		{"http2 not a boolean", httpsBase + goodCert + "    attributes:\n      routing.http2.enabled: maybe\n",
			one(16, l0+`.attributes["routing.http2.enabled"]`, `"maybe" is not true or false`)},
		{"h2c without http2", http + "    attributes:\n      routing.http2.enabled: false\n      routing.http2.h2c.enabled: true\n",
			one(14, l0+`.attributes["routing.http2.h2c.enabled"]`, "cleartext HTTP/2 needs HTTP/2: routing.http2.enabled is false on this listener")},

		// Everything at once, in file order.
		{"several", httpsBase + "    ssl_policy: ELBSecurityPolicy-TLS-1-1-2017-01\n" + cert("certs/good.crt", "certs/other.key") +
			"      - {cert_file: certs/missing.crt, key_file: certs/good.key}\n",
			[]wantProblem{
				{12, l0 + ".ssl_policy", "ELBSecurityPolicy-TLS-1-1-2017-01 allows TLS 1.1, and latch accepts only policies with TLS 1.2 or later " +
					"(RFC 8996 deprecates TLS 1.0 and 1.1); ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06 keeps the most TLS 1.2 ciphers"},
				{14, c0, "the private key does not match the certificate"},
				{16, l0 + ".certificates[1].cert_file", "open " + filepath.Join(dir, "certs/missing.crt") + ": no such file or directory"},
			}},
	} {
		t.Run(c.name, func(t *testing.T) { checkIn(t, dir, c.yaml, c.want) })
	}
}

// TestCertificatePathsRelativeToConfig checks that certificate paths
// resolve against the config file's directory, not the working directory.
func TestCertificatePathsRelativeToConfig(t *testing.T) {
	dir := certDir(t)
	other := filepath.Join(dir, "elsewhere")
	checkIn(t, other, httpsBase+goodCert, []wantProblem{
		{13, "listeners[0].certificates[0].cert_file", "open " + filepath.Join(other, "certs/good.crt") + ": no such file or directory"},
	})
}
