package config

import (
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// everything sets every list and pointer a Config holds, with an HTTPS
// listener whose certificate files certDir makes.
var everything = `listeners:
  - name: public
    address: 127.0.0.1:8443
    protocol: HTTPS
    ssl_policy: ELBSecurityPolicy-TLS13-1-2-2021-06
    certificates:
      - {cert_file: certs/good.crt, key_file: certs/good.key}
      - {cert_file: certs/wild.crt, key_file: certs/wild.key}
    default_action:
      type: forward
      forward:
        target_groups: [{name: web, weight: 2}, {name: api}]
        stickiness: {enabled: true, duration_seconds: 60}
    rules:
      - priority: 1
        conditions:
          - host_header: [a.example.com]
          - http_header: {name: X-A, values: [a]}
          - query_string: [{key: k, value: v}]
          - source_ip: [10.0.0.0/8]
        action: {type: redirect, redirect: {port: "9443", status_code: HTTP_301}}
      - priority: 2
        conditions: [{path_pattern: [/x]}, {http_request_method: [GET]}]
        action: {type: fixed-response, fixed_response: {status_code: 503, message_body: down}}
      - priority: 3
        conditions: [{path_pattern: [/y]}]
        action: {type: forward, forward: {target_groups: [{name: api}]}}
    attributes:
      idle_timeout.timeout_seconds: 0.5
  - name: redirect
    address: 127.0.0.1:8080
    default_action: {type: redirect, redirect: {protocol: HTTPS, port: "8443", status_code: HTTP_301}}
  - name: maintenance
    address: 127.0.0.1:8081
    default_action: {type: fixed-response, fixed_response: {status_code: 503, content_type: text/html, message_body: "<p>back soon</p>"}}
target_groups:
  - name: web
    targets: [{id: "10.0.0.1:80", weight: 2}, {id: "10.0.0.2:80"}]
    health_check: {matcher: "200,300-302"}
    attributes:
      stickiness.enabled: "true"
      stickiness.type: source_ip
      stickiness.source_ip.trusted_proxies: 10.0.0.0/8, 192.168.0.1
  - name: api
    targets: [{id: "10.0.1.1:80"}]
    discovery: {dns: {name: _http._tcp.api.internal, type: SRV, resolver: "127.0.0.1:53", drain_idle_seconds: 5}}
cluster:
  etcd:
    endpoints: [https://127.0.0.1:2379]
    tls: {ca_file: certs/good.crt}
  node_name: node-a
cookie_keys:
  - {id: 1, secret: ` + key1 + `}
  - {id: 2, secret: ` + key2 + `}
access_log: {path: access.log, format: json}
`

// parseEverything parses everything twice: a config to change, and one to
// compare the first with.
func parseEverything(t *testing.T) (cfg, again *Config) {
	t.Helper()
	file := filepath.Join(certDir(t), "latch.yaml")
	cfg, again = mustParse(t, everything, file), mustParse(t, everything, file)
	// A drain is a runtime change: no file sets one.
	for _, c := range []*Config{cfg, again} {
		c.TargetGroups[0].Targets[1].Drain = &Drain{Mode: DrainImmediate, Idle: time.Minute, Since: time.Unix(1800000000, 0)}
	}
	return cfg, again
}

func TestClone(t *testing.T) {
	orig, again := parseEverything(t)
	clone := orig.Clone()
	if !reflect.DeepEqual(clone, orig) {
		t.Fatalf("Clone differs from its original:\ngot  %+v\nwant %+v", clone, orig)
	}
	if where := shared(reflect.ValueOf(orig), reflect.ValueOf(clone), "Config"); len(where) > 0 {
		t.Errorf("Clone shares memory with its original at %v", where)
	}
	mutate(reflect.ValueOf(clone))
	if !reflect.DeepEqual(orig, again) {
		t.Errorf("changing every part of a clone changed the original:\ngot  %+v\nwant %+v", orig, again)
	}
	if reflect.DeepEqual(clone, again) {
		t.Errorf("mutate changed nothing")
	}

	// The fixture reaches every list and pointer there is, so that a field
	// added later is covered or this fails.
	all, set := map[string]bool{}, map[string]bool{}
	references(reflect.TypeOf(Config{}), "Config", all)
	nonEmpty(reflect.ValueOf(*again), "Config", set)
	for path := range all {
		if !set[path] {
			t.Errorf("everything leaves %s empty; set it, so that Clone's test covers it", path)
		}
	}

	if (*Config)(nil).Clone() != nil {
		t.Errorf("(*Config)(nil).Clone() is not nil")
	}
	// nil and empty lists stay what they are: Validate tells them apart.
	c := &Config{Listeners: []Listener{{Certificates: []Certificate{}}}}
	if got := c.Clone(); got.Listeners[0].Certificates == nil || got.TargetGroups != nil {
		t.Errorf("Clone: nil and empty lists not kept: %+v", got)
	}
}

func TestLookups(t *testing.T) {
	cfg, _ := parseEverything(t)
	if got := cfg.Listener("public"); got != &cfg.Listeners[0] {
		t.Errorf("Listener(public) = %p, want %p", got, &cfg.Listeners[0])
	}
	if got := cfg.Listener("private"); got != nil {
		t.Errorf("Listener(private) = %+v, want nil", got)
	}
	g := cfg.TargetGroup("web")
	if got := g.Target("10.0.0.2:80"); got != &g.Targets[1] {
		t.Errorf("Target(10.0.0.2:80) = %p, want %p", got, &g.Targets[1])
	}
	if got := g.Target("10.0.0.3:80"); got != nil {
		t.Errorf("Target(10.0.0.3:80) = %+v, want nil", got)
	}
}

var prefixType = reflect.TypeOf(netip.Prefix{})

// mutate changes every exported leaf under v: strings, numbers, booleans,
// every element of every list, what every pointer points at.
func mutate(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			mutate(v.Elem())
		}
	case reflect.Struct:
		if v.Type() == prefixType {
			v.Set(reflect.ValueOf(netip.MustParsePrefix("192.0.2.0/24")))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				mutate(v.Field(i))
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			mutate(v.Index(i))
		}
	case reflect.String:
		v.SetString(v.String() + "~")
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(v.Uint() + 1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(v.Float() + 1)
	}
}

// shared returns where a and b, values of one type, share memory: a
// non-empty list's array, a pointer's target or a map.
func shared(a, b reflect.Value, path string) []string {
	var out []string
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return nil
		}
		if a.Pointer() == b.Pointer() {
			out = append(out, path)
		}
		out = append(out, shared(a.Elem(), b.Elem(), path)...)
	case reflect.Map:
		if !a.IsNil() && a.Pointer() == b.Pointer() {
			out = append(out, path)
		}
	case reflect.Slice:
		if a.Len() > 0 && b.Len() > 0 && a.Pointer() == b.Pointer() {
			out = append(out, path)
		}
		for i := range min(a.Len(), b.Len()) {
			out = append(out, shared(a.Index(i), b.Index(i), path+"[]")...)
		}
	case reflect.Struct:
		if a.Type() == prefixType {
			return nil
		}
		for i := range a.NumField() {
			if f := a.Type().Field(i); f.IsExported() {
				out = append(out, shared(a.Field(i), b.Field(i), path+"."+f.Name)...)
			}
		}
	}
	return out
}

// references adds the path of every list, pointer and map a value of type t
// may hold.
func references(t reflect.Type, path string, out map[string]bool) {
	switch t.Kind() {
	case reflect.Pointer:
		out[path] = true
		references(t.Elem(), path, out)
	case reflect.Slice:
		out[path] = true
		references(t.Elem(), path+"[]", out)
	case reflect.Map:
		out[path] = true
	case reflect.Struct:
		if t == prefixType {
			return
		}
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() {
				references(f.Type, path+"."+f.Name, out)
			}
		}
	}
}

// nonEmpty adds the path of every list, pointer and map under v that holds
// something.
func nonEmpty(v reflect.Value, path string, out map[string]bool) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			out[path] = true
			nonEmpty(v.Elem(), path, out)
		}
	case reflect.Slice:
		if v.Len() > 0 {
			out[path] = true
		}
		for i := range v.Len() {
			nonEmpty(v.Index(i), path+"[]", out)
		}
	case reflect.Map:
		if v.Len() > 0 {
			out[path] = true
		}
	case reflect.Struct:
		if v.Type() == prefixType {
			return
		}
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				nonEmpty(v.Field(i), path+"."+f.Name, out)
			}
		}
	}
}
