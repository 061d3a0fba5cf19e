package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/latch-lb/latch/internal/tlsconf"
)

// Certificate is one certificate of an HTTPS listener: a PEM chain (the
// server's certificate first, then its intermediates) and its PEM private
// key, by path, resolved against the config file's directory. The files
// are read and checked with the config, and read again each time it is
// applied, so that a reload serves renewed files.
type Certificate struct {
	CertFile string
	KeyFile  string
}

// listenerTLS decodes an HTTPS listener's certificates and ssl_policy, and
// refuses them on an HTTP listener.
func (d *decoder) listenerTLS(n *yaml.Node, m map[string]*yaml.Node, path string, l *Listener) {
	switch l.Protocol {
	case "HTTPS":
	case "HTTP":
		for _, key := range []string{"certificates", "ssl_policy"} {
			if v := m[key]; v != nil {
				d.addf(v, path+"."+key, "set only on HTTPS listeners (this listener is HTTP)")
			}
		}
		return
	default:
		return // an invalid protocol, already reported
	}

	l.SSLPolicy = tlsconf.DefaultPolicy
	if pn := m["ssl_policy"]; pn != nil {
		if name, ok := d.scalar(pn, path+".ssl_policy"); ok {
			_, err := tlsconf.LookupPolicy(name)
			switch {
			case errors.Is(err, tlsconf.ErrUnknownPolicy):
				d.addf(pn, path+".ssl_policy", "%q is not a security policy latch knows%s", name, suggestion(name, tlsconf.PolicyNames()))
			case err != nil:
				d.addf(pn, path+".ssl_policy", "%v", err)
			default:
				l.SSLPolicy = name
			}
		}
	}

	cn := m["certificates"]
	if cn == nil || isNull(cn) {
		if cn != nil {
			n = cn
		}
		d.addf(n, path+".certificates", "missing; an HTTPS listener needs at least one certificate")
		return
	}
	now := time.Now()
	for i, item := range d.seq(cn, path+".certificates", true) {
		ipath := fmt.Sprintf("%s.certificates[%d]", path, i)
		im := d.mapping(item, ipath, "cert_file", "key_file")
		if im == nil {
			continue
		}
		cf, kf := d.required(item, im, ipath, "cert_file"), d.required(item, im, ipath, "key_file")
		c := Certificate{CertFile: d.path(cf, ipath+".cert_file"), KeyFile: d.path(kf, ipath+".key_file")}
		if c.CertFile == "" || c.KeyFile == "" {
			continue
		}
		l.Certificates = append(l.Certificates, c)
		if _, err := tlsconf.LoadCertificate(c.CertFile, c.KeyFile, now); err != nil {
			var ce *tlsconf.CertError
			switch {
			case !errors.As(err, &ce):
				d.addf(item, ipath, "%v", err)
			case ce.Part == tlsconf.CertFile:
				d.addf(cf, ipath+".cert_file", "%s", ce.Msg)
			case ce.Part == tlsconf.KeyFile:
				d.addf(kf, ipath+".key_file", "%s", ce.Msg)
			default:
				d.addf(item, ipath, "%s", ce.Msg)
			}
		}
	}
}

// path reads a file name, resolved against the config file's directory;
// "" when it is missing or reported.
func (d *decoder) path(n *yaml.Node, path string) string {
	s, ok := d.scalar(n, path)
	switch {
	case !ok:
		return ""
	case s == "":
		d.addf(n, path, "must not be empty")
		return ""
	case filepath.IsAbs(s):
		return s
	}
	return filepath.Join(d.dir, s)
}
