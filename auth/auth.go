// Package auth holds patchbay's credentials and roles: API tokens for
// people and automation (admin, operator, viewer), enrollment tokens that
// agents exchange for a per-host credential (with an expiry and a usage
// limit), and the agent credentials themselves. Secrets are random 256-bit
// values shown once; only their SHA-256 is stored.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Role is what a credential may do.
type Role string

// Roles, from most to least powerful; agent credentials reach only the
// agent endpoints.
const (
	Admin    Role = "admin"
	Operator Role = "operator"
	Viewer   Role = "viewer"
	Agent    Role = "agent"
)

// ParseRole parses a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(strings.ToLower(s)); r {
	case Admin, Operator, Viewer, Agent:
		return r, nil
	}
	return "", fmt.Errorf("role %q: want admin, operator, viewer or agent", s)
}

var rank = map[Role]int{Viewer: 1, Operator: 2, Admin: 3}

// Allows reports whether a credential of role r may use an endpoint that
// requires role need. People's roles nest (admin ⊃ operator ⊃ viewer);
// the agent role is apart: only agent endpoints, and nothing else reaches
// them.
func (r Role) Allows(need Role) bool {
	if r == Agent || need == Agent {
		return r == need
	}
	return rank[r] >= rank[need] && rank[need] > 0
}

// Kind is what a token is for.
type Kind string

// Token kinds.
const (
	KindAPI        Kind = "api"        // people and automation
	KindEnrollment Kind = "enrollment" // exchanged by agents for a host credential
	KindHost       Kind = "host"       // one enrolled host's credential
)

// Token is a credential's record (never its secret).
type Token struct {
	ID      string    `json:"id"` // public identifier, shown in lists and audit
	Kind    Kind      `json:"kind"`
	Role    Role      `json:"role"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// Expires is zero for tokens that do not expire.
	Expires time.Time `json:"expires,omitzero"`
	// UsesLeft counts the remaining enrollments; -1 for unlimited.
	UsesLeft int  `json:"uses_left"`
	Revoked  bool `json:"revoked"`
	// RevokedAt is when it was revoked; zero when it is not, or was
	// revoked before the time was kept.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	// Subject is what the token belongs to: the host id of a host credential.
	Subject string `json:"subject,omitempty"`
}

// Errors of authentication; the API maps them all to 401 without saying
// which.
var (
	ErrUnknown   = errors.New("unknown credential")
	ErrExpired   = errors.New("credential expired")
	ErrRevoked   = errors.New("credential revoked")
	ErrExhausted = errors.New("enrollment token has no uses left")
)

// AlreadyRevokedError refuses to revoke a token that is revoked already;
// it is ErrRevoked to errors.Is.
type AlreadyRevokedError struct {
	ID string
	At time.Time // zero: revoked before the time was kept
}

func (e *AlreadyRevokedError) Error() string {
	if e.At.IsZero() {
		return fmt.Sprintf("token %s is already revoked (at a time not recorded)", e.ID)
	}
	return fmt.Sprintf("token %s is already revoked (at %s)", e.ID, e.At.UTC().Format(time.RFC3339))
}

func (e *AlreadyRevokedError) Unwrap() error { return ErrRevoked }

// NewSecret returns a new secret ("pb_" + 256 random bits, base64url) and
// its public id and hash.
func NewSecret() (secret, id, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", "", fmt.Errorf("new secret: %w", err)
	}
	secret = "pb_" + base64.RawURLEncoding.EncodeToString(b)
	return secret, IDOf(secret), HashOf(secret), nil
}

// HashOf is the stored form of a secret.
func HashOf(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// IDOf is a secret's public id: a prefix of a second, domain-separated
// hash, so that the id reveals nothing of the stored hash.
func IDOf(secret string) string {
	h := sha256.Sum256([]byte("patchbay-token-id:" + secret))
	return hex.EncodeToString(h[:6])
}

// Check tells whether a token may be used at now.
func (t Token) Check(now time.Time) error {
	switch {
	case t.Revoked:
		return ErrRevoked
	case !t.Expires.IsZero() && !now.Before(t.Expires):
		return ErrExpired
	case t.Kind == KindEnrollment && t.UsesLeft == 0:
		return ErrExhausted
	}
	return nil
}
