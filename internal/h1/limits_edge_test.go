package h1

import (
	"fmt"
	"io"
	"strings"
	"testing"
)

// headWithFields returns a request head of n fields in all, Host included.
func headWithFields(n int) string {
	var b strings.Builder
	b.WriteString("GET / HTTP/1.1\r\nHost: a\r\n")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "X-%d: v\r\n", i)
	}
	b.WriteString("\r\n")
	return b.String()
}

// connectionNames returns n distinct field names for a Connection list.
func connectionNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("x-hop-%d", i)
	}
	return names
}

// headWithConnection returns a request head with one Connection field per
// list, and a field for each name listed.
func headWithConnection(lists ...[]string) string {
	var b strings.Builder
	b.WriteString("GET / HTTP/1.1\r\nHost: a\r\n")
	for _, l := range lists {
		b.WriteString("Connection: " + strings.Join(l, ", ") + "\r\n")
		for _, name := range l {
			switch name {
			case "close", "keep-alive", "upgrade":
			default:
				b.WriteString(name + ": v\r\n")
			}
		}
	}
	b.WriteString("\r\n")
	return b.String()
}

// readAndFrame reads one request from in, and frames it if it was read.
func readAndFrame(t *testing.T, in string, wrap func(io.Reader) io.Reader) (*Request, error) {
	t.Helper()
	rd, sr := newFeed(in+"NEXT", wrap)
	req := new(Request)
	if _, err := rd.ReadRequest(req); err != nil {
		return req, err
	}
	if err := req.Frame(); err != nil {
		return req, err
	}
	if got := rest(rd, sr); got != "NEXT" {
		t.Errorf("left after the head: %q, want NEXT", got)
	}
	return req, nil
}

// TestFieldCountLimit: README's ALB edge table answers 400 to a request
// with "more than 500 fields": 500 are read, 501 are not.
func TestFieldCountLimit(t *testing.T) {
	for _, tt := range []struct {
		name   string
		fields int
		want   error
	}{
		{"500 fields", 500, nil},
		{"501 fields", 501, ErrTooManyFields},
	} {
		in := headWithFields(tt.fields)
		if n := strings.Count(in, "\r\n") - 2; n != tt.fields {
			t.Fatalf("test bug: %d fields, want %d", n, tt.fields)
		}
		for _, feed := range feeds {
			t.Run(tt.name+"/"+feed.name, func(t *testing.T) {
				req, err := readAndFrame(t, in, feed.wrap)
				if err != tt.want {
					t.Fatalf("error = %s, want %s", errName(err), errName(tt.want))
				}
				if err == nil && len(req.Fields) != tt.fields {
					t.Errorf("%d fields read, want %d", len(req.Fields), tt.fields)
				}
			})
		}
	}
	if ErrTooManyFields.Status != 400 {
		t.Errorf("too many fields answers %d, want 400", ErrTooManyFields.Status)
	}
}

// TestConnectionNamesLimit: README's ALB edge table answers 400 to a
// request with "more than ... 32 names in Connection": 32 are taken (each
// listed field then stays out of what is forwarded), 33 are not, whether
// in one Connection field or several. close, keep-alive and upgrade are
// options, not names.
func TestConnectionNamesLimit(t *testing.T) {
	n32, n33 := connectionNames(32), connectionNames(33)
	for _, tt := range []struct {
		name  string
		lists [][]string
		want  error
	}{
		{"32 names in one field", [][]string{n32}, nil},
		{"32 names in two fields", [][]string{n32[:20], n32[20:]}, nil},
		{"32 names and the three options", [][]string{append([]string{"close", "keep-alive", "upgrade"}, n32...)}, nil},
		{"33 names in one field", [][]string{n33}, ErrConnectionList},
		{"33 names in two fields", [][]string{n33[:16], n33[16:]}, ErrConnectionList},
	} {
		in := headWithConnection(tt.lists...)
		for _, feed := range feeds {
			t.Run(tt.name+"/"+feed.name, func(t *testing.T) {
				req, err := readAndFrame(t, in, feed.wrap)
				if err != tt.want {
					t.Fatalf("error = %s, want %s", errName(err), errName(tt.want))
				}
				if err != nil {
					return
				}
				named := 0
				for i, f := range req.Fields {
					if strings.HasPrefix(string(f.Name), "x-hop-") {
						if req.Kinds[i] != KindNamedInConnection {
							t.Errorf("%s: kind %s, want NamedInConnection", f.Name, kindName(req.Kinds[i]))
						}
						named++
					}
				}
				if named != 32 {
					t.Errorf("%d listed fields in the request, want 32", named)
				}
			})
		}
	}
	if ErrConnectionList.Status != 400 {
		t.Errorf("too many names in Connection answers %d, want 400", ErrConnectionList.Status)
	}
}
