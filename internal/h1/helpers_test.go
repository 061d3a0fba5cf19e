package h1

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// feeds are the two ways the tests hand bytes to a Reader: as much as a
// Read can take, and one byte per Read. Every result must be the same both
// ways.
var feeds = []struct {
	name string
	wrap func(io.Reader) io.Reader
}{
	{"whole", func(r io.Reader) io.Reader { return r }},
	{"onebyte", iotest.OneByteReader},
}

// newFeed returns a Reader on s through wrap, and the strings.Reader below
// it, which tells how much of s the Reader has not taken yet.
func newFeed(s string, wrap func(io.Reader) io.Reader) (*Reader, *strings.Reader) {
	sr := strings.NewReader(s)
	return NewReader(wrap(sr), false), sr
}

// rest returns what is left of the input after what rd consumed: its
// buffered bytes, then what it has not read.
func rest(rd *Reader, sr *strings.Reader) string {
	var b strings.Builder
	if rd.buf != nil {
		b.Write(rd.buf[rd.r:rd.w])
	}
	tail, _ := io.ReadAll(sr)
	b.Write(tail)
	return b.String()
}

func kv(pairs ...string) map[string]string {
	if len(pairs)%2 != 0 {
		panic("kv: odd number of arguments")
	}
	m := make(map[string]string, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		m[pairs[i]] = pairs[i+1]
	}
	return m
}

var framingNames = [...]string{NoBody: "NoBody", Length: "Length", Chunked: "Chunked", UntilClose: "UntilClose"}

func framingName(f Framing) string {
	if int(f) < len(framingNames) {
		return framingNames[f]
	}
	return fmt.Sprintf("Framing(%d)", f)
}

var kindNames = [...]string{
	KindOther:              "Other",
	KindHost:               "Host",
	KindContentLength:      "ContentLength",
	KindTransferEncoding:   "TransferEncoding",
	KindConnection:         "Connection",
	KindKeepAlive:          "KeepAlive",
	KindProxyConnection:    "ProxyConnection",
	KindTE:                 "TE",
	KindTrailer:            "Trailer",
	KindUpgrade:            "Upgrade",
	KindExpect:             "Expect",
	KindCookie:             "Cookie",
	KindSetCookie:          "SetCookie",
	KindXForwardedFor:      "XForwardedFor",
	KindXForwardedProto:    "XForwardedProto",
	KindXForwardedPort:     "XForwardedPort",
	KindProxyAuthenticate:  "ProxyAuthenticate",
	KindProxyAuthorization: "ProxyAuthorization",
	KindHTTP2Settings:      "HTTP2Settings",
	KindNamedInConnection:  "NamedInConnection",
	KindDropped:            "Dropped",
}

func kindName(k Kind) string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", k)
}

// fieldsString renders fields as "Name:Value" joined by " | ", a field
// without a name as "<nil>Value".
func fieldsString(fs []Field) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		if f.Name == nil {
			parts[i] = "<nil>" + string(f.Value)
		} else {
			parts[i] = string(f.Name) + ":" + string(f.Value)
		}
	}
	return strings.Join(parts, " | ")
}

func kindsString(ks []Kind) string {
	parts := make([]string, len(ks))
	for i, k := range ks {
		parts[i] = kindName(k)
	}
	return strings.Join(parts, ",")
}

func bytesOrNil(b []byte) string {
	if b == nil {
		return "<nil>"
	}
	return string(b)
}

// requestProps renders every property of req that the tests check.
func requestProps(req *Request) map[string]string {
	return map[string]string{
		"Method":         string(req.Method),
		"Target":         string(req.Target),
		"Proto":          string(req.Proto),
		"Minor":          strconv.Itoa(req.Minor),
		"Host":           bytesOrNil(req.Host),
		"Framing":        framingName(req.Framing),
		"ContentLength":  strconv.FormatInt(req.ContentLength, 10),
		"KeepAlive":      strconv.FormatBool(req.KeepAlive),
		"Upgrade":        strconv.FormatBool(req.Upgrade),
		"Expect100":      strconv.FormatBool(req.Expect100),
		"ExpectOther":    strconv.FormatBool(req.ExpectOther),
		"WantsTrailers":  strconv.FormatBool(req.WantsTrailers),
		"BothTEAndCL":    strconv.FormatBool(req.BothTEAndCL),
		"HostFromTarget": strconv.FormatBool(req.HostFromTarget),
		"XFFCount":       strconv.Itoa(req.XFFCount),
		"Fields":         fieldsString(req.Fields),
		"Kinds":          kindsString(req.Kinds),
	}
}

// responseProps renders every property of resp that the tests check.
func responseProps(resp *Response) map[string]string {
	return map[string]string{
		"Proto":         "HTTP/1." + strconv.Itoa(resp.Minor),
		"Minor":         strconv.Itoa(resp.Minor),
		"Status":        strconv.Itoa(resp.Status),
		"Reason":        bytesOrNil(resp.Reason),
		"Framing":       framingName(resp.Framing),
		"ContentLength": strconv.FormatInt(resp.ContentLength, 10),
		"Close":         strconv.FormatBool(resp.Close),
		"HasLength":     strconv.FormatBool(resp.HasLength),
		"Fields":        fieldsString(resp.Fields),
		"Kinds":         kindsString(resp.Kinds),
	}
}

// checkProps compares the properties named in want with got's.
func checkProps(t *testing.T, got, want map[string]string) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Fatalf("test bug: no property %q", k)
		}
		if g != w {
			t.Errorf("%s = %q, want %q", k, g, w)
		}
	}
}

// errLoop reports a Next that kept returning (nil, nil) without reading.
var errLoop = errors.New("test: Next returned (nil, nil) twice in a row without reading")

// readBody reads b to its end and returns the body's bytes and the error
// that ended it (nil at io.EOF). reads, if not nil, counts the Reads made
// below the Reader: two (nil, nil) in a row with no Read between is an
// error.
func readBody(b *Body, reads func() int) ([]byte, error) {
	var data []byte
	nils, readsAtNil := 0, 0
	for {
		p, err := b.Next()
		data = append(data, p...)
		if err == io.EOF {
			return data, nil
		}
		if err != nil {
			return data, err
		}
		if len(p) > 0 {
			nils = 0
			continue
		}
		switch {
		case reads != nil && nils > 0 && reads() == readsAtNil:
			return data, errLoop
		case reads == nil && nils > 3:
			return data, errLoop
		}
		nils++
		if reads != nil {
			readsAtNil = reads()
		}
	}
}

// countingReader counts the Reads made on it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.n++
	return c.r.Read(p)
}

func errName(err error) string {
	if err == nil {
		return "<nil>"
	}
	if e, ok := IsError(err); ok {
		return fmt.Sprintf("%d %q", e.Status, e.Cause)
	}
	return err.Error()
}

// sameErr reports whether got is want: the same *Error, or an error that
// errors.Is want.
func sameErr(got, want error) bool {
	if want == nil || got == nil {
		return got == want
	}
	return got == want || errors.Is(got, want)
}
