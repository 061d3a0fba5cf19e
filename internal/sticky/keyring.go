// Package sticky implements session affinity carried in sealed values: the
// codec, its key ring, and the policies (lb_cookie, app_cookie, header,
// group) that read a request's session and issue the response's.
package sticky

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/crypto/chacha20poly1305"
)

// Key is one cookie key: 32 bytes of secret and the id written in every
// cookie it seals, so that a key ring can hold several.
type Key struct {
	ID     uint32
	Secret []byte
}

// Keyring seals with its first key and opens with any of them, so keys can
// be rotated without breaking live sessions: add a new key first, keep the
// old one until its cookies have expired, then remove it.
//
// The AEAD is XChaCha20-Poly1305: its nonces are 192 random bits, so they
// never repeat in practice and no per-key message limit applies (AES-GCM's
// random 96-bit nonces would cap a key at about 2^32 cookies, which a busy
// balancer reaches in a day), and they reveal nothing, unlike a counter.
type Keyring struct {
	primary uint32
	aeads   map[uint32]cipher.AEAD
}

// NewKeyring builds a key ring; keys[0] seals.
func NewKeyring(keys []Key) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("sticky: a key ring needs at least one key")
	}
	kr := &Keyring{primary: keys[0].ID, aeads: make(map[uint32]cipher.AEAD, len(keys))}
	for _, k := range keys {
		if k.ID == 0 {
			return nil, errors.New("sticky: key id 0 is reserved")
		}
		if _, dup := kr.aeads[k.ID]; dup {
			return nil, fmt.Errorf("sticky: key id %d appears twice", k.ID)
		}
		aead, err := chacha20poly1305.NewX(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("sticky: key %d: %w", k.ID, err)
		}
		kr.aeads[k.ID] = aead
	}
	return kr, nil
}

// NewKey returns a fresh random key.
func NewKey() (Key, error) {
	var b [36]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Key{}, err
	}
	id := binary.BigEndian.Uint32(b[32:])
	if id == 0 {
		id = 1
	}
	return Key{ID: id, Secret: b[:32]}, nil
}

// IDs returns the ids of the ring's keys, the sealing key's first, then
// the others in increasing order.
func (kr *Keyring) IDs() []uint32 {
	ids := make([]uint32, 0, len(kr.aeads))
	for id := range kr.aeads {
		if id != kr.primary {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return append([]uint32{kr.primary}, ids...)
}
