package config

import (
	"net"
	"strings"

	"go.yaml.in/yaml/v3"
)

// DefaultAdminAddress is admin.address's default: loopback only, so that
// reads need no token on the machine itself and nothing is reachable from
// elsewhere until the operator says so.
const DefaultAdminAddress = "127.0.0.1:9901"

// Admin is the admin listener's settings (the file's `admin:`). The zero
// value is off: a config built in Go runs no admin listener unless it asks
// for one. A file's default is DefaultAdmin. The token itself is never in
// the config: it comes from TokenFile, or from the environment
// (LATCH_ADMIN_TOKEN), where whoever starts the admin listener reads it.
type Admin struct {
	Enabled bool
	// Address is host:port to listen on; port 0 picks a free port.
	Address string
	// TokenFile holds the bearer token, resolved against the config
	// file's directory; "" for none.
	TokenFile string
}

// DefaultAdmin returns a file's admin settings when it sets none: on, at
// DefaultAdminAddress, with no token file.
func DefaultAdmin() Admin { return Admin{Enabled: true, Address: DefaultAdminAddress} }

// Loopback reports whether the admin address accepts only local
// connections: its host is a loopback IP or "localhost". An empty host
// (":9901") listens on every interface.
func (a Admin) Loopback() bool {
	host, _, err := net.SplitHostPort(a.Address)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (d *decoder) admin(n *yaml.Node, path string) Admin {
	a := DefaultAdmin()
	if n == nil {
		return a
	}
	// A token in the file would end up in backups, diffs and bug reports;
	// it is refused by name rather than as an unknown key.
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if kn := n.Content[i]; kn.Value == "token" {
				d.addf(kn, path+".token", "the token is never written in the config: put it in a file named by token_file (relative to this file), or in LATCH_ADMIN_TOKEN in the environment")
				n = withoutKey(n, i)
				break
			}
		}
	}
	m := d.mapping(n, path, "enabled", "address", "token_file")
	if m == nil {
		return a
	}
	if v := m["enabled"]; v != nil {
		d.bool(v, path+".enabled", &a.Enabled)
	}
	if v := m["address"]; v != nil {
		a.Address, _ = d.scalar(v, path+".address")
	}
	if v := m["token_file"]; v != nil {
		if s, ok := d.scalar(v, path+".token_file"); ok {
			if s == "" {
				d.addf(v, path+".token_file", "must not be empty (leave token_file out for no token file)")
			} else {
				a.TokenFile = d.resolve(s)
			}
		}
	}
	return a
}

// withoutKey returns a copy of mapping n without its i-th key and value.
func withoutKey(n *yaml.Node, i int) *yaml.Node {
	c := *n
	c.Content = append(append([]*yaml.Node(nil), n.Content[:i]...), n.Content[i+2:]...)
	return &c
}

func (v *validator) admin() {
	a := v.cfg.Admin
	if !a.Enabled {
		return
	}
	if msg := checkHostPort(a.Address, true); msg != "" {
		v.add("admin.address", msg)
	}
	for _, l := range v.cfg.Listeners {
		if a.Address != "" && !strings.HasSuffix(a.Address, ":0") && l.Address == a.Address {
			v.addf("admin.address", "address %s is already used by listener %q", a.Address, l.Name)
		}
	}
}
