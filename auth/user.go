package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"
)

// KindUser marks the credential of a person logged in to the web UI: its
// Subject is the user's name, and actions taken with it are the
// person's ("user:NAME"), whatever session they came from.
const KindUser Kind = "user"

// User is a person who logs in to the web UI.
type User struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
	// Source is "local" (a password kept here) or "oidc" (single sign-on;
	// the role is the one the last login's groups gave).
	Source  string    `json:"source"`
	Created time.Time `json:"created"`
}

// User sources.
const (
	SourceLocal = "local"
	SourceOIDC  = "oidc"
)

// ValidateUserName checks a user name: 1 to 64 bytes of letters, digits
// and . _ - @ (an e-mail address is a name).
func ValidateUserName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("user name %q: want 1 to 64 bytes", name)
	}
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.ContainsRune("._-@", c):
		default:
			return fmt.Errorf("user name %q: %q not allowed; want letters, digits, '.', '_', '-', '@'", name, c)
		}
	}
	return nil
}

// PersonRole parses a role a person may have (not agent).
func PersonRole(s string) (Role, error) {
	r, err := ParseRole(s)
	if err != nil || r == Agent {
		return "", fmt.Errorf("role %q: want admin, operator or viewer", s)
	}
	return r, nil
}

// argon2id parameters (RFC 9106's second recommended option: 64 MiB,
// three passes), kept in each hash so they can change later.
const (
	argonTime    = 3
	argonMemory  = 64 * 1024
	argonThreads = 2
	argonKeyLen  = 32
)

// MinPassword is the shortest password accepted.
const MinPassword = 12

// HashPassword hashes a password with argon2id into the PHC string form
// ($argon2id$v=19$m=…,t=…,p=…$salt$hash).
func HashPassword(password string) (string, error) {
	if len(password) < MinPassword {
		return "", fmt.Errorf("password: %d characters, want at least %d", len(password), MinPassword)
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// Errors of the user store.
var (
	ErrNoUser    = errors.New("no such user")
	ErrUserTaken = errors.New("user exists already")
	// ErrLocalUser refuses a single sign-on login under a local user's
	// name (it would take over that account).
	ErrLocalUser = errors.New("a local user has this name")
)

// ErrBadPassword is a password that does not match.
var ErrBadPassword = errors.New("wrong user name or password")

// CheckPassword compares a password with a hash HashPassword made, in
// constant time; ErrBadPassword when it does not match.
func CheckPassword(hash, password string) error {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return errors.New("password hash: not an argon2id PHC string")
	}
	var v int
	var m uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return fmt.Errorf("password hash: version %q unsupported", parts[2])
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return fmt.Errorf("password hash: parameters %q: %w", parts[3], err)
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return fmt.Errorf("password hash: salt: %w", err)
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil {
		return fmt.Errorf("password hash: key: %w", err)
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return ErrBadPassword
	}
	return nil
}

// Session is a person's login to the web UI, kept in the database by the
// SHA-256 of its cookie's secret.
type Session struct {
	User string `json:"user"`
	Role Role   `json:"role"`
	// CSRF is the secret every form of the session carries.
	CSRF    string    `json:"-"`
	Created time.Time `json:"created"`
	// LastSeen is when it was last used: it ends IdleTimeout after.
	LastSeen time.Time `json:"last_seen"`
	// Expires is its absolute end, whatever its use.
	Expires time.Time `json:"expires"`
}

// ErrSessionEnded is a session past its idle or absolute end, or logged
// out.
var ErrSessionEnded = errors.New("session ended")

// Check tells whether a session may be used at now, idle for at most
// idle.
func (s Session) Check(now time.Time, idle time.Duration) error {
	if !now.Before(s.Expires) || (idle > 0 && now.Sub(s.LastSeen) >= idle) {
		return ErrSessionEnded
	}
	return nil
}

// Token is the credential a session acts with in the API.
func (s Session) Token() Token {
	return Token{ID: "user:" + s.User, Kind: KindUser, Role: s.Role, Name: s.User, Subject: s.User, Created: s.Created, Expires: s.Expires, UsesLeft: -1}
}

// RandomSecret returns n random bytes, base64url-encoded.
func RandomSecret(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

type personKey struct{}

// WithPerson marks a request's context as made by a logged-in person
// (the web UI's in-process calls to the API): the API authenticates it as
// that person's credential. Only code in the process can set it.
func WithPerson(ctx context.Context, t Token) context.Context {
	return context.WithValue(ctx, personKey{}, t)
}

// PersonFrom returns the person WithPerson put in ctx.
func PersonFrom(ctx context.Context) (Token, bool) {
	t, ok := ctx.Value(personKey{}).(Token)
	return t, ok && t.Kind == KindUser
}
