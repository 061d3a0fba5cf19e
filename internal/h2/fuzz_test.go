package h2

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// fuzzSeeds are client byte streams: a request with a body and trailers,
// floods, a bomb, and frames each broken in its own way.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	add := func(build func(w *wire)) {
		w := newWire()
		w.buf.WriteString(Preface)
		w.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100})
		build(w)
		seeds = append(seeds, bytes.Clone(w.buf.Bytes()))
	}
	add(func(w *wire) {
		w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: w.requestBlock(), EndHeaders: true})
		w.fr.WriteData(1, false, []byte("body"))
		w.hb.Reset()
		w.enc.WriteField(hpack.HeaderField{Name: "grpc-status", Value: "0"})
		w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: w.hb.Bytes(), EndStream: true, EndHeaders: true})
		w.fr.WriteWindowUpdate(1, 1000)
		w.fr.WriteWindowUpdate(0, 1000)
	})
	add(func(w *wire) {
		blk := w.requestBlock()
		w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk[:5], EndHeaders: false})
		w.fr.WriteContinuation(1, false, blk[5:9])
		w.fr.WriteContinuation(1, true, blk[9:])
		w.fr.WriteRSTStream(1, http2.ErrCodeCancel)
		w.fr.WritePing(false, [8]byte{1})
		w.fr.WritePriority(3, http2.PriorityParam{StreamDep: 1, Weight: 4})
		w.fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	})
	add(func(w *wire) {
		blk := w.requestBlock()
		for _, b := range [...]byte{0x80 | 62, 0x80 | 63} {
			blk = append(blk, b, b, b)
		}
		w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk, EndStream: true, EndHeaders: true, PadLength: 3})
		w.fr.WriteRawFrame(0xfe, 0, 0, []byte("unknown"))
		w.fr.WriteData(1, true, nil)
	})
	add(func(w *wire) {
		w.hb.Reset()
		w.enc.WriteField(hpack.HeaderField{Name: ":method", Value: "POST"})
		w.enc.WriteField(hpack.HeaderField{Name: ":path", Value: "/"})
		w.enc.WriteField(hpack.HeaderField{Name: "Content-Length", Value: "x"})
		w.enc.WriteField(hpack.HeaderField{Name: "connection", Value: "close"})
		w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: w.hb.Bytes(), EndHeaders: true})
		w.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 20})
		w.fr.WriteRawFrame(http2.FrameWindowUpdate, 0, 0, []byte{0x7f, 0xff, 0xff, 0xff})
	})
	return seeds
}

// FuzzConn feeds a connection any bytes, in pieces of any size, and
// wants no panic, and only well-formed frames from it.
func FuzzConn(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s, uint16(7))
		f.Add(s, uint16(0))
	}
	f.Fuzz(func(t *testing.T, in []byte, piece uint16) {
		h := &answerer{}
		c := NewConn(h, Config{MaxStreams: 4, MaxHeaderList: 4 << 10})
		var out bytes.Buffer
		for len(in) > 0 && !c.Done() {
			k := len(in)
			if piece > 0 {
				k = min(k, int(piece))
			}
			k = copy(c.ReadBuf(), in[:k])
			c.Received(k)
			in = in[k:]
			out.Write(c.Pending())
			c.Wrote(len(c.Pending()))
		}
		c.Close()
		fr := http2.NewFramer(nil, &out)
		fr.SetMaxReadFrameSize(maxMaxFrame)
		for {
			_, err := fr.ReadFrame()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("the connection wrote a frame x/net cannot read: %v", err)
			}
		}
	})
}

// FuzzHeaderBlock feeds any bytes as a request's header block, to reach
// the HPACK decoder and the field checks directly.
func FuzzHeaderBlock(f *testing.F) {
	w := newWire()
	f.Add(w.requestBlock())
	f.Add(w.requestBlock())
	f.Add([]byte{0x3f, 0xe1, 0x1f, 0x82})
	f.Add([]byte{0x40, 0x01, 'X', 0x01, 'y', 0x82, 0x84, 0x86})
	f.Fuzz(func(t *testing.T, blk []byte) {
		c := warmConn(t, &answerer{}, newWire())
		w := newWire()
		w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: blk[:min(len(blk), minMaxFrame)], EndStream: true, EndHeaders: true})
		feed(c, w.buf.Bytes())
		c.Wrote(len(c.Pending()))
		c.Close()
	})
}
