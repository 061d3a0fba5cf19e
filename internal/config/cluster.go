package config

import (
	"fmt"
	"net/url"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"
)

// DefaultClusterPrefix is cluster.etcd.prefix's default.
const DefaultClusterPrefix = "/latch"

// Cluster turns cluster mode on (the file's `cluster:`): the nodes that
// share Etcd (its endpoints and prefix) share their target registrations,
// weights, drains, attribute changes and cookie key ring through it. A nil
// *Cluster in Config is a lone latch. Like admin and access_log, it is the
// file's alone.
type Cluster struct {
	Etcd Etcd
	// NodeName names this node in the cluster, unique among its nodes;
	// "": the host name and the admin port (Cluster.Node says it).
	NodeName string
	// KeyRotationDays rotates the cookie key ring every that many days
	// (0: only when asked, by latch ctl keys rotate).
	KeyRotationDays int
}

// Etcd is how a node reaches etcd.
type Etcd struct {
	// Endpoints are etcd's client URLs (http://host:port or https://...).
	Endpoints []string
	// Prefix is where the cluster's keys live: an absolute path, without a
	// trailing slash. A file's default is DefaultClusterPrefix.
	Prefix string
	// TLS, when set, is how the node proves itself to etcd and checks it.
	TLS *EtcdTLS
	// Username and PasswordFile, when set, authenticate the node (etcd's
	// RBAC). The password itself is never in the config.
	Username     string
	PasswordFile string
}

// EtcdTLS are the files of a TLS connection to etcd, resolved against the
// config file's directory. CAFile alone checks etcd's certificate; CertFile
// and KeyFile (both or neither) present a client certificate.
type EtcdTLS struct {
	CAFile, CertFile, KeyFile string
	// ServerName checks etcd's certificate for this name instead of the
	// endpoint's host.
	ServerName string
}

func (d *decoder) cluster(n *yaml.Node, p string) *Cluster {
	c := &Cluster{Etcd: Etcd{Prefix: DefaultClusterPrefix}}
	m := d.mapping(n, p, "etcd", "node_name", "key_rotation_days")
	if m == nil {
		return c
	}
	if v := d.required(n, m, p, "etcd"); v != nil {
		d.etcd(v, p+".etcd", &c.Etcd)
	}
	if v := m["node_name"]; v != nil {
		c.NodeName, _ = d.scalar(v, p+".node_name")
	}
	if v := m["key_rotation_days"]; v != nil {
		d.int(v, p+".key_rotation_days", &c.KeyRotationDays)
	}
	return c
}

func (d *decoder) etcd(n *yaml.Node, p string, e *Etcd) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if kn := n.Content[i]; kn.Value == "password" {
				d.addf(kn, p+".password", "the password is never written in the config: put it in a file named by password_file (relative to this file)")
				n = withoutKey(n, i)
				break
			}
		}
	}
	m := d.mapping(n, p, "endpoints", "prefix", "tls", "username", "password_file")
	if m == nil {
		return
	}
	if v := d.required(n, m, p, "endpoints"); v != nil {
		if items, ok := d.seq(v, p+".endpoints"); ok {
			e.Endpoints = []string{}
			for i, it := range items {
				if s, ok := d.scalar(it, item(p+".endpoints", i)); ok {
					e.Endpoints = append(e.Endpoints, s)
				}
			}
		}
	}
	if v := m["prefix"]; v != nil {
		e.Prefix, _ = d.scalar(v, p+".prefix")
	}
	if v := m["username"]; v != nil {
		e.Username, _ = d.scalar(v, p+".username")
	}
	if v := m["password_file"]; v != nil {
		if s, ok := d.scalar(v, p+".password_file"); ok && s != "" {
			e.PasswordFile = d.resolve(s)
		} else if ok {
			d.addf(v, p+".password_file", "must not be empty (leave password_file out for no password)")
		}
	}
	if v := m["tls"]; v != nil {
		t := &EtcdTLS{}
		tm := d.mapping(v, p+".tls", "ca_file", "cert_file", "key_file", "server_name")
		for key, dst := range map[string]*string{"ca_file": &t.CAFile, "cert_file": &t.CertFile, "key_file": &t.KeyFile} {
			if fv := tm[key]; fv != nil {
				if s, ok := d.scalar(fv, p+".tls."+key); ok && s != "" {
					*dst = d.resolve(s)
				}
			}
		}
		if fv := tm["server_name"]; fv != nil {
			t.ServerName, _ = d.scalar(fv, p+".tls.server_name")
		}
		e.TLS = t
	}
}

// cluster validates cluster.
func (v *validator) cluster() {
	c := v.cfg.Cluster
	if c == nil {
		return
	}
	e := c.Etcd
	if len(e.Endpoints) == 0 {
		v.add("cluster.etcd.endpoints", "needs at least one etcd client URL, such as http://127.0.0.1:2379")
	}
	for i, ep := range e.Endpoints {
		u, err := url.Parse(ep)
		switch {
		case !strings.Contains(ep, "://"):
			v.addf(item("cluster.etcd.endpoints", i), "%q: the scheme must be http or https (etcd's client URL, such as http://%s)", ep, ep)
		case err != nil:
			v.addf(item("cluster.etcd.endpoints", i), "%q is not a URL: %v", ep, err)
		case u.Scheme != "http" && u.Scheme != "https":
			v.addf(item("cluster.etcd.endpoints", i), "%q: the scheme must be http or https (etcd's client URL, such as http://127.0.0.1:2379)", ep)
		case u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "":
			v.addf(item("cluster.etcd.endpoints", i), "%q must be scheme://host:port and nothing more", ep)
		case u.Scheme == "https" && e.TLS == nil:
			v.addf(item("cluster.etcd.endpoints", i), "%q is https, but cluster.etcd.tls is not set (give at least its ca_file)", ep)
		}
	}
	switch {
	case e.Prefix == "":
		v.add("cluster.etcd.prefix", "must not be empty (the default is "+DefaultClusterPrefix+")")
	case !strings.HasPrefix(e.Prefix, "/") || (e.Prefix != "/" && strings.HasSuffix(e.Prefix, "/")) || path.Clean(e.Prefix) != e.Prefix:
		v.addf("cluster.etcd.prefix", "%q must be an absolute, clean path with no trailing slash, such as /latch", e.Prefix)
	case len(e.Prefix) > 256:
		v.add("cluster.etcd.prefix", "is longer than 256 bytes")
	}
	if (e.Username == "") != (e.PasswordFile == "") {
		v.add("cluster.etcd", "username and password_file go together: give both, or neither")
	}
	if t := e.TLS; t != nil {
		if (t.CertFile == "") != (t.KeyFile == "") {
			v.add("cluster.etcd.tls", "cert_file and key_file go together: give both, or neither")
		}
		if t.CAFile == "" && t.CertFile == "" {
			v.add("cluster.etcd.tls", "names no file: give ca_file, or cert_file and key_file, or leave tls out")
		}
	}
	if c.NodeName != "" && !validNodeName(c.NodeName) {
		v.addf("cluster.node_name", "%q must be 1-64 letters, digits, '-', '_' or '.'", c.NodeName)
	}
	if c.KeyRotationDays < 0 || c.KeyRotationDays > 3650 {
		v.addf("cluster.key_rotation_days", "%d is not between 0 (off) and 3650", c.KeyRotationDays)
	}
}

// validNodeName reports whether s can name a node: it is part of etcd keys
// and of metric and log lines.
func validNodeName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// Node returns the node's name: NodeName, or host's name with the admin
// port ("host-9901"), or the host's name alone without an admin listener.
func (c *Cluster) Node(host string, adminPort string) string {
	if c.NodeName != "" {
		return c.NodeName
	}
	name := host
	if adminPort != "" {
		name = fmt.Sprintf("%s-%s", host, adminPort)
	}
	var b strings.Builder
	for _, r := range name {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	s := b.String()
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}
