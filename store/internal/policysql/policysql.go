// Package policysql stores applied policy documents and every version of
// them on database/sql, for SQLite and PostgreSQL alike.
package policysql

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/patchbay/patchbay/audit"
	"github.com/patchbay/patchbay/policy"
	"github.com/patchbay/patchbay/store/internal/auditsql"
	"github.com/patchbay/patchbay/store/internal/unixnano"
)

// Dialect holds one database's SQL for policy documents.
type Dialect struct {
	// History lists the versions of a kind, oldest first: (kind) → kind,
	// name, version, action, doc, applied_at, applied_by.
	History string
	// HistoryOf is History of one document: (kind, name).
	HistoryOf string
	// InsertDocument stores a created document, nothing when it exists:
	// (kind, name, version, doc, applied_at, applied_by).
	InsertDocument string
	// UpdateDocument changes a document at the version it was read at:
	// (version, doc, applied_at, applied_by, kind, name, previous version).
	UpdateDocument string
	// DeleteDocument deletes a document at the version it was read at:
	// (kind, name, previous version).
	DeleteDocument string
	// InsertVersion records a version: (kind, name, version, action, doc,
	// applied_at, applied_by).
	InsertVersion string
	// SetDecided raises the decided revision: (revision, revision).
	SetDecided string
}

// Store keeps policy documents.
type Store struct {
	DB    *sql.DB
	D     *Dialect
	Audit *auditsql.Store
	// WriteLock serialises this process's write transactions on SQLite.
	WriteLock *sync.Mutex
}

// Documents returns the current version of every applied document,
// decoded as one of kinds.
func (s *Store) Documents(ctx context.Context, kinds policy.Kinds) ([]policy.Applied, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT doc, version, applied_at, applied_by FROM policy_documents ORDER BY kind, name`)
	if err != nil {
		return nil, fmt.Errorf("policy documents: %w", err)
	}
	defer rows.Close()
	var out []policy.Applied
	for rows.Next() {
		var doc string
		var a policy.Applied
		var at int64
		if err := rows.Scan(&doc, &a.Version, &at, &a.AppliedBy); err != nil {
			return nil, fmt.Errorf("policy documents: %w", err)
		}
		d, err := kinds.FromCanonical([]byte(doc))
		if err != nil {
			return nil, err
		}
		a.Doc, a.AppliedAt = d, unixnano.To(at)
		out = append(out, a)
	}
	return out, rows.Err()
}

// Revision is a number that changes whenever a document does: replicas
// compare it to know when to reload.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	var n sql.NullInt64
	if err := s.DB.QueryRowContext(ctx, `SELECT MAX(seq) FROM policy_versions`).Scan(&n); err != nil {
		return 0, fmt.Errorf("policy revision: %w", err)
	}
	return n.Int64, nil
}

// Version is one stored version of a document.
type Version struct {
	Kind      string    `json:"kind"`
	Name      string    `json:"name"`
	Version   int       `json:"version"`
	Action    string    `json:"action"`
	AppliedAt time.Time `json:"applied_at"`
	AppliedBy string    `json:"applied_by"`
	// Doc is the version's canonical JSON, empty when deleted.
	Doc string `json:"-"`
}

// History returns every version of documents of kind (and name, when
// given), oldest first.
func (s *Store) History(ctx context.Context, kind, name string) ([]Version, error) {
	q, args := s.D.History, []any{kind}
	if name != "" {
		q, args = s.D.HistoryOf, append(args, name)
	}
	rows, err := s.DB.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("policy history: %w", err)
	}
	defer rows.Close()
	out := []Version{}
	for rows.Next() {
		var v Version
		var at int64
		if err := rows.Scan(&v.Kind, &v.Name, &v.Version, &v.Action, &v.Doc, &at, &v.AppliedBy); err != nil {
			return nil, fmt.Errorf("policy history: %w", err)
		}
		v.AppliedAt = unixnano.To(at)
		out = append(out, v)
	}
	return out, rows.Err()
}

// Apply stores the changes in one transaction, with a version row and an
// audit entry for each created, changed or deleted document. A document
// changed by someone else since the plan was made (its version moved)
// fails the whole apply.
func (s *Store) Apply(ctx context.Context, changes []policy.Change, actor string, now time.Time) error {
	if s.WriteLock != nil {
		s.WriteLock.Lock()
		defer s.WriteLock.Unlock()
	}
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("apply policy: %w", err)
	}
	defer tx.Rollback()
	exec := func(q string, args ...any) (sql.Result, error) { return tx.ExecContext(ctx, q, args...) }
	for _, c := range changes {
		var res sql.Result
		switch c.Action {
		case policy.Unchanged:
			continue
		case policy.Created:
			res, err = exec(s.D.InsertDocument,
				c.Kind, c.Name, c.Version, c.Canonical, now.UnixNano(), actor)
		case policy.Changed:
			res, err = exec(s.D.UpdateDocument,
				c.Version, c.Canonical, now.UnixNano(), actor, c.Kind, c.Name, c.Version-1)
		case policy.Deleted:
			res, err = exec(s.D.DeleteDocument, c.Kind, c.Name, c.Version-1)
		default:
			return fmt.Errorf("apply policy: unknown action %q", c.Action)
		}
		if err != nil {
			return fmt.Errorf("apply policy %s: %w", c.Ref(), err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("apply policy %s: %w", c.Ref(), policy.ErrConflict)
		}
		if _, err := exec(s.D.InsertVersion,
			c.Kind, c.Name, c.Version, c.Action, c.Canonical, now.UnixNano(), actor); err != nil {
			return fmt.Errorf("apply policy %s: %w", c.Ref(), err)
		}
		digest, err := audit.DigestOf(struct {
			Version int    `json:"version"`
			Doc     string `json:"doc"`
			Diff    string `json:"diff"`
		}{c.Version, c.Canonical, c.Diff})
		if err != nil {
			return err
		}
		if _, err := s.Audit.AppendTx(ctx, tx, actor, "policy."+string(c.Action), fmt.Sprintf("%s@%d", c.Ref(), c.Version), digest); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Decided is the revision the findings were last all decided with.
func (s *Store) Decided(ctx context.Context) (int64, error) {
	var n int64
	if err := s.DB.QueryRowContext(ctx, `SELECT revision FROM policy_decided WHERE id = 1`).Scan(&n); err != nil {
		return 0, fmt.Errorf("policy decided: %w", err)
	}
	return n, nil
}

// SetDecided records that every finding was decided with revision.
func (s *Store) SetDecided(ctx context.Context, revision int64) error {
	if _, err := s.DB.ExecContext(ctx, s.D.SetDecided, revision, revision); err != nil {
		return fmt.Errorf("policy decided: %w", err)
	}
	return nil
}
