package admin

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/latch-lb/latch/internal/config"
)

// TokenEnv is the environment variable that holds the admin token when
// the config names no token_file; `latch ctl` reads it too.
const TokenEnv = "LATCH_ADMIN_TOKEN"

// Token returns the admin token: the content of a.TokenFile (surrounding
// space trimmed) when set, else env (LATCH_ADMIN_TOKEN's value), else "".
// A token file that cannot be read or is empty is an error naming it.
func Token(a config.Admin, env string) (string, error) {
	if a.TokenFile == "" {
		return strings.TrimSpace(env), nil
	}
	b, err := os.ReadFile(a.TokenFile)
	if err != nil {
		return "", fmt.Errorf("admin.token_file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("admin.token_file: %s is empty", a.TokenFile)
	}
	if strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("admin.token_file: %s holds more than one line or word; a token is one word", a.TokenFile)
	}
	return tok, nil
}

// NewToken returns a random token (128 bits, hex), for `latch demo`.
func NewToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
