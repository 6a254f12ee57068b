// Package auditsql stores the audit chain on database/sql, shared by the
// SQLite and PostgreSQL stores, each with its own SQL.
package auditsql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/patchbay/patchbay/audit"
)

// Dialect holds one database's SQL for the audit log.
type Dialect struct {
	// Lock serialises appenders inside the transaction ("" when the
	// transaction itself already does, as SQLite's immediate ones do).
	Lock   string
	Last   string
	Insert string
	All    string
}

// Store appends to and reads the audit log.
type Store struct {
	DB *sql.DB
	D  *Dialect
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Append records a state change as the next entry of the chain.
func (s *Store) Append(ctx context.Context, actor, action, object string, change any) (audit.Entry, error) {
	digest, err := audit.DigestOf(change)
	if err != nil {
		return audit.Entry{}, err
	}
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return audit.Entry{}, fmt.Errorf("audit append: %w", err)
	}
	defer tx.Rollback()
	e, err := s.AppendTx(ctx, tx, actor, action, object, digest)
	if err != nil {
		return e, err
	}
	return e, tx.Commit()
}

// AppendTx appends an entry inside tx: the change it records and the
// entry commit together or not at all.
func (s *Store) AppendTx(ctx context.Context, tx *sql.Tx, actor, action, object, digest string) (audit.Entry, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	if s.D.Lock != "" {
		if _, err := tx.ExecContext(ctx, s.D.Lock); err != nil {
			return audit.Entry{}, fmt.Errorf("audit append: %w", err)
		}
	}
	var prev *audit.Entry
	last, err := scanEntry(tx.QueryRowContext(ctx, s.D.Last))
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return audit.Entry{}, fmt.Errorf("audit append: %w", err)
	default:
		prev = &last
	}
	e := audit.Next(prev, now(), actor, action, object, digest)
	if _, err := tx.ExecContext(ctx, s.D.Insert, e.Seq, e.Time.Format(time.RFC3339Nano), e.Actor, e.Action, e.Object, e.Digest, e.Prev, e.Hash); err != nil {
		return audit.Entry{}, fmt.Errorf("audit append: %w", err)
	}
	return e, nil
}

// Entries returns the whole log in sequence order.
func (s *Store) Entries(ctx context.Context) ([]audit.Entry, error) {
	return EntriesIn(ctx, s.DB, s.D)
}

// Querier is a pool or a transaction.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// EntriesIn reads the whole log through q (a transaction, for a
// snapshot's view of it) in sequence order.
func EntriesIn(ctx context.Context, q Querier, d *Dialect) ([]audit.Entry, error) {
	rows, err := q.QueryContext(ctx, d.All)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	defer rows.Close()
	var out []audit.Entry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("read audit log: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

type scanner interface{ Scan(dest ...any) error }

func scanEntry(r scanner) (audit.Entry, error) {
	var e audit.Entry
	var at string
	if err := r.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Object, &e.Digest, &e.Prev, &e.Hash); err != nil {
		return e, err
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return e, fmt.Errorf("audit entry %d: time %q: %w", e.Seq, at, err)
	}
	e.Time = t
	return e, nil
}
