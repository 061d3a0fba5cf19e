package config

import (
	"errors"
	"time"

	"github.com/latch-lb/latch/internal/tlsconf"
)

// Certificate is one certificate of an HTTPS listener: a PEM chain (the
// server's certificate first, then its intermediates) and its PEM private
// key, by path; a file's relative paths are resolved against the config
// file's directory. The files are read and checked by Validate, and read
// again each time the config is applied, so that a reload serves renewed
// files. Neither may be empty.
type Certificate struct {
	CertFile string
	KeyFile  string
}

// listenerTLS checks an HTTPS listener's certificates and ssl_policy, and
// refuses them on an HTTP listener. All of it depends on the protocol.
func (v *validator) listenerTLS(l *Listener, path string) {
	defer v.depend(path + ".protocol")()
	cpath := path + ".certificates"
	switch l.Protocol {
	case HTTP:
		if l.Certificates != nil {
			v.addList(cpath, "set only on HTTPS listeners (this listener is HTTP)")
		}
		if l.SSLPolicy != "" {
			v.add(path+".ssl_policy", "set only on HTTPS listeners (this listener is HTTP)")
		}
		return
	case HTTPS:
	default:
		return // reported with the protocol
	}

	if name := l.SSLPolicy; name != "" {
		_, err := tlsconf.LookupPolicy(name)
		switch {
		case errors.Is(err, tlsconf.ErrUnknownPolicy):
			v.addf(path+".ssl_policy", "%q is not a security policy latch knows%s", name, suggestion(name, tlsconf.PolicyNames()))
		case err != nil:
			v.add(path+".ssl_policy", err.Error())
		}
	}

	if l.Certificates == nil {
		v.addList(cpath, "missing; an HTTPS listener needs at least one certificate")
		return
	}
	v.need(len(l.Certificates), false, cpath)
	now := time.Now()
	for i, c := range l.Certificates {
		ipath := item(cpath, i)
		if c.CertFile == "" {
			v.add(ipath+".cert_file", "must not be empty")
		}
		if c.KeyFile == "" {
			v.add(ipath+".key_file", "must not be empty")
		}
		if c.CertFile == "" || c.KeyFile == "" || !v.files {
			continue
		}
		if _, err := tlsconf.LoadCertificate(c.CertFile, c.KeyFile, now); err != nil {
			var ce *tlsconf.CertError
			switch {
			case !errors.As(err, &ce):
				v.add(ipath, err.Error())
			case ce.Part == tlsconf.CertFile:
				v.add(ipath+".cert_file", ce.Msg)
			case ce.Part == tlsconf.KeyFile:
				v.add(ipath+".key_file", ce.Msg)
			default:
				v.add(ipath, ce.Msg)
			}
		}
	}
}
