package desync

import (
	"bytes"
	"github.com/latch-lb/latch/internal/desync/desynctest"
	"path/filepath"
	"testing"

	"github.com/latch-lb/latch/internal/h1"
)

// referenceClassify follows http-desync-guardian's analyze_request_internal
// step by step: it first lists the Transfer-Encoding and Content-Length
// headers, then checks them, raising one verdict in order. Classify checks
// them in the same pass as the names instead, holding their findings apart
// until ALB would weigh them; comparing the two checks that restructuring.
// The pieces both share (byte classes, resemble, parseVersion,
// transferCoding, parseLength) are tested on their own.
func referenceClassify(method, uri, version []byte, fields []h1.Field) (Tier, Reason) {
	tier, reason := Compliant, ReasonCompliant
	upgrade := func(r Reason) {
		if r.Tier() > tier {
			tier, reason = r.Tier(), r
		}
	}
	proto, versionReason, _ := parseVersion(version)

	var teIdx, clIdx []int
	for i, f := range fields {
		te := resemble(f.Name, teName)
		cl := unlike
		if te == unlike {
			cl = resemble(f.Name, clName)
		}
		essential := te == same || cl == same
		g := max(grade(f.Name, cToken), grade(f.Value, cValue))
		switch g {
		case broken:
			upgrade(BadHeader)
		case deviant:
			upgrade(NonCompliantHeader)
		}
		trimmed := h1.TrimOWS(f.Name)
		switch {
		case len(trimmed) == 0 || trimmed[0] == ':':
			upgrade(EmptyHeader)
		case !essential && g != broken:
			if te == lookalike {
				teIdx = append(teIdx, i)
				upgrade(SuspiciousHeader)
			} else if cl == lookalike {
				clIdx = append(clIdx, i)
				upgrade(SuspiciousHeader)
			}
		case te == same:
			teIdx = append(teIdx, i)
		case cl == same:
			clIdx = append(clIdx, i)
		}
	}

	if len(teIdx) > 0 || len(clIdx) > 0 {
		switch {
		case proto != http11 && len(teIdx) > 0:
			upgrade(UndefinedTransferEncodingSemantics)
		case proto == http09 && len(clIdx) > 0:
			upgrade(UndefinedContentLengthSemantics)
		default:
			chunkedLast := false
			for _, i := range teIdx {
				for _, item := range bytes.Split(fields[i].Value, []byte(",")) {
					c := transferCoding(item)
					if c == unknownCoding {
						upgrade(BadTransferEncoding)
						continue
					}
					if chunkedLast && c == chunked {
						upgrade(MultipleTransferEncodingChunked)
					}
					chunkedLast = c == chunked
				}
			}
			var length *uint64
			for _, i := range clIdx {
				n, problem := parseLength(fields[i].Value)
				switch {
				case problem != "":
					upgrade(BadContentLength)
				case length == nil:
					length = &n
				case *length != n:
					upgrade(MultipleContentLength)
				default:
					upgrade(DuplicateContentLength)
				}
			}
			if m := string(method); m == "GET" || m == "HEAD" {
				if len(teIdx) > 0 {
					upgrade(UndefinedTransferEncodingSemantics)
				}
				if length != nil && *length == 0 {
					upgrade(GetHeadZeroContentLength)
				} else if length != nil {
					upgrade(UndefinedContentLengthSemantics)
				}
			}
			if length != nil && len(teIdx) > 0 {
				upgrade(BothTeClPresent)
			}
		}
	}

	for _, c := range method {
		if class[c]&cToken == 0 {
			upgrade(BadMethod)
			break
		}
	}
	upgrade(versionReason)
	for _, c := range uri {
		switch {
		case class[c]&cTarget != 0:
		case c == '\r' || c == '\n' || c == 0:
			upgrade(BadUri)
			return tier, reason
		case c == ' ':
			upgrade(SpaceInUri)
		default:
			upgrade(AmbiguousUri)
		}
	}
	return tier, reason
}

// encodeFields and decodeFields turn header fields into one fuzzer input:
// each name and value is a length byte and that many bytes, so names and
// values can hold any byte.
func encodeFields(kv ...string) []byte {
	var b []byte
	for _, s := range kv {
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	return b
}

func decodeFields(b []byte) []h1.Field {
	var fields []h1.Field
	next := func() []byte {
		n := 0
		if len(b) > 0 {
			n, b = min(int(b[0]), len(b)-1), b[1:]
		}
		s := b[:n]
		b = b[n:]
		return s
	}
	for len(b) > 0 {
		name := next()
		fields = append(fields, h1.Field{Name: name, Value: next()})
	}
	return fields
}

func FuzzClassify(f *testing.F) {
	f.Add([]byte("GET"), []byte("/"), []byte("HTTP/1.1"), encodeFields("Host", "example.com"))
	f.Add([]byte("POST"), []byte("/a?b"), []byte("HTTP/1.1"), encodeFields("Transfer-Encoding", "chunked", "Content-Length", "5"))
	f.Add([]byte("POST"), []byte("/"), []byte("HTTP/1.0"), encodeFields("Transfer-Encoding ", "gzip, chunked", "content-length", "0"))
	f.Add([]byte("HEAD"), []byte("/ x"), []byte(""), encodeFields("Tran\xc5\xbffer-Encoding", "chunked;x", "Content_Length", "1"))
	for _, c := range desynctest.LoadDir(f, filepath.Join("testdata", "corpus")) {
		var kv []string
		for _, h := range c.Headers {
			kv = append(kv, h.Name, h.Value)
		}
		f.Add([]byte(c.Method), []byte(c.URI), []byte(c.Version), encodeFields(kv...))
	}

	f.Fuzz(func(t *testing.T, method, uri, version, encoded []byte) {
		fields := decodeFields(encoded)
		before := bytes.Join([][]byte{method, uri, version, encoded}, []byte{0})

		v := Classify(method, uri, version, fields)

		if !bytes.Equal(before, bytes.Join([][]byte{method, uri, version, encoded}, []byte{0})) {
			t.Fatal("Classify changed its input")
		}
		if tier, reason := referenceClassify(method, uri, version, fields); v.Tier != tier || v.Reason != reason {
			t.Fatalf("got %v/%v, the reference gives %v/%v", v.Tier, v.Reason, tier, reason)
		}
		if v.Reason.Tier() != v.Tier || v.Reason >= numReasons {
			t.Fatalf("reason %v does not belong to tier %v", v.Reason, v.Tier)
		}
		if (v.Tier == Compliant) != (v.Message == "") {
			t.Fatalf("%v verdict with message %q", v.Tier, v.Message)
		}
		// Messages are for logs: short, and printable ASCII whatever the
		// request held.
		if len(v.Message) > 300 {
			t.Fatalf("message of %d bytes", len(v.Message))
		}
		for _, c := range []byte(v.Message) {
			if c < ' ' || c > '~' {
				t.Fatalf("message %q has byte %#x", v.Message, c)
			}
		}
		if v.Tier == Compliant {
			checkCompliant(t, method, uri, version, fields)
		}
	})
}

// checkCompliant states, independently of how Classify works, what a
// Compliant request must look like.
func checkCompliant(t *testing.T, method, uri, version []byte, fields []h1.Field) {
	t.Helper()
	isToken := func(b []byte) bool {
		for _, c := range b {
			if c <= ' ' || c >= 0x7f || bytes.IndexByte([]byte(`"(),/:;<=>?@[\]{}`), c) >= 0 {
				return false
			}
		}
		return true
	}
	if !isToken(method) {
		t.Fatalf("Compliant with method %q", method)
	}
	if v := string(version); v != "HTTP/1.0" && v != "HTTP/1.1" {
		t.Fatalf("Compliant with version %q", version)
	}
	for _, c := range uri {
		if c <= ' ' || c == 0x7f {
			t.Fatalf("Compliant with URI %q", uri)
		}
	}
	var te, cl int
	for _, f := range fields {
		if len(f.Name) == 0 || !isToken(f.Name) {
			t.Fatalf("Compliant with header name %q", f.Name)
		}
		for _, c := range f.Value {
			if c < ' ' && c != '\t' || c == 0x7f {
				t.Fatalf("Compliant with %q value %q", f.Name, f.Value)
			}
		}
		switch {
		case h1.EqualLower(f.Name, teName):
			te++
		case h1.EqualLower(f.Name, clName):
			cl++
		}
	}
	if cl > 1 || te > 0 && cl > 0 || (te > 0 || cl > 0) && string(method) == "GET" {
		t.Fatalf("Compliant with %d Transfer-Encoding and %d Content-Length headers, method %q", te, cl, method)
	}
	if te > 0 && string(version) != "HTTP/1.1" {
		t.Fatalf("Compliant with Transfer-Encoding in %s", version)
	}
}
