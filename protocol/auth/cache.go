package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"
)

// Defaults of the verified-credentials cache.
const (
	DefaultCacheTTL     = 5 * time.Minute
	DefaultCacheEntries = 10000
)

// credCache remembers, per user, that a password was verified against the
// user's current hash, so that the next login with it costs an HMAC instead of
// a bcrypt comparison (tens of milliseconds of CPU, which on a small machine
// every other command waits behind).
//
// An entry is HMAC-SHA256, under a key made at start and never stored, of the
// user's id, password hash and the password: the cache holds no password,
// nothing a password can be recovered from without that key, and nothing that
// could pass for a password after it changed. A login still reads the user
// (and spends its login budget) first; the entry only stands in for bcrypt, and
// only while the hash it was made with is the one the store holds. So a
// password change, a disable or a delete on any instance takes effect at the
// next login everywhere, with no message between instances; and a wrong
// password is never answered from the cache, only ever compared with bcrypt.
type credCache struct {
	ttl time.Duration // 0: the cache is off
	max int
	key [32]byte

	mu      sync.Mutex
	entries map[int64]cacheEntry
}

type cacheEntry struct {
	mac     [sha256.Size]byte
	expires time.Time
}

func newCredCache(ttl time.Duration, max int) *credCache {
	c := &credCache{ttl: ttl, max: max, entries: map[int64]cacheEntry{}}
	if _, err := rand.Read(c.key[:]); err != nil {
		c.ttl = 0 // no key, no cache: every login pays bcrypt
	}
	return c
}

func (c *credCache) mac(userID int64, hash, password string) [sha256.Size]byte {
	m := hmac.New(sha256.New, c.key[:])
	var id [8]byte
	binary.BigEndian.PutUint64(id[:], uint64(userID))
	m.Write(id[:])
	// Length prefixes keep hash and password from sliding into each other.
	binary.BigEndian.PutUint64(id[:], uint64(len(hash)))
	m.Write(id[:])
	m.Write([]byte(hash))
	m.Write([]byte(password))
	var out [sha256.Size]byte
	copy(out[:], m.Sum(nil))
	return out
}

// verified reports whether password was verified against hash for the user
// within the TTL.
func (c *credCache) verified(userID int64, hash, password string, now time.Time) bool {
	if c.ttl <= 0 {
		return false
	}
	want := c.mac(userID, hash, password)
	c.mu.Lock()
	e, ok := c.entries[userID]
	c.mu.Unlock()
	return ok && now.Before(e.expires) && hmac.Equal(e.mac[:], want[:])
}

// remember records a password bcrypt has just verified against hash.
func (c *credCache) remember(userID int64, hash, password string, now time.Time) {
	if c.ttl <= 0 {
		return
	}
	e := cacheEntry{mac: c.mac(userID, hash, password), expires: now.Add(c.ttl)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[userID]; !ok && len(c.entries) >= c.max {
		c.evict(now)
	}
	c.entries[userID] = e
}

// evict makes room for one entry: the expired ones go, or else one picked at
// random (map order), which costs a busy server one bcrypt for that user and
// keeps memory bounded whatever the number of accounts.
func (c *credCache) evict(now time.Time) {
	for id, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, id)
		}
	}
	for id := range c.entries {
		if len(c.entries) < c.max {
			return
		}
		delete(c.entries, id)
	}
}

func (c *credCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
