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
	Insert, ByHash, UseEnrollment, Revoke, List string
}

// Store keeps tokens.
type Store struct {
	DB *sql.DB
	D  *Dialect
}

// Columns is the column list the dialect's SELECTs return, in order.
const Columns = "id, kind, role, name, created, expires, uses_left, revoked, subject"

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
	var created, expires int64
	err := r.Scan(&t.ID, &kind, &role, &t.Name, &created, &expires, &t.UsesLeft, &t.Revoked, &t.Subject)
	t.Kind, t.Role, t.Created, t.Expires = auth.Kind(kind), auth.Role(role), unixnano.To(created), unixnano.To(expires)
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

// Revoke revokes a token by id.
func (s *Store) Revoke(ctx context.Context, id string) error {
	res, err := s.DB.ExecContext(ctx, s.D.Revoke, id)
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("revoke token %s: %w", id, auth.ErrUnknown)
	}
	return nil
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
