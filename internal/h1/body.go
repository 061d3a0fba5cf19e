package h1

import (
	"bytes"
	"errors"
	"io"
)

// Body reads a message body from a Reader, decoding its framing. Next
// hands out the body's bytes in place, straight from the connection's
// buffer, so that relaying a body copies each byte once.
type Body struct {
	rd      *Reader
	framing Framing
	left    int64 // Length: bytes left; Chunked: bytes left in this chunk
	state   chunkState
	isResp  bool

	// trailer holds the chunked body's trailer fields once Next has
	// returned io.EOF (see Trailers), copied out of the connection's buffer
	// into trailerB.
	trailer  []Field
	trailerB []byte
}

type chunkState uint8

const (
	chunkSize chunkState = iota // expecting a chunk-size line
	chunkData                   // inside a chunk's data
	chunkCRLF                   // expecting the CRLF after a chunk's data
	chunkDone                   // the body ended
)

// maxChunkLine bounds a chunk-size line (with its extensions) and a
// trailer field line, however the bytes arrive.
const maxChunkLine = 4096

// maxTrailer bounds the trailer section of a chunked body.
const maxTrailer = MaxField

// Reset prepares b to read a body of the given framing from rd; isResp
// chooses which side's errors it reports (400 for a client, 502 for a
// target).
func (b *Body) Reset(rd *Reader, framing Framing, length int64, isResp bool) {
	*b = Body{rd: rd, framing: framing, left: length, isResp: isResp,
		trailer: b.trailer[:0], trailerB: b.trailerB[:0]}
	if framing == NoBody || framing == Length && length == 0 {
		b.state = chunkDone
	}
}

// Done reports whether the whole body has been read.
func (b *Body) Done() bool { return b.state == chunkDone }

// Trailers returns the trailer fields of a chunked body read to its end.
func (b *Body) Trailers() []Field { return b.trailer }

// Next returns the next bytes of the body, valid until the next call; at
// the end it returns io.EOF. It may return no bytes and no error: it then
// stopped rather than wait for the connection (see Reader.Buffered). A
// body cut short returns ErrBodyTooShort (a client's) or
// ErrResponseTruncated (a target's).
func (b *Body) Next() ([]byte, error) {
	switch {
	case b.state == chunkDone:
		return nil, io.EOF
	case b.framing == Length:
		p, err := b.take(b.left)
		b.left -= int64(len(p))
		if b.left == 0 {
			b.state = chunkDone
		}
		return p, err
	case b.framing == UntilClose:
		p, err := b.take(1 << 62)
		if err == io.EOF {
			b.state = chunkDone
		}
		return p, err
	}
	// Chunk framing is consumed as far as the buffer goes; when it runs
	// dry after some progress, Next returns nothing rather than block, so
	// that the caller can pass on what it has before waiting for more.
	progressed := false
	for {
		if progressed && b.rd.r == b.rd.w {
			return nil, nil
		}
		switch b.state {
		case chunkSize:
			if err := b.readChunkSize(); err != nil {
				return nil, err
			}
			if b.state == chunkDone {
				return nil, io.EOF
			}
		case chunkData:
			p, err := b.take(b.left)
			b.left -= int64(len(p))
			if b.left == 0 {
				b.state = chunkCRLF
			}
			return p, err
		case chunkCRLF:
			line, err := b.line()
			if err != nil {
				return nil, err
			}
			if len(line) != 0 {
				return nil, b.formatErr()
			}
			b.state = chunkSize
		}
		progressed = true
	}
}

// take returns up to n buffered body bytes, reading more when none are.
func (b *Body) take(n int64) ([]byte, error) {
	rd := b.rd
	if rd.r == rd.w {
		// Read on behind the message's head, which stays where it is.
		rd.r, rd.w = rd.keep, rd.keep
		if err := rd.fill(); err != nil {
			if err == io.EOF && b.framing != UntilClose {
				return nil, b.shortErr()
			}
			return nil, err
		}
	}
	avail := int64(rd.w - rd.r)
	if avail > n {
		avail = n
	}
	p := rd.buf[rd.r : rd.r+int(avail)]
	rd.r += int(avail)
	return p, nil
}

// line returns the next CRLF-terminated line of the chunked framing.
// Chunked framing is read strictly: a bare LF is an error, as a lenient
// reading is what request smuggling feeds on.
func (b *Body) line() ([]byte, error) {
	rd := b.rd
	for {
		if rd.buf != nil {
			if i := bytes.IndexByte(rd.buf[rd.r:rd.w], '\n'); i >= 0 {
				line := rd.buf[rd.r : rd.r+i]
				rd.r += i + 1
				if len(line) == 0 || line[len(line)-1] != '\r' || len(line) > maxChunkLine {
					return nil, b.formatErr()
				}
				return line[:len(line)-1], nil
			}
			if rd.w-rd.r > maxChunkLine {
				return nil, b.formatErr()
			}
		}
		if err := rd.fill(); err != nil {
			if err == io.EOF || errors.Is(err, errBufferFull) {
				return nil, b.shortErr()
			}
			return nil, err
		}
	}
}

// readChunkSize reads a chunk-size line (hex size, optional extensions,
// which are ignored), and the trailer section after the last chunk.
func (b *Body) readChunkSize() error {
	line, err := b.line()
	if err != nil {
		return err
	}
	var n int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			goto ext
		}
		if i >= 15 {
			return b.formatErr() // would overflow: no body is that large
		}
		n = n<<4 | int64(d)
	}
ext:
	if i == 0 {
		return b.formatErr()
	}
	if rest := line[i:]; len(rest) > 0 {
		// chunk-ext: BWS ";" BWS ext-name ...; anything else after the
		// size is garbage (RFC 9112 §7.1.1).
		rest = TrimOWS(rest)
		if len(rest) == 0 || rest[0] != ';' || !validValue(rest) {
			return b.formatErr()
		}
		if ext := TrimOWS(rest[1:]); len(ext) == 0 || !tchar[ext[0]] {
			return b.formatErr()
		}
	}
	if n > 0 {
		b.left, b.state = n, chunkData
		return nil
	}
	return b.readTrailer()
}

func (b *Body) readTrailer() error {
	// Lines are copied into trailerB, as the connection's buffer moves on;
	// the fields point into it once it has stopped growing.
	type span struct{ start, colon, end int }
	var spans [8]span
	lines := spans[:0]
	for {
		line, err := b.line()
		if err != nil {
			return err
		}
		if len(line) == 0 {
			break
		}
		if len(b.trailerB)+len(line) > maxTrailer {
			if b.isResp {
				return ErrResponseChunk
			}
			return ErrTrailerTooLarge
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !ValidName(line[:colon]) || !validValue(line[colon+1:]) {
			return b.formatErr()
		}
		start := len(b.trailerB)
		b.trailerB = append(b.trailerB, line...)
		lines = append(lines, span{start, start + colon, len(b.trailerB)})
	}
	for _, s := range lines {
		b.trailer = append(b.trailer, Field{Name: b.trailerB[s.start:s.colon], Value: TrimOWS(b.trailerB[s.colon+1 : s.end])})
	}
	b.state = chunkDone
	return nil
}

func (b *Body) formatErr() error {
	if b.isResp {
		return ErrResponseChunk
	}
	return ErrChunkFormat
}

func (b *Body) shortErr() error {
	if b.isResp {
		return ErrResponseTruncated
	}
	return ErrBodyTooShort
}
