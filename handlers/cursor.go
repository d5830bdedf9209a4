package handlers

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"github.com/mailgate/mailgate/models"
)

// Cursors makes opaque page cursors that a client cannot forge or alter: the
// position is signed, and bound to the list it came from.
type Cursors struct{ key []byte }

// NewCursors returns a cursor codec keyed by secret.
func NewCursors(secret []byte) *Cursors {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("mailgate cursor key"))
	return &Cursors{key: m.Sum(nil)}
}

func (c *Cursors) mac(scope, pos string) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(scope))
	m.Write([]byte{0})
	m.Write([]byte(pos))
	return m.Sum(nil)[:16]
}

// Encode returns the cursor for a position in the list named scope.
func (c *Cursors) Encode(scope, pos string) string {
	return base64.RawURLEncoding.EncodeToString(append(c.mac(scope, pos), pos...))
}

// Decode returns the position of a cursor made by Encode for scope.
func (c *Cursors) Decode(scope, cursor string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(cursor))
	if err != nil || len(raw) < 16 || !hmac.Equal(raw[:16], c.mac(scope, string(raw[16:]))) {
		return "", models.Invalid("cursor", "is not a cursor this list returned")
	}
	return string(raw[16:]), nil
}
