package sticky

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
)

// Session is what a sticky cookie carries, sealed so that a client can
// neither read nor forge it.
type Session struct {
	Group      uint64 // GroupTag of the target group that issued it
	Target     string // the target's id
	Generation uint64 // the target's registration generation
	Issued     int64  // unix seconds of the first pick of this target
	LastSeen   int64  // unix seconds of the latest response: the sliding window
}

// Wire format, version 1:
//
//	version(1) | key id(4) | nonce(24) | sealed payload | tag(16)
//	payload: group(8) | generation(8) | issued(8) | last seen(8) | id length(1) | id
//
// The version and key id are authenticated as additional data. The whole is
// standard base64 with padding, as ALB's cookies are.
const (
	version1    = 1
	headerLen   = 1 + 4
	nonceLen    = 24
	tagLen      = 16
	fixedLen    = 8 + 8 + 8 + 8 + 1
	maxTargetID = 255
	maxSealed   = headerLen + nonceLen + fixedLen + maxTargetID + tagLen
	// MaxValueLen is the longest cookie value Encode produces.
	MaxValueLen = (maxSealed + 2) / 3 * 4
)

// Decoding errors. Each is a reason why a cookie does not pin a target.
var (
	ErrMalformed  = errors.New("malformed")   // not base64, wrong size or version (a URL-encoded value lands here)
	ErrUnknownKey = errors.New("unknown key") // sealed with a key not in the ring: foreign, or rotated out
	ErrTampered   = errors.New("tampered")    // failed authentication
)

// Encode seals s with the ring's primary key.
func (kr *Keyring) Encode(s Session) string {
	var out [MaxValueLen]byte
	return string(kr.appendEncode(out[:0], s))
}

// appendEncode appends the sealed, base64-encoded s to dst.
func (kr *Keyring) appendEncode(dst []byte, s Session) []byte {
	if len(s.Target) > maxTargetID {
		panic("sticky: target id longer than 255 bytes")
	}
	var raw [maxSealed]byte
	raw[0] = version1
	binary.BigEndian.PutUint32(raw[1:5], kr.primary)
	nonce := raw[headerLen : headerLen+nonceLen]
	rand.Read(nonce) // never fails (crypto/rand's contract since Go 1.24), about 90 ns
	p := raw[headerLen+nonceLen:]
	binary.BigEndian.PutUint64(p[0:], s.Group)
	binary.BigEndian.PutUint64(p[8:], s.Generation)
	binary.BigEndian.PutUint64(p[16:], uint64(s.Issued))
	binary.BigEndian.PutUint64(p[24:], uint64(s.LastSeen))
	p[32] = byte(len(s.Target))
	n := copy(p[fixedLen:], s.Target)
	plain := p[:fixedLen+n]
	sealed := kr.aeads[kr.primary].Seal(plain[:0], nonce, plain, raw[:headerLen])
	total := headerLen + nonceLen + len(sealed)
	return base64.StdEncoding.AppendEncode(dst, raw[:total])
}

// Decode opens a cookie value sealed by any key of the ring.
func (kr *Keyring) Decode(value string) (Session, error) {
	return kr.decode([]byte(value))
}

func (kr *Keyring) decode(value []byte) (Session, error) {
	if len(value) > MaxValueLen || len(value)%4 != 0 {
		return Session{}, ErrMalformed
	}
	var raw [maxSealed + 3]byte
	n, err := base64.StdEncoding.Decode(raw[:], value)
	if err != nil || n < headerLen+nonceLen+fixedLen+tagLen || raw[0] != version1 {
		return Session{}, ErrMalformed
	}
	aead := kr.aeads[binary.BigEndian.Uint32(raw[1:5])]
	if aead == nil {
		return Session{}, ErrUnknownKey
	}
	nonce := raw[headerLen : headerLen+nonceLen]
	sealed := raw[headerLen+nonceLen : n]
	p, err := aead.Open(sealed[:0], nonce, sealed, raw[:headerLen])
	if err != nil {
		return Session{}, ErrTampered
	}
	if int(p[32]) != len(p)-fixedLen {
		// Authenticated but inconsistent: only a bug could seal this.
		return Session{}, ErrMalformed
	}
	return Session{
		Group:      binary.BigEndian.Uint64(p[0:]),
		Generation: binary.BigEndian.Uint64(p[8:]),
		Issued:     int64(binary.BigEndian.Uint64(p[16:])),
		LastSeen:   int64(binary.BigEndian.Uint64(p[24:])),
		Target:     string(p[fixedLen:]),
	}, nil
}
