package desync

import (
	"strings"
	"testing"

	"github.com/latch-lb/latch/internal/h1"
)

func fields(kv ...string) []h1.Field {
	fs := make([]h1.Field, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		fs = append(fs, h1.Field{Name: []byte(kv[i]), Value: []byte(kv[i+1])})
	}
	return fs
}

// TestClassify covers what the corpus does not: where this package departs
// from http-desync-guardian, the library's quirks that it keeps, and how the
// data path presents lines that are not plain header fields.
func TestClassify(t *testing.T) {
	tests := []struct {
		name                 string
		method, uri, version string
		fields               []h1.Field
		tier                 Tier
		reason               Reason
	}{
		// Departures: every version other than HTTP/1.x and HTTP/0.9 is
		// checked and bad, where the library skipped anything sorting at or
		// after "HTTP/2", lower case included.
		{"HTTP/2.0 is checked", "POST", "/", "HTTP/2.0", fields("Transfer-Encoding", "chunked", "Content-Length", "4"), Severe, BadVersion},
		{"HTTP/3 is checked", "GET", "/", "HTTP/3", nil, Severe, BadVersion},
		{"lower-case version is checked", "POST", "/", "http/1.1", fields("Transfer-Encoding", "chunked", "Content-Length", "4"), Severe, BadVersion},
		{"padded HTTP/1.0 has no Transfer-Encoding", "POST", "/", "HTTP/1.0 ", fields("Transfer-Encoding", "chunked"), Ambiguous, UndefinedTransferEncodingSemantics},
		{"padded HTTP/1.0 alone", "GET", "/", " HTTP/1.0", nil, Acceptable, NonCompliantVersion},
		{"malformed version with bad length", "POST", "/", "HTTP/1.1.1", fields("Content-Length", "x"), Severe, BadContentLength},

		// Kept quirks of ALB's rules; the framing code covers what they miss.
		{"chunked not last is the framing code's to reject", "POST", "/", "HTTP/1.1", fields("Transfer-Encoding", "chunked, gzip"), Compliant, ReasonCompliant},
		{"chunked twice but not in a row", "POST", "/", "HTTP/1.1", fields("Transfer-Encoding", "chunked, gzip, chunked"), Compliant, ReasonCompliant},
		{"chunked twice in a row across headers", "POST", "/", "HTTP/1.1", fields("Transfer-Encoding", "gzip, chunked", "Transfer-Encoding", "chunked"), Severe, MultipleTransferEncodingChunked},
		{"no chunked at all", "POST", "/", "HTTP/1.1", fields("Transfer-Encoding", "gzip"), Compliant, ReasonCompliant},
		{"empty coding", "POST", "/", "HTTP/1.1", fields("Transfer-Encoding", "chunked,"), Severe, BadTransferEncoding},
		{"empty Transfer-Encoding", "POST", "/", "HTTP/1.1", fields("Transfer-Encoding", ""), Severe, BadTransferEncoding},
		{"empty Content-Length reads as 0", "POST", "/", "HTTP/1.1", fields("Content-Length", ""), Compliant, ReasonCompliant},
		{"empty Content-Length on GET", "GET", "/", "HTTP/1.1", fields("Content-Length", ""), Acceptable, GetHeadZeroContentLength},
		{"largest 64-bit length", "POST", "/", "HTTP/1.1", fields("Content-Length", "18446744073709551615"), Compliant, ReasonCompliant},
		{"negative length", "POST", "/", "HTTP/1.1", fields("Content-Length", "-1"), Severe, BadContentLength},
		{"plus sign", "POST", "/", "HTTP/1.1", fields("Content-Length", "+1"), Severe, BadContentLength},
		{"lower-case get is not GET", "get", "/", "HTTP/1.1", fields("Content-Length", "5"), Compliant, ReasonCompliant},
		{"empty method", "", "/", "HTTP/1.1", nil, Compliant, ReasonCompliant},
		{"DEL in URI", "GET", "/\x7f", "HTTP/1.1", nil, Ambiguous, AmbiguousUri},
		{"obs-text in URI", "GET", "/\xff", "HTTP/1.1", nil, Compliant, ReasonCompliant},
		{"second length differs from the first, third equals it", "POST", "/", "HTTP/1.1", fields("Content-Length", "1", "Content-Length", "1", "Content-Length", "2"), Severe, MultipleContentLength},
		{"broken lookalike is not read as a length", "POST", "/", "HTTP/1.1", fields("Content-Length\r", "5", "Content-Length", "6"), Severe, BadHeader},
		{"method checked after headers", "G\x01T", "/", "HTTP/1.1", fields("Transfer-Encoding", "chunked", "Content-Length", "1"), Severe, BadMethod},
		{"first Severe wins", "G\x01T", "/\r", "HTTP/9", nil, Severe, BadMethod},

		// Names: what resembles Transfer-Encoding or Content-Length.
		{"name equal but for case", "POST", "/", "HTTP/1.1", fields("TRANSFER-ENCODING", "chunked", "content-length", "1"), Ambiguous, BothTeClPresent},
		{"extra letter", "POST", "/", "HTTP/1.1", fields("Transfer-Encodings", "chunked"), Compliant, ReasonCompliant},
		{"prefix", "POST", "/", "HTTP/1.1", fields("X-Transfer-Encoding", "chunked"), Compliant, ReasonCompliant},
		{"any byte stands for the hyphen", "POST", "/", "HTTP/1.1", fields("TransferXEncoding", "chunked"), Ambiguous, SuspiciousHeader},
		{"trailing punctuation for the last letter", "POST", "/", "HTTP/1.1", fields("Content-Lengt.", "1"), Ambiguous, SuspiciousHeader},
		{"short name", "POST", "/", "HTTP/1.1", fields("Content-Lengt", "1"), Compliant, ReasonCompliant},
		{"lookalike with bad value", "POST", "/", "HTTP/1.1", fields("Content_Length", "1x"), Severe, BadContentLength},

		// How the data path presents lines that are not plain fields.
		{"obs-fold kept in the value", "GET", "/", "HTTP/1.1", fields("X-Long", "first\r\n second"), Severe, BadHeader},
		{"obs-fold after a bare LF", "GET", "/", "HTTP/1.1", fields("X-Long", "first\n second"), Severe, BadHeader},
		{"continuation line before any field", "POST", "/", "HTTP/1.1", fields(" Transfer-Encoding", "chunked"), Ambiguous, SuspiciousHeader},
		{"continuation line of spaces before any field", "GET", "/", "HTTP/1.1", fields(" ", "x"), Ambiguous, EmptyHeader},
		{"line without a colon", "GET", "/", "HTTP/1.1", fields("", "Transfer-Encoding chunked"), Ambiguous, EmptyHeader},
		{"bare CR inside a line", "GET", "/", "HTTP/1.1", fields("X", "a\rTransfer-Encoding: chunked"), Severe, BadHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Classify([]byte(tt.method), []byte(tt.uri), []byte(tt.version), tt.fields)
			if v.Tier != tt.tier || v.Reason != tt.reason {
				t.Errorf("got %v/%v (%q), want %v/%v", v.Tier, v.Reason, v.Message, tt.tier, tt.reason)
			}
			if tier, reason := referenceClassify([]byte(tt.method), []byte(tt.uri), []byte(tt.version), tt.fields); tier != v.Tier || reason != v.Reason {
				t.Errorf("the reference gives %v/%v", tier, reason)
			}
		})
	}
}

func TestResemble(t *testing.T) {
	tests := []struct {
		name string
		want string
		like likeness
	}{
		{"Transfer-Encoding", teName, same},
		{"tRANSFER-eNCODING", teName, same},
		{"Transfer_Encoding", teName, lookalike},
		{"Transfer-Encoding\t", teName, lookalike},
		{"\x00Transfer-Encoding", teName, lookalike},
		{"Trans fer-Encoding", teName, lookalike},
		{"Transfer--Encoding", teName, lookalike},
		{"Tranſfer-Encoding", teName, lookalike},
		{"Transfer-Encodıng", teName, lookalike},
		{"Transfer-Encoding-X", teName, unlike},
		{"Transfer-Encodin", teName, unlike},
		{"Transfer-Encodinh", teName, unlike},
		{"Content-Length", clName, same},
		{"Content-Length: ", clName, lookalike},
		{"ContentLength", clName, unlike}, // too short: the hyphen needs a byte of its own
		{"Content-Type", clName, unlike},
		{"", clName, unlike},
	}
	for _, tt := range tests {
		if got := resemble([]byte(tt.name), tt.want); got != tt.like {
			t.Errorf("resemble(%q, %q) = %d, want %d", tt.name, tt.want, got, tt.like)
		}
	}
}

func TestMessage(t *testing.T) {
	t.Run("masks ordinary values", func(t *testing.T) {
		v := Classify([]byte("GET"), []byte("/"), []byte("HTTP/1.1"), fields("Cookie", "session=hunter2\x00"))
		if want := `CR, LF or NUL in header: "Cookie": "_\0x00"`; v.Message != want {
			t.Errorf("message %q, want %q", v.Message, want)
		}
	})
	t.Run("shows framing values", func(t *testing.T) {
		v := Classify([]byte("POST"), []byte("/"), []byte("HTTP/1.1"), fields("Transfer-Encoding", `chunked"\`))
		if want := `unknown Transfer-Encoding: "Transfer-Encoding": "chunked\"\\"`; v.Message != want {
			t.Errorf("message %q, want %q", v.Message, want)
		}
	})
	t.Run("truncates", func(t *testing.T) {
		long := strings.Repeat("\x01", 1000)
		v := Classify([]byte("POST"), []byte("/"), []byte("HTTP/1.1"), fields(long, long, "Content-Length", long))
		if len(v.Message) > 300 || !strings.Contains(v.Message, `\0x01...`) {
			t.Errorf("message of %d bytes: %q", len(v.Message), v.Message)
		}
	})
	t.Run("empty when Compliant", func(t *testing.T) {
		if v := Classify([]byte("GET"), []byte("/"), []byte("HTTP/1.1"), nil); v != (Verdict{}) {
			t.Errorf("got %+v", v)
		}
	})
}

var (
	browserGET = fields(
		"Host", "www.example.com",
		"User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
		"Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
		"Accept-Language", "en-US,en;q=0.5",
		"Accept-Encoding", "gzip, deflate, br, zstd",
		"Connection", "keep-alive",
		"Cookie", "session=5f2b9c1e0a7d4e3f; theme=dark",
		"Upgrade-Insecure-Requests", "1",
		"Sec-Fetch-Dest", "document",
		"Sec-Fetch-Mode", "navigate",
		"Sec-Fetch-Site", "none",
		"Priority", "u=0, i",
	)
	postWithLength = fields(
		"Host", "api.example.com",
		"User-Agent", "curl/8.5.0",
		"Accept", "*/*",
		"Content-Type", "application/json",
		"Content-Length", "1234",
	)
	// A CL.TE smuggling attempt that hides Transfer-Encoding from engines
	// that match names exactly.
	smuggling = fields(
		"Host", "www.example.com",
		"Content-Length", "44",
		"Transfer-Encoding ", "chunked",
	)
	// The classic CL.TE attempt, with both headers in plain sight.
	teCL = fields(
		"Host", "www.example.com",
		"Content-Length", "44",
		"Transfer-Encoding", "chunked",
	)
)

func TestAllocations(t *testing.T) {
	tests := []struct {
		name                 string
		method, uri, version string
		fields               []h1.Field
		allocs               float64
	}{
		{"browser GET", "GET", "/index.html?q=1", "HTTP/1.1", browserGET, 0},
		{"POST with Content-Length", "POST", "/v1/items", "HTTP/1.1", postWithLength, 0},
		{"both TE and CL", "POST", "/", "HTTP/1.1", teCL, 0},
		{"GET with Content-Length: 0", "GET", "/", "HTTP/1.1", fields("Content-Length", "0"), 0},
		{"space in URI", "GET", "/a b", "HTTP/1.1", browserGET, 0},
		{"HTTP/1.0 with Transfer-Encoding", "POST", "/", "HTTP/1.0", fields("Transfer-Encoding", "chunked"), 0},
		{"bad version", "GET", "/", "HTTP/1.1 x", nil, 0},
		// A message that quotes a header is built once.
		{"lookalike Transfer-Encoding", "POST", "/", "HTTP/1.1", smuggling, 1},
		{"bad header", "GET", "/", "HTTP/1.1", fields("X", "a\rb"), 1},
	}
	for _, tt := range tests {
		method, uri, version := []byte(tt.method), []byte(tt.uri), []byte(tt.version)
		got := testing.AllocsPerRun(100, func() {
			Classify(method, uri, version, tt.fields)
		})
		if got != tt.allocs {
			t.Errorf("%s: %v allocations, want %v", tt.name, got, tt.allocs)
		}
	}
}

func BenchmarkClassify(b *testing.B) {
	benchmarks := []struct {
		name                 string
		method, uri, version string
		fields               []h1.Field
	}{
		{"BrowserGET", "GET", "/index.html?q=1", "HTTP/1.1", browserGET},
		{"PostContentLength", "POST", "/v1/items", "HTTP/1.1", postWithLength},
		{"SmugglingLookalikeTE", "POST", "/", "HTTP/1.1", smuggling},
		{"SmugglingTECL", "POST", "/", "HTTP/1.1", teCL},
	}
	for _, bm := range benchmarks {
		method, uri, version := []byte(bm.method), []byte(bm.uri), []byte(bm.version)
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Classify(method, uri, version, bm.fields)
			}
		})
	}
}

// TestPlainPrefix checks the word-at-a-time scan against the byte tables
// with every byte value at every position of a word, after plain bytes.
func TestPlainPrefix(t *testing.T) {
	for _, lowest := range []byte{' ', '!'} {
		for c := 0; c < 256; c++ {
			for pos := 0; pos < 8; pos++ {
				b := []byte(strings.Repeat("a", 8) + "abcdefgh" + "tail")
				b[8+pos] = byte(c)
				want := 16
				if byte(c) < lowest || c == 0x7f {
					want = 8
				}
				if got := plainPrefix(b, lowest); got != want {
					t.Errorf("plainPrefix(%q, %#x) = %d, want %d", b, lowest, got, want)
				}
			}
		}
	}
}
