// Package h2 is latch's HTTP/2 server side (RFC 9113): a connection engine
// that parses frames in place from pooled buffers, runs the stream state
// machine and flow control, and hands streams to a Handler without a
// goroutine, an http.Request or a header map per stream.
package h2

import (
	"encoding/binary"
	"strconv"
)

// FrameType is a frame's type (RFC 9113 §6).
type FrameType uint8

const (
	FrameData         FrameType = 0x0
	FrameHeaders      FrameType = 0x1
	FramePriority     FrameType = 0x2
	FrameRSTStream    FrameType = 0x3
	FrameSettings     FrameType = 0x4
	FramePushPromise  FrameType = 0x5
	FramePing         FrameType = 0x6
	FrameGoAway       FrameType = 0x7
	FrameWindowUpdate FrameType = 0x8
	FrameContinuation FrameType = 0x9
)

// Frame flags.
const (
	flagEndStream  = 0x1
	flagAck        = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8
	flagPriority   = 0x20
)

// ErrCode is an error code of RST_STREAM and GOAWAY (RFC 9113 §7).
type ErrCode uint32

const (
	NoError            ErrCode = 0x0
	ProtocolError      ErrCode = 0x1
	InternalError      ErrCode = 0x2
	FlowControlError   ErrCode = 0x3
	SettingsTimeout    ErrCode = 0x4
	StreamClosed       ErrCode = 0x5
	FrameSizeError     ErrCode = 0x6
	RefusedStream      ErrCode = 0x7
	Cancel             ErrCode = 0x8
	CompressionError   ErrCode = 0x9
	ConnectError       ErrCode = 0xa
	EnhanceYourCalm    ErrCode = 0xb
	InadequateSecurity ErrCode = 0xc
	HTTP11Required     ErrCode = 0xd
)

var codeNames = [...]string{"NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
	"SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL",
	"COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"}

func (c ErrCode) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "unknown error code 0x" + strconv.FormatUint(uint64(c), 16)
}

// Settings identifiers (RFC 9113 §6.5.2).
const (
	settingHeaderTableSize      = 0x1
	settingEnablePush           = 0x2
	settingMaxConcurrentStreams = 0x3
	settingInitialWindowSize    = 0x4
	settingMaxFrameSize         = 0x5
	settingMaxHeaderListSize    = 0x6
)

const (
	// Preface is what a client sends first (RFC 9113 §3.4).
	Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	// headerLen is a frame header's length.
	headerLen = 9
	// minMaxFrame is the least SETTINGS_MAX_FRAME_SIZE, and the largest
	// frame latch accepts: it never advertises more.
	minMaxFrame = 1 << 14
	maxMaxFrame = 1<<24 - 1
	maxWindow   = 1<<31 - 1
	// defaultWindow is a window's size before SETTINGS say otherwise.
	defaultWindow = 65535
)

// FrameHeader is a frame's fixed 9-byte header.
type FrameHeader struct {
	Length   uint32
	Type     FrameType
	Flags    uint8
	StreamID uint32
}

// ParseHeader reads a frame header from b, which holds at least 9 bytes.
// The stream identifier's reserved bit is ignored, as RFC 9113 §4.1 says.
func ParseHeader(b []byte) FrameHeader {
	_ = b[8]
	return FrameHeader{
		Length:   uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]),
		Type:     FrameType(b[3]),
		Flags:    b[4],
		StreamID: binary.BigEndian.Uint32(b[5:]) & maxWindow,
	}
}

// appendHeader appends a frame header to b.
func appendHeader(b []byte, length int, t FrameType, flags uint8, id uint32) []byte {
	return append(b, byte(length>>16), byte(length>>8), byte(length), byte(t), flags,
		byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
}

// putLength writes a frame length into the header at b[0:3].
func putLength(b []byte, length int) {
	b[0], b[1], b[2] = byte(length>>16), byte(length>>8), byte(length)
}

func appendUint32(b []byte, v uint32) []byte {
	return append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}
