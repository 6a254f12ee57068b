// Package fixsql keeps fix proposals (branches and merge requests of
// application fixes) and the findings each closes on database/sql, shared
// by the SQLite and PostgreSQL stores, each with its own SQL.
package fixsql

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"github.com/patchbay/patchbay/remedy"
	"github.com/patchbay/patchbay/risk"
	"github.com/patchbay/patchbay/store/internal/unixnano"
)

// Dialect holds one database's SQL for fix proposals.
type Dialect struct {
	// Upsert inserts or updates the proposal of (service, branch):
	// (service, branch, forge, mr_number, mr_url, commit_id, state,
	// created, updated, merged, deployed) → id.
	Upsert      string
	DeleteFixes string // (proposal_id)
	// InsertFix: (proposal_id, ecosystem, package, from_version,
	// to_version, vulnerability, priority, due, deployed).
	InsertFix string
	// List: (service, service) → every column of Upsert with the id,
	// newest first; an empty service lists all.
	List  string
	Fixes string // (proposal_id) → ecosystem … deployed
	ByID  string // (id) → as List
	// WriteLock is SQLite's single-writer lock, nil for PostgreSQL.
	WriteLock *sync.Mutex
}

// Store keeps fix proposals.
type Store struct {
	DB *sql.DB
	D  *Dialect
}

// ErrNotFound: no proposal has the id.
var ErrNotFound = remedy.ErrNoProposal

// Save inserts p or, when (service, branch) has one, replaces it (its
// creation time kept) with its fixes, and returns the id.
func (s *Store) Save(ctx context.Context, p remedy.Proposal) (int64, error) {
	if s.D.WriteLock != nil {
		s.D.WriteLock.Lock()
		defer s.D.WriteLock.Unlock()
	}
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var id int64
	if err := tx.QueryRowContext(ctx, s.D.Upsert, p.Service, p.Branch, p.Forge, p.MRNumber, p.MRURL, p.Commit, p.State,
		unixnano.From(p.CreatedAt), unixnano.From(p.UpdatedAt), unixnano.From(p.MergedAt), unixnano.From(p.DeployedAt)).Scan(&id); err != nil {
		return 0, fmt.Errorf("save fix proposal %s %s: %w", p.Service, p.Branch, err)
	}
	if _, err := tx.ExecContext(ctx, s.D.DeleteFixes, id); err != nil {
		return 0, err
	}
	for _, f := range p.Fixes {
		if _, err := tx.ExecContext(ctx, s.D.InsertFix, id, f.Ecosystem, f.Package, f.From, f.To, f.Vulnerability, int(f.Priority),
			unixnano.From(f.Due), unixnano.From(f.DeployedAt)); err != nil {
			return 0, fmt.Errorf("save fix proposal %s %s: %s %s: %w", p.Service, p.Branch, f.Package, f.Vulnerability, err)
		}
	}
	return id, tx.Commit()
}

// List returns the proposals of service (every service's when ""),
// newest first, with their fixes.
func (s *Store) List(ctx context.Context, service string) ([]remedy.Proposal, error) {
	rows, err := s.DB.QueryContext(ctx, s.D.List, service, service)
	if err != nil {
		return nil, err
	}
	ps, err := scanProposals(rows)
	if err != nil {
		return nil, err
	}
	for i := range ps {
		if ps[i].Fixes, err = s.fixes(ctx, ps[i].ID); err != nil {
			return nil, err
		}
	}
	return ps, nil
}

// Get returns one proposal; ErrNotFound when none has the id.
func (s *Store) Get(ctx context.Context, id int64) (remedy.Proposal, error) {
	rows, err := s.DB.QueryContext(ctx, s.D.ByID, id)
	if err != nil {
		return remedy.Proposal{}, err
	}
	ps, err := scanProposals(rows)
	if err != nil {
		return remedy.Proposal{}, err
	}
	if len(ps) == 0 {
		return remedy.Proposal{}, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	p := ps[0]
	p.Fixes, err = s.fixes(ctx, id)
	return p, err
}

func scanProposals(rows *sql.Rows) ([]remedy.Proposal, error) {
	defer rows.Close()
	var out []remedy.Proposal
	for rows.Next() {
		var p remedy.Proposal
		var created, updated, merged, deployed int64
		if err := rows.Scan(&p.ID, &p.Service, &p.Branch, &p.Forge, &p.MRNumber, &p.MRURL, &p.Commit, &p.State, &created, &updated, &merged, &deployed); err != nil {
			return nil, err
		}
		p.CreatedAt, p.UpdatedAt, p.MergedAt, p.DeployedAt = unixnano.To(created), unixnano.To(updated), unixnano.To(merged), unixnano.To(deployed)
		out = append(out, p)
	}
	return out, rows.Err()
}

func (s *Store) fixes(ctx context.Context, id int64) ([]remedy.ProposedFix, error) {
	rows, err := s.DB.QueryContext(ctx, s.D.Fixes, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []remedy.ProposedFix{}
	for rows.Next() {
		var f remedy.ProposedFix
		var prio int
		var due, deployed int64
		if err := rows.Scan(&f.Ecosystem, &f.Package, &f.From, &f.To, &f.Vulnerability, &prio, &due, &deployed); err != nil {
			return nil, err
		}
		f.Priority, f.Due, f.DeployedAt = risk.Priority(prio), unixnano.To(due), unixnano.To(deployed)
		out = append(out, f)
	}
	return out, rows.Err()
}
