// Package usersql keeps the web UI's users and sessions on database/sql,
// shared by the SQLite and PostgreSQL stores, each with its own SQL.
// Sessions are kept by the SHA-256 of their cookie's secret, never the
// secret.
package usersql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/store/internal/unixnano"
)

// Dialect holds one database's SQL for users and sessions.
type Dialect struct {
	// Insert adds a user: (name, role, password, source, created); a
	// name taken is a unique violation, told apart by Exists.
	Insert string
	// UpsertSSO adds or updates a single sign-on user's role: (name,
	// role, created); it changes no local user.
	UpsertSSO string
	// ByName reads a user: (name) → name, role, password, source, created.
	ByName string
	List   string
	// SetPassword and SetRole change a local user: (value, name).
	SetPassword, SetRole string
	Delete               string
	// Sessions: InsertSession (hash, username, role, csrf, created,
	// last_seen, expires); SessionByHash (hash) → username, role, csrf,
	// created, last_seen, expires; Touch (last_seen, hash); DeleteSession
	// (hash); DeleteSessionsOf (username); DeleteEnded (now, idle_before).
	InsertSession, SessionByHash, Touch, DeleteSession, DeleteSessionsOf, DeleteEnded string
}

// Store keeps users and sessions.
type Store struct {
	DB *sql.DB
	D  *Dialect
}

// Add stores a new user with its password hash ("" for single sign-on).
func (s *Store) Add(ctx context.Context, u auth.User, hash string) error {
	if _, err := s.Get(ctx, u.Name); err == nil {
		return fmt.Errorf("add user %s: %w", u.Name, auth.ErrUserTaken)
	}
	if _, err := s.DB.ExecContext(ctx, s.D.Insert, u.Name, string(u.Role), hash, u.Source, unixnano.From(u.Created)); err != nil {
		if _, gerr := s.Get(ctx, u.Name); gerr == nil {
			return fmt.Errorf("add user %s: %w", u.Name, auth.ErrUserTaken)
		}
		return fmt.Errorf("add user %s: %w", u.Name, err)
	}
	return nil
}

// SSOLogin records a single sign-on user and the role its groups gave at
// this login; auth.ErrLocalUser when the name is a local user's.
func (s *Store) SSOLogin(ctx context.Context, name string, role auth.Role, now time.Time) error {
	if u, err := s.Get(ctx, name); err == nil && u.Source != auth.SourceOIDC {
		return fmt.Errorf("single sign-on as %s: %w", name, auth.ErrLocalUser)
	}
	if _, err := s.DB.ExecContext(ctx, s.D.UpsertSSO, name, string(role), now.UnixNano()); err != nil {
		return fmt.Errorf("single sign-on as %s: %w", name, err)
	}
	return nil
}

func (s *Store) get(ctx context.Context, name string) (auth.User, string, error) {
	var u auth.User
	var role, hash string
	var created int64
	err := s.DB.QueryRowContext(ctx, s.D.ByName, name).Scan(&u.Name, &role, &hash, &u.Source, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return u, "", fmt.Errorf("user %s: %w", name, auth.ErrNoUser)
	}
	if err != nil {
		return u, "", fmt.Errorf("user %s: %w", name, err)
	}
	u.Role, u.Created = auth.Role(role), unixnano.To(created)
	return u, hash, nil
}

// Get reads a user.
func (s *Store) Get(ctx context.Context, name string) (auth.User, error) {
	u, _, err := s.get(ctx, name)
	return u, err
}

// CheckPassword returns the local user whose name and password these
// are; auth.ErrBadPassword for an unknown name, a single sign-on user or
// a wrong password alike.
func (s *Store) CheckPassword(ctx context.Context, name, password string) (auth.User, error) {
	u, hash, err := s.get(ctx, name)
	if errors.Is(err, auth.ErrNoUser) || (err == nil && hash == "") {
		// The same work as a real check, so timing does not tell names.
		_ = auth.CheckPassword(dummyHash(), password)
		return u, auth.ErrBadPassword
	}
	if err != nil {
		return u, err
	}
	if err := auth.CheckPassword(hash, password); err != nil {
		return u, err
	}
	return u, nil
}

// dummyHash is checked against for unknown users (made once, when first
// needed: argon2id takes its time and memory).
var dummyHash = sync.OnceValue(func() string {
	h, err := auth.HashPassword("not-a-password-anyone-has")
	if err != nil {
		panic(err)
	}
	return h
})

// List returns every user by name.
func (s *Store) List(ctx context.Context) ([]auth.User, error) {
	rows, err := s.DB.QueryContext(ctx, s.D.List)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []auth.User
	for rows.Next() {
		var u auth.User
		var role string
		var created int64
		if err := rows.Scan(&u.Name, &role, &u.Source, &created); err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		u.Role, u.Created = auth.Role(role), unixnano.To(created)
		out = append(out, u)
	}
	return out, rows.Err()
}

func (s *Store) exec1(ctx context.Context, what, name, q string, args ...any) error {
	res, err := s.DB.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("%s %s: %w", what, name, err)
	} else if n == 0 {
		return fmt.Errorf("%s %s: %w", what, name, auth.ErrNoUser)
	}
	return nil
}

// SetPassword replaces a local user's password hash and ends its
// sessions.
func (s *Store) SetPassword(ctx context.Context, name, hash string) error {
	if err := s.exec1(ctx, "set password of", name, s.D.SetPassword, hash, name); err != nil {
		return err
	}
	return s.EndSessionsOf(ctx, name)
}

// SetRole changes a user's role and ends its sessions (they carry the
// old role).
func (s *Store) SetRole(ctx context.Context, name string, role auth.Role) error {
	if err := s.exec1(ctx, "set role of", name, s.D.SetRole, string(role), name); err != nil {
		return err
	}
	return s.EndSessionsOf(ctx, name)
}

// Remove deletes a user and its sessions.
func (s *Store) Remove(ctx context.Context, name string) error {
	if err := s.exec1(ctx, "remove user", name, s.D.Delete, name); err != nil {
		return err
	}
	return s.EndSessionsOf(ctx, name)
}

// CreateSession stores a new session under the hash of its secret.
func (s *Store) CreateSession(ctx context.Context, hash string, se auth.Session) error {
	_, err := s.DB.ExecContext(ctx, s.D.InsertSession, hash, se.User, string(se.Role), se.CSRF,
		unixnano.From(se.Created), unixnano.From(se.LastSeen), unixnano.From(se.Expires))
	if err != nil {
		return fmt.Errorf("create session of %s: %w", se.User, err)
	}
	return nil
}

// Session reads the session whose hash this is and checks it at now:
// auth.ErrSessionEnded when there is none or it ended (idle or absolute
// expiry). A live session's last use becomes now (written at most every
// touchEvery).
func (s *Store) Session(ctx context.Context, hash string, now time.Time, idle time.Duration) (auth.Session, error) {
	var se auth.Session
	var role string
	var created, seen, expires int64
	err := s.DB.QueryRowContext(ctx, s.D.SessionByHash, hash).Scan(&se.User, &role, &se.CSRF, &created, &seen, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return se, auth.ErrSessionEnded
	}
	if err != nil {
		return se, fmt.Errorf("read session: %w", err)
	}
	se.Role, se.Created, se.LastSeen, se.Expires = auth.Role(role), unixnano.To(created), unixnano.To(seen), unixnano.To(expires)
	if err := se.Check(now, idle); err != nil {
		return se, err
	}
	if now.Sub(se.LastSeen) >= touchEvery {
		if _, err := s.DB.ExecContext(ctx, s.D.Touch, now.UnixNano(), hash); err != nil {
			return se, fmt.Errorf("touch session: %w", err)
		}
		se.LastSeen = now
	}
	return se, nil
}

// touchEvery bounds the writes of a session's last use.
const touchEvery = 15 * time.Second

// EndSession deletes a session (logout).
func (s *Store) EndSession(ctx context.Context, hash string) error {
	if _, err := s.DB.ExecContext(ctx, s.D.DeleteSession, hash); err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	return nil
}

// EndSessionsOf deletes every session of a user.
func (s *Store) EndSessionsOf(ctx context.Context, name string) error {
	if _, err := s.DB.ExecContext(ctx, s.D.DeleteSessionsOf, name); err != nil {
		return fmt.Errorf("end sessions of %s: %w", name, err)
	}
	return nil
}

// DeleteEnded deletes the sessions ended at now (idle for idle, or past
// their absolute end), returning how many.
func (s *Store) DeleteEnded(ctx context.Context, now time.Time, idle time.Duration) (int64, error) {
	res, err := s.DB.ExecContext(ctx, s.D.DeleteEnded, now.UnixNano(), now.Add(-idle).UnixNano())
	if err != nil {
		return 0, fmt.Errorf("delete ended sessions: %w", err)
	}
	return res.RowsAffected()
}
