package sticky

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"slices"
)

// Session is what a sticky cookie carries, sealed so that a client can
// neither read nor forge it.
type Session struct {
	// ID is the session's own identity: 8 random bytes, fixed when the
	// session starts and kept as long as it lives (across moves, too), so
	// that two clients that start on one target in the same second are
	// still two sessions. 0 asks Encode for a new one.
	ID         uint64
	Group      uint64 // GroupTag of the target group that issued it
	Target     string // the target's id
	Generation uint64 // the target's registration generation
	Issued     int64  // unix seconds of the first pick of this target
	LastSeen   int64  // unix seconds of the latest response: the sliding window
}

// Wire format, version 2:
//
//	version(1) | key id(4) | nonce(24) | sealed payload | tag(16)
//	payload: session id(8) | group(8) | generation(8) | issued(8) | last seen(8) | id length(1) | target id
//
// Version 1, which latch sealed before sessions had an identity, lacks
// the session id; it still opens, and its session's ID is the first 8
// bytes of its nonce, so that it keeps one ID once sealed again as
// version 2. The version and key id are authenticated as additional data.
// The whole is standard base64 with padding, as ALB's cookies are.
const (
	version1    = 1
	version2    = 2
	headerLen   = 1 + 4
	nonceLen    = 24
	tagLen      = 16
	fixedLen1   = 8 + 8 + 8 + 8 + 1
	fixedLen    = 8 + fixedLen1
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

// Encode seals s with the ring's primary key (a new session ID when s.ID
// is 0).
func (kr *Keyring) Encode(s Session) string {
	b, _ := kr.appendEncode(make([]byte, 0, MaxValueLen+maxSealed), s)
	return string(b)
}

// appendEncode appends the sealed, base64-encoded s to dst, and returns
// the session ID it sealed: s.ID, or, when that is 0, a new one taken from
// the nonce's random bytes (the nonce is random and never reused, so its
// bytes serve as an identity as well, at no second call to crypto/rand).
func (kr *Keyring) appendEncode(dst []byte, s Session) ([]byte, uint64) {
	if len(s.Target) > maxTargetID {
		panic("sticky: target id longer than 255 bytes")
	}
	// The sealed bytes are made in dst's spare room, past where their
	// base64 goes: an array here would escape to the heap (the AEAD is an
	// interface), and a caller that keeps dst allocates nothing.
	dst = slices.Grow(dst, MaxValueLen+maxSealed)
	raw := dst[len(dst)+MaxValueLen : len(dst)+MaxValueLen+maxSealed]
	raw[0] = version2
	binary.BigEndian.PutUint32(raw[1:5], kr.primary)
	nonce := raw[headerLen : headerLen+nonceLen]
	rand.Read(nonce) // never fails (crypto/rand's contract since Go 1.24), about 90 ns
	if s.ID == 0 {
		s.ID = nonceID(nonce)
	}
	p := raw[headerLen+nonceLen:]
	binary.BigEndian.PutUint64(p[0:], s.ID)
	q := p[8:]
	binary.BigEndian.PutUint64(q[0:], s.Group)
	binary.BigEndian.PutUint64(q[8:], s.Generation)
	binary.BigEndian.PutUint64(q[16:], uint64(s.Issued))
	binary.BigEndian.PutUint64(q[24:], uint64(s.LastSeen))
	q[32] = byte(len(s.Target))
	n := copy(p[fixedLen:], s.Target)
	plain := p[:fixedLen+n]
	sealed := kr.aeads[kr.primary].Seal(plain[:0], nonce, plain, raw[:headerLen])
	total := headerLen + nonceLen + len(sealed)
	return base64.StdEncoding.AppendEncode(dst, raw[:total]), s.ID
}

// nonceID is the session ID a nonce gives: its first 8 bytes, never 0
// (which means "none").
func nonceID(nonce []byte) uint64 {
	return max(binary.BigEndian.Uint64(nonce), 1)
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
	if err != nil || n < headerLen+nonceLen+fixedLen1+tagLen || raw[0] != version1 && raw[0] != version2 ||
		raw[0] == version2 && n < headerLen+nonceLen+fixedLen+tagLen {
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
	var id uint64
	if raw[0] == version1 {
		id = nonceID(nonce)
	} else {
		id, p = binary.BigEndian.Uint64(p), p[8:]
	}
	if int(p[32]) != len(p)-fixedLen1 {
		// Authenticated but inconsistent: only a bug could seal this.
		return Session{}, ErrMalformed
	}
	return Session{
		ID:         id,
		Group:      binary.BigEndian.Uint64(p[0:]),
		Generation: binary.BigEndian.Uint64(p[8:]),
		Issued:     int64(binary.BigEndian.Uint64(p[16:])),
		LastSeen:   int64(binary.BigEndian.Uint64(p[24:])),
		Target:     string(p[fixedLen1:]),
	}, nil
}
