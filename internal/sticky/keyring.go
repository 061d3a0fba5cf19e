// Package sticky implements session affinity: the sealed cookie codec, its
// key ring, and the lb_cookie policy that reads and issues cookies.
package sticky

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

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

// keyFile is the JSON form of the key ring kept in the state directory.
type keyFile struct {
	Keys []struct {
		ID      uint32    `json:"id"`
		Secret  string    `json:"secret"`
		Created time.Time `json:"created"`
	} `json:"keys"`
}

// KeyFileName is the file, within the state directory, that holds the
// generated key ring.
const KeyFileName = "cookie-keys.json"

// LoadOrCreateKeys reads the key ring kept in dir, creating dir and a new
// random key the first time, so that a restart keeps every session where it
// was. The file is written with mode 0600.
func LoadOrCreateKeys(dir string) ([]Key, error) {
	path := filepath.Join(dir, KeyFileName)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		k, err := NewKey()
		if err != nil {
			return nil, err
		}
		var f keyFile
		f.Keys = append(f.Keys, struct {
			ID      uint32    `json:"id"`
			Secret  string    `json:"secret"`
			Created time.Time `json:"created"`
		}{k.ID, base64.StdEncoding.EncodeToString(k.Secret), time.Now().UTC().Truncate(time.Second)})
		data, _ := json.MarshalIndent(f, "", "  ")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		if err := writeFileAtomic(path, append(data, '\n'), 0o600); err != nil {
			return nil, err
		}
		return []Key{k}, nil
	}
	if err != nil {
		return nil, err
	}
	var f keyFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if len(f.Keys) == 0 {
		return nil, fmt.Errorf("%s: no keys", path)
	}
	keys := make([]Key, len(f.Keys))
	for i, k := range f.Keys {
		secret, err := base64.StdEncoding.DecodeString(k.Secret)
		if err != nil || len(secret) != chacha20poly1305.KeySize {
			return nil, fmt.Errorf("%s: key %d: the secret is not 32 bytes of standard base64", path, k.ID)
		}
		keys[i] = Key{ID: k.ID, Secret: secret}
	}
	return keys, nil
}

// writeFileAtomic writes data to a temporary file and renames it over path,
// so that a crash never leaves a half-written file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
