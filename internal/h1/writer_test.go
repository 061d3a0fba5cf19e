package h1

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// recWriter records every Write it gets, failing from the failAt'th on
// (counting from 1; 0 never fails).
type recWriter struct {
	calls  [][]byte // the slices passed, not copies
	out    bytes.Buffer
	failAt int
	err    error
}

func (r *recWriter) Write(p []byte) (int, error) {
	r.calls = append(r.calls, p)
	if r.failAt > 0 && len(r.calls) >= r.failAt {
		return 0, r.err
	}
	r.out.Write(p)
	return len(p), nil
}

func TestWriterBuffers(t *testing.T) {
	rec := &recWriter{}
	w := NewWriter(rec)
	if w.buf != nil {
		t.Fatal("a new Writer holds a buffer")
	}
	w.WriteString("abc")
	w.Write([]byte("def"))
	w.WriteByte('g')
	w.WriteInt(-42)
	w.WriteField([]byte("Name"), []byte("value"))
	const want = "abcdefg-42Name: value\r\n"
	if len(rec.calls) != 0 || w.Buffered() != len(want) {
		t.Fatalf("%d writes, %d buffered; want none, %d", len(rec.calls), w.Buffered(), len(want))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(rec.calls) != 1 || rec.out.String() != want {
		t.Fatalf("Flush wrote %d times: %q", len(rec.calls), rec.out.String())
	}
	if w.buf != nil || w.bufp != nil || w.Buffered() != 0 {
		t.Fatal("Flush kept the buffer")
	}
	// Flush with nothing written writes nothing.
	if err := w.Flush(); err != nil || len(rec.calls) != 1 {
		t.Fatalf("empty Flush: %v, %d writes", err, len(rec.calls))
	}
}

func TestWriterLargeWrites(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 20000)
	rec := &recWriter{}
	w := NewWriter(rec)
	w.WriteString("head")
	w.Write(big)
	if len(rec.calls) != 2 || string(rec.calls[0]) != "head" || &rec.calls[1][0] != &big[0] {
		t.Fatalf("a large write: %d writes; want the buffer, then the slice itself", len(rec.calls))
	}
	if w.Buffered() != 0 {
		t.Fatalf("%d bytes buffered after a large write", w.Buffered())
	}

	// A slice of exactly the buffer's size fits an empty buffer.
	exact := bytes.Repeat([]byte("e"), cap(w.buf))
	w.Write(exact)
	if len(rec.calls) != 2 || w.Buffered() != len(exact) {
		t.Fatalf("a buffer-sized write: %d writes, %d buffered; want 2, %d", len(rec.calls), w.Buffered(), len(exact))
	}

	// One that does not fit in what is left flushes, then is buffered.
	fill := bytes.Repeat([]byte("f"), cap(w.buf)-10)
	w.Write(fill)
	w.Write(bytes.Repeat([]byte("g"), 100))
	if len(rec.calls) != 4 || len(rec.calls[3]) != len(fill) || w.Buffered() != 100 {
		t.Fatalf("%d writes, %d buffered; want 4, 100", len(rec.calls), w.Buffered())
	}
	w.Flush()
	want := "head" + string(big) + string(exact) + string(fill) + strings.Repeat("g", 100)
	if rec.out.String() != want {
		t.Fatal("the output is not what was written, in order")
	}
}

func TestWriterLongString(t *testing.T) {
	s := strings.Repeat("0123456789", 4000) // 40000 bytes
	rec := &recWriter{}
	w := NewWriter(rec)
	w.WriteString("<")
	w.WriteString(s)
	w.WriteString(">")
	w.Flush()
	if rec.out.String() != "<"+s+">" {
		t.Fatal("WriteString mangled a string longer than the buffer")
	}
	for i, c := range rec.calls[:len(rec.calls)-1] {
		if len(c) != bufSize {
			t.Errorf("write %d of %d bytes, want full buffers before the last", i, len(c))
		}
	}
}

func TestWriterFullBuffer(t *testing.T) {
	rec := &recWriter{}
	w := NewWriter(rec)
	w.WriteString(strings.Repeat("a", bufSize))
	w.WriteByte('b')
	if len(rec.calls) != 1 || w.Buffered() != 1 {
		t.Fatalf("WriteByte on a full buffer: %d writes, %d buffered", len(rec.calls), w.Buffered())
	}
	w.WriteString(strings.Repeat("c", bufSize-6))
	w.WriteInt(1234567890123)
	w.WriteChunk([]byte("xyz"))
	w.Flush()
	want := strings.Repeat("a", bufSize) + "b" + strings.Repeat("c", bufSize-6) + "1234567890123" + "3\r\nxyz\r\n"
	if rec.out.String() != want {
		t.Fatalf("near a full buffer: %q...", rec.out.String()[len(rec.out.String())-40:])
	}
}

func TestWriteChunk(t *testing.T) {
	big := strings.Repeat("z", 20000)
	for _, tt := range []struct {
		in, want string
	}{
		{"hello", "5\r\nhello\r\n"},
		{"", ""},
		{"abcdefghijklmnopqrstuvwxyz", "1a\r\nabcdefghijklmnopqrstuvwxyz\r\n"},
		{strings.Repeat("q", 255), "ff\r\n" + strings.Repeat("q", 255) + "\r\n"},
		{big, "4e20\r\n" + big + "\r\n"},
	} {
		rec := &recWriter{}
		w := NewWriter(rec)
		w.WriteChunk([]byte(tt.in))
		w.Flush()
		if rec.out.String() != tt.want {
			got := rec.out.String()
			if len(got) > 40 {
				got = got[:40] + "..."
			}
			t.Errorf("WriteChunk(%d bytes) = %q", len(tt.in), got)
		}
	}
}

func TestWriteLastChunk(t *testing.T) {
	f := func(n, v string) Field { return Field{[]byte(n), []byte(v)} }
	for _, tt := range []struct {
		trailer []Field
		want    string
	}{
		{nil, "0\r\n\r\n"},
		{[]Field{f("Grpc-Status", "0"), f("grpc-message", "")}, "0\r\nGrpc-Status: 0\r\ngrpc-message: \r\n\r\n"},
		{[]Field{f("X-A", "1"), f("Connection", "x"), f("Content-Length", "5"), f("transfer-encoding", "chunked"),
			f("TE", "trailers"), f("Keep-Alive", "1"), f("Upgrade", "x"), f("Proxy-Authorization", "x"), f("X-B", "2")},
			"0\r\nX-A: 1\r\nX-B: 2\r\n\r\n"},
	} {
		rec := &recWriter{}
		w := NewWriter(rec)
		w.WriteLastChunk(tt.trailer)
		w.Flush()
		if rec.out.String() != tt.want {
			t.Errorf("WriteLastChunk(%s) = %q, want %q", fieldsString(tt.trailer), rec.out.String(), tt.want)
		}
	}
}

func TestWriterStickyError(t *testing.T) {
	errX := errors.New("x")
	for _, tt := range []struct {
		name  string
		first func(w *Writer)
	}{
		{"on Flush", func(w *Writer) { w.WriteString("a"); w.Flush() }},
		{"on a large write", func(w *Writer) { w.Write(make([]byte, 20000)) }},
		{"on a flush by a write", func(w *Writer) { w.WriteString("a"); w.Write(make([]byte, bufSize)) }},
		{"on a flush by WriteString", func(w *Writer) { w.WriteString(strings.Repeat("a", bufSize+1)) }},
	} {
		rec := &recWriter{failAt: 1, err: errX}
		w := NewWriter(rec)
		tt.first(w)
		if w.Err() != errX {
			t.Errorf("%s: Err() = %v, want %v", tt.name, w.Err(), errX)
			continue
		}
		if n, err := w.Write([]byte("b")); n != 0 || err != errX {
			t.Errorf("%s: Write after the error = %d, %v", tt.name, n, err)
		}
		if err := w.WriteByte('c'); err != errX {
			t.Errorf("%s: WriteByte after the error = %v", tt.name, err)
		}
		w.WriteString("d")
		w.WriteInt(5)
		w.WriteChunk([]byte("e"))
		w.WriteLastChunk(nil)
		w.WriteField([]byte("f"), []byte("g"))
		w.Write(make([]byte, 20000))
		if err := w.Flush(); err != errX {
			t.Errorf("%s: Flush after the error = %v", tt.name, err)
		}
		if len(rec.calls) != 1 {
			t.Errorf("%s: %d writes, want none after the error", tt.name, len(rec.calls))
		}
		if w.buf != nil || w.Buffered() != 0 {
			t.Errorf("%s: Flush after an error kept the buffer", tt.name)
		}
		// Reset clears the error and writes to the new destination.
		rec2 := &recWriter{}
		w.Reset(rec2)
		w.WriteString("ok")
		if err := w.Flush(); err != nil || rec2.out.String() != "ok" {
			t.Errorf("%s: after Reset: %v, %q", tt.name, err, rec2.out.String())
		}
	}
}

func TestWriterResetDrops(t *testing.T) {
	rec := &recWriter{}
	w := NewWriter(rec)
	w.WriteString("dropped")
	w.Reset(rec)
	if w.buf != nil || w.Buffered() != 0 {
		t.Fatal("Reset kept the buffer")
	}
	w.Flush()
	if len(rec.calls) != 0 {
		t.Fatalf("Reset then Flush wrote %q", rec.out.String())
	}
	w.Reset(nil) // as the proxy does when a connection ends
}

// TestWriterTCP writes through a real socket: more than the socket takes
// at once, to a slow reader, then to a peer that has gone.
func TestWriterTCP(t *testing.T) {
	client, server := tcpPair(t)
	w := NewWriter(server)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	got := make(chan []byte)
	go func() {
		var b []byte
		buf := make([]byte, 1000)
		for {
			time.Sleep(time.Microsecond)
			n, err := client.Read(buf)
			b = append(b, buf[:n]...)
			if err != nil {
				got <- b
				return
			}
		}
	}()
	w.WriteString("start ")
	w.Write(big)
	w.WriteChunk([]byte("chunk"))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	server.CloseWrite()
	if b := <-got; string(b) != "start "+string(big)+"5\r\nchunk\r\n" {
		t.Fatalf("the peer read %d bytes, want %d", len(b), len(big)+len("start 5\r\nchunk\r\n"))
	}

	// A write deadline.
	_, server2 := tcpPair(t) // the client never reads
	w2 := NewWriter(server2)
	server2.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	for i := 0; i < 1000 && w2.Err() == nil; i++ {
		w2.Write(big)
	}
	if !errors.Is(w2.Err(), os.ErrDeadlineExceeded) {
		t.Fatalf("writing past a write deadline: %v, want os.ErrDeadlineExceeded", w2.Err())
	}

	// A peer that has gone: the error sticks, and nothing panics.
	client.Close()
	time.Sleep(20 * time.Millisecond)
	for i := 0; i < 100 && w.Err() == nil; i++ {
		w.Write(big)
	}
	err := w.Err()
	if !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("writing to a closed peer: %v, want EPIPE or ECONNRESET", err)
	}
	if w.Flush() != err {
		t.Fatal("the error did not stick")
	}
}
