package route

import (
	"bytes"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/latch-lb/latch/internal/config"
)

// redirect is a config redirect with the config package's defaults: every
// component the config leaves out keeps the request's own.
func redirect(protocol, host, port, path, query string) *config.Redirect {
	r := &config.Redirect{Protocol: "#{protocol}", Host: "#{host}", Port: "#{port}", Path: "/#{path}", Query: "#{query}", StatusCode: 301}
	for _, c := range []struct {
		v   string
		dst *string
	}{{protocol, &r.Protocol}, {host, &r.Host}, {port, &r.Port}, {path, &r.Path}, {query, &r.Query}} {
		if c.v != "" {
			*c.dst = c.v
		}
	}
	return r
}

func TestAppendLocation(t *testing.T) {
	for _, c := range []struct {
		name        string
		r           *config.Redirect
		in          *Input
		proto, port string
		want        string
	}{
		// ALB's documented example: HTTP to HTTPS on 443, the rest kept.
		{"to HTTPS", redirect("HTTPS", "#{host}", "443", "/#{path}", "#{query}"),
			req("GET www.example.com:8080/a/b?x=1&y=2"), "HTTP", "80", "https://www.example.com:443/a/b?x=1&y=2"},
		// ALB writes the port even when it is the scheme's default, and no
		// "?" for an empty query.
		{"default port written, empty query", redirect("#{protocol}", "", "443", "", ""),
			req("GET app.example.com/"), "HTTP", "80", "http://app.example.com:443/"},
		{"#{port} is the listener's", redirect("", "new.example.com", "", "", ""),
			req("GET old.example.com:9999/x"), "HTTP", "8080", "http://new.example.com:8080/x"},
		{"#{protocol} in lower case", redirect("", "", "8443", "", ""),
			req("GET h/"), "HTTPS", "443", "https://h:8443/"},
		{"protocol HTTP", redirect("HTTP", "", "81", "", ""),
			req("GET h/"), "HTTP", "80", "http://h:81/"},
		// #{path} has no leading "/" (ALB).
		{"/new/#{path}", redirect("", "", "", "/new/#{path}", ""),
			req("GET h/old/page?a=1"), "HTTP", "80", "http://h:80/new/old/page?a=1"},
		{"/new/#{path} at the root", redirect("", "", "", "/new/#{path}", ""),
			req("GET h/"), "HTTP", "80", "http://h:80/new/"},
		{"/new/#{path} without a path", redirect("", "", "", "/new/#{path}", ""),
			req("GET h"), "HTTP", "80", "http://h:80/new/"},
		{"a fixed path drops the request's", redirect("", "", "", "/maintenance", ""),
			req("GET h/a/b?c=d"), "HTTP", "80", "http://h:80/maintenance?c=d"},
		{"host from #{host}", redirect("", "www.#{host}", "", "", ""),
			req("GET Example.COM:8080/"), "HTTP", "80", "http://www.Example.COM:80/"},
		{"IPv6 host", redirect("", "", "8443", "", ""),
			req("GET [::1]:8080/x"), "HTTP", "8080", "http://[::1]:8443/x"},
		{"host, port and path in the path", redirect("", "", "", "/#{host}/#{port}/#{path}", ""),
			req("GET h.example.com:1/p"), "HTTP", "80", "http://h.example.com:80/h.example.com/80/p"},
		{"every placeholder in the query", redirect("", "", "81", "", "p=#{protocol}&h=#{host}&o=#{port}&a=#{path}&#{query}"),
			req("GET h/a/b?q=1"), "HTTP", "80", "http://h:81/a/b?p=http&h=h&o=80&a=a/b&q=1"},
		{"query added to", redirect("", "", "81", "", "#{query}&value=xyz"),
			req("GET h/?a=1"), "HTTP", "80", "http://h:81/?a=1&value=xyz"},
		{"query added to an empty one", redirect("", "", "81", "", "#{query}&value=xyz"),
			req("GET h/"), "HTTP", "80", "http://h:81/?&value=xyz"},
		{"query replaced", redirect("", "", "81", "", "v=2"),
			req("GET h/?a=1"), "HTTP", "80", "http://h:81/?v=2"},

		// Escaping: config text and request text are copied as written,
		// except what the component cannot hold.
		{"percent-encoding kept", redirect("", "", "81", "/a%20b/#{path}", "x=%2F&#{query}"),
			req("GET h/c%2Fd?e=%41"), "HTTP", "80", "http://h:81/a%20b/c%2Fd?x=%2F&e=%41"},
		{"? and # in a config path", redirect("", "", "", "/a?b#c", ""),
			req("GET h/"), "HTTP", "80", "http://h:80/a%3Fb%23c"},
		{"? kept in a query, # not", redirect("", "", "81", "", "a=?#"),
			req("GET h/"), "HTTP", "80", "http://h:81/?a=?%23"},
		{"what the request sent that a URL cannot hold", redirect("", "", "81", "", ""),
			&Input{Host: []byte("h"), Path: []byte("/a b\"<>\\^`{|}#\xc3\xa9\r\n"), Query: []byte("q= #\x7f")},
			"HTTP", "80", "http://h:81/a%20b%22%3C%3E%5C%5E%60%7B%7C%7D%23%C3%A9%0D%0A?q=%20%23%7F"},
		{"a Host that would change the URL", redirect("", "", "81", "", ""),
			&Input{Host: []byte("evil.com/x?y#z@w"), Path: []byte("/")},
			"HTTP", "80", "http://evil.com%2Fx%3Fy%23z%40w:81/"},
		// An '@' in the host would make the rest a userinfo and move the
		// client to the host after it; in the path and query it is data.
		{"an @ in the Host", redirect("", "#{host}", "81", "/#{host}", "h=#{host}"),
			&Input{Host: []byte("trusted.example@evil.example"), Path: []byte("/")},
			"HTTP", "80", "http://trusted.example%40evil.example:81/trusted.example@evil.example?h=trusted.example@evil.example"},
		{"unknown placeholder text kept", redirect("", "", "", "/#{nope}/#{path", ""),
			req("GET h/"), "HTTP", "80", "http://h:80/%23%7Bnope%7D/%23%7Bpath"},
	} {
		got := string(AppendLocation(nil, c.r, c.in, c.proto, c.port))
		if got != c.want {
			t.Errorf("%s:\ngot  %s\nwant %s", c.name, got, c.want)
		}
	}
}

func TestAppendLocationAppends(t *testing.T) {
	r := redirect("HTTPS", "", "443", "", "")
	got := string(AppendLocation([]byte("Location: "), r, req("GET h/x"), "HTTP", "80"))
	if want := "Location: https://h:443/x"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestAppendLocationAllocs(t *testing.T) {
	r := redirect("HTTPS", "www.#{host}", "443", "/new/#{path}", "#{query}&from=#{protocol}")
	in := req("GET example.com:8080/old/page?a=1&b=%20")
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = AppendLocation(buf[:0], r, in, "HTTP", "8080") }); n != 0 {
		t.Errorf("%v allocations per AppendLocation, want 0", n)
	}
}

// refExpand fills template t's placeholders with raw values, by another
// road than expander's: a regular expression over the whole template.
func refExpand(t string, vals map[string]string) string {
	return placeholderRE.ReplaceAllStringFunc(t, func(m string) string {
		if v, ok := vals[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

var placeholderRE = regexp.MustCompile(`#\{[^}]*\}`)

// FuzzLocation builds redirects from templates the config accepts and
// request parts a client chose, and checks what AppendLocation promises:
// a valid header value, each component confined to its place (no
// request byte can end the path early, start a fragment or add a
// userinfo that moves the host), and, where nothing was percent-encoded
// to begin with, each component decoding to exactly what was put in it.
func FuzzLocation(f *testing.F) {
	f.Add(uint8(0), "#{host}", "#{port}", "/#{path}", "#{query}", []byte("example.com:8080"), []byte("/a/b"), []byte("x=1"))
	f.Add(uint8(1), "www.#{host}", "443", "/new/#{path}", "#{query}&from=#{protocol}", []byte("[::1]:80"), []byte("/a b?#"), []byte("q= #"))
	f.Add(uint8(2), "h", "81", "/#{host}/#{port}/#{nope}/#{path", "", []byte("evil.com/x?y#z"), []byte(""), []byte(""))
	f.Add(uint8(3), "#{host}", "#{port}", "/%41#{path}", "a=%2F#{query}", []byte("a@b"), []byte("/%zz"), []byte("\x00\xff"))
	f.Fuzz(func(t *testing.T, proto uint8, hostT, portT, pathT, queryT string, host, path, query []byte) {
		// What config.Validate lets through: visible ASCII templates, a
		// path starting with "/", a port of 1-65535 or #{port}.
		for _, s := range []string{hostT, portT, pathT, queryT} {
			for i := 0; i < len(s); i++ {
				if s[i] <= ' ' || s[i] >= 0x7f {
					return
				}
			}
		}
		if hostT == "" || !strings.HasPrefix(pathT, "/") || strings.HasPrefix(queryT, "?") {
			return
		}
		if portT != "#{port}" {
			if n, err := strconv.Atoi(portT); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != portT {
				return
			}
		}
		r := &config.Redirect{Protocol: []string{"HTTP", "HTTPS", "#{protocol}"}[proto%3], Host: hostT, Port: portT,
			Path: pathT, Query: queryT, StatusCode: 301}
		listener := []string{"HTTP", "HTTPS"}[proto/3%2]
		in := &Input{Host: host, Path: path, Query: query}
		loc := string(AppendLocation(nil, r, in, listener, "8080"))

		for i := 0; i < len(loc); i++ {
			if c := loc[i]; c <= ' ' || c >= 0x7f || c == '#' {
				t.Fatalf("Location %q has byte %q at %d", loc, c, i)
			}
		}
		scheme := strings.ToLower(r.Protocol)
		if r.Protocol == "#{protocol}" {
			scheme = strings.ToLower(listener)
		}
		rest, ok := strings.CutPrefix(loc, scheme+"://")
		if !ok {
			t.Fatalf("Location %q does not start with %s://", loc, scheme)
		}
		end := strings.IndexAny(rest, "/?")
		if end < 0 || rest[end] != '/' {
			t.Fatalf("Location %q: no path after the authority", loc)
		}
		authority, rest := rest[:end], rest[end:]
		p, q, hasQuery := strings.Cut(rest, "?")
		if strings.Contains(authority, "@") {
			t.Fatalf("Location %q: the authority %q has a userinfo, so its host is not the one asked for", loc, authority)
		}
		port := portT
		if port == "#{port}" {
			port = "8080"
		}
		h, ok := strings.CutSuffix(authority, ":"+port)
		if !ok {
			t.Fatalf("Location %q: the authority %q does not end in port %s", loc, authority, port)
		}

		// Nothing percent-encoded on the way in: every component decodes
		// to its template with the request's raw parts filled in.
		for _, b := range [][]byte{[]byte(hostT + pathT + queryT), host, path, query} {
			if bytes.IndexByte(b, '%') >= 0 {
				return
			}
		}
		vals := map[string]string{"protocol": strings.ToLower(listener), "host": string(hostPart(host)), "port": "8080",
			"path": strings.TrimPrefix(string(path), "/"), "query": string(query)}
		for _, c := range []struct{ name, got, template string }{{"host", h, hostT}, {"path", p, pathT}, {"query", q, queryT}} {
			got, err := url.PathUnescape(c.got)
			if err != nil {
				t.Fatalf("Location %q: the %s %q does not decode: %v", loc, c.name, c.got, err)
			}
			if want := refExpand(c.template, vals); got != want {
				t.Fatalf("Location %q: the %s decodes to %q, want %q", loc, c.name, got, want)
			}
		}
		if want := refExpand(queryT, vals) != ""; hasQuery != want {
			t.Fatalf("Location %q: a query is there: %v, want %v", loc, hasQuery, want)
		}
	})
}
