// Package tokensql keeps credentials on database/sql, shared by the SQLite
// and PostgreSQL stores, each with its own SQL.
package tokensql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/store/internal/unixnano"
)

// Dialect holds one database's SQL for tokens.
type Dialect struct {
	Insert, ByHash, UseEnrollment, List string
	// Revoke revokes a token not revoked yet: (revoked_at, id).
	Revoke string
	// Revoked reads whether a token is revoked, and when: (id).
	Revoked string
}

// Store keeps tokens.
type Store struct {
	DB *sql.DB
	D  *Dialect
}

// Columns is the column list the dialect's SELECTs return, in order.
const Columns = "id, kind, role, name, created, expires, uses_left, revoked, subject, revoked_at"

// Create stores a token record with the hash of its secret.
func (s *Store) Create(ctx context.Context, t auth.Token, hash string) error {
	_, err := s.DB.ExecContext(ctx, s.D.Insert, t.ID, hash, string(t.Kind), string(t.Role), t.Name, unixnano.From(t.Created), unixnano.From(t.Expires), t.UsesLeft, t.Revoked, t.Subject)
	if err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	return nil
}

type row interface{ Scan(...any) error }

func scan(r row) (auth.Token, error) {
	var t auth.Token
	var kind, role string
	var created, expires, revoked int64
	err := r.Scan(&t.ID, &kind, &role, &t.Name, &created, &expires, &t.UsesLeft, &t.Revoked, &t.Subject, &revoked)
	t.Kind, t.Role, t.Created, t.Expires, t.RevokedAt = auth.Kind(kind), auth.Role(role), unixnano.To(created), unixnano.To(expires), unixnano.To(revoked)
	return t, err
}

func (s *Store) byHash(ctx context.Context, secret string) (auth.Token, error) {
	t, err := scan(s.DB.QueryRowContext(ctx, s.D.ByHash, auth.HashOf(secret)))
	if errors.Is(err, sql.ErrNoRows) {
		return t, auth.ErrUnknown
	}
	if err != nil {
		return t, fmt.Errorf("authenticate: %w", err)
	}
	return t, nil
}

// Authenticate returns the token whose secret this is, if it may be used.
func (s *Store) Authenticate(ctx context.Context, secret string, now time.Time) (auth.Token, error) {
	t, err := s.byHash(ctx, secret)
	if err != nil {
		return t, err
	}
	return t, t.Check(now)
}

// UseEnrollment spends one use of an enrollment token, atomically: of N
// concurrent enrollments with M uses left, exactly min(N, M) succeed.
func (s *Store) UseEnrollment(ctx context.Context, secret string, now time.Time) (auth.Token, error) {
	res, err := s.DB.ExecContext(ctx, s.D.UseEnrollment, auth.HashOf(secret), now.UnixNano())
	if err != nil {
		return auth.Token{}, fmt.Errorf("enroll: %w", err)
	}
	t, err := s.byHash(ctx, secret)
	if err != nil {
		return t, err
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return t, nil
	}
	if t.Kind != auth.KindEnrollment {
		return t, auth.ErrUnknown
	}
	if err := t.Check(now); err != nil {
		return t, err
	}
	return t, auth.ErrExhausted
}

// Revoke revokes a token by id now (RevokeAt).
func (s *Store) Revoke(ctx context.Context, id string) error {
	return s.RevokeAt(ctx, id, time.Now())
}

// RevokeAt revokes a token by id, recording now as when. A token revoked
// already stays as it was: the error is an *auth.AlreadyRevokedError
// saying when it was (errors.Is auth.ErrRevoked); an unknown id is
// auth.ErrUnknown. Of concurrent revocations of one token, one succeeds.
func (s *Store) RevokeAt(ctx context.Context, id string, now time.Time) error {
	res, err := s.DB.ExecContext(ctx, s.D.Revoke, now.UnixNano(), id)
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("revoke token %s: %w", id, err)
	} else if n == 1 {
		return nil
	}
	// Not revoked by this call: unknown, or revoked already (for good).
	var revoked bool
	var at int64
	switch err := s.DB.QueryRowContext(ctx, s.D.Revoked, id).Scan(&revoked, &at); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("revoke token %s: %w", id, auth.ErrUnknown)
	case err != nil:
		return fmt.Errorf("revoke token %s: %w", id, err)
	case !revoked:
		return fmt.Errorf("revoke token %s: not revoked, yet the update changed nothing", id)
	}
	return &auth.AlreadyRevokedError{ID: id, At: unixnano.To(at)}
}

// List returns every token record, oldest first.
func (s *Store) List(ctx context.Context) ([]auth.Token, error) {
	rows, err := s.DB.QueryContext(ctx, s.D.List)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []auth.Token
	for rows.Next() {
		t, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}
