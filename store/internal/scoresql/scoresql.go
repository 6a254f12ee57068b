// Package scoresql keeps scorecard results and their history, pushed
// facts, once-only notices and the marks of what changed, for package
// scorecard, on either database. Notices are queued as webhook
// deliveries in the rollouts' notifications table, so the existing
// delivery (retries, Slack format) sends them.
package scoresql

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/patchbay/patchbay/audit"
	"github.com/patchbay/patchbay/scorecard"
	"github.com/patchbay/patchbay/store/internal/auditsql"
	"github.com/patchbay/patchbay/store/internal/unixnano"
)

// Dialect is one database's SQL for the scores.
type Dialect struct {
	// Rebind turns '?' placeholders into the database's.
	Rebind func(string) string
	// InsertNotice keeps a notice key, nothing when kept before: (key, at).
	InsertNotice string
}

// Store keeps scores.
type Store struct {
	DB    *sql.DB
	D     *Dialect
	Audit *auditsql.Store
	// WriteLock serialises this process's writers on SQLite.
	WriteLock *sync.Mutex
}

var _ scorecard.Store = (*Store)(nil)

func (s *Store) q(q string) string { return s.D.Rebind(q) }

func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	if s.WriteLock != nil {
		s.WriteLock.Lock()
		defer s.WriteLock.Unlock()
	}
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

func scanRecords(rows *sql.Rows) ([]scorecard.Record, error) {
	defer rows.Close()
	out := []scorecard.Record{}
	for rows.Next() {
		var b string
		var at int64
		if err := rows.Scan(&b, &at); err != nil {
			return nil, err
		}
		var r scorecard.Record
		if err := json.Unmarshal([]byte(b), &r.Result); err != nil {
			return nil, fmt.Errorf("scorecard result: %w", err)
		}
		r.At = unixnano.To(at)
		out = append(out, r)
	}
	return out, rows.Err()
}

// Latest is the last record of every (scorecard, entity).
func (s *Store) Latest(ctx context.Context) ([]scorecard.Record, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT s.result, s.at FROM scorecard_scores s
		JOIN (SELECT MAX(id) AS id FROM scorecard_scores GROUP BY scorecard, entity) m ON s.id = m.id ORDER BY s.scorecard, s.entity`)
	if err != nil {
		return nil, fmt.Errorf("latest scores: %w", err)
	}
	return scanRecords(rows)
}

// Append keeps records.
func (s *Store) Append(ctx context.Context, recs []scorecard.Record) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, s.q(`INSERT INTO scorecard_scores(scorecard, entity, at, level, score, result) VALUES(?,?,?,?,?,?)`))
		if err != nil {
			return err
		}
		defer st.Close()
		for _, r := range recs {
			b, err := json.Marshal(r.Result)
			if err != nil {
				return err
			}
			if _, err := st.ExecContext(ctx, r.Scorecard, r.Entity, unixnano.From(r.At), r.Level, r.Score, string(b)); err != nil {
				return fmt.Errorf("keep score of %s on %s: %w", r.Entity, r.Scorecard, err)
			}
		}
		return nil
	})
}

// History lists records of a scorecard ("" for all) and entity ("" for
// all) since a time, oldest first.
func (s *Store) History(ctx context.Context, card, entity string, since time.Time) ([]scorecard.Record, error) {
	rows, err := s.DB.QueryContext(ctx, s.q(`SELECT result, at FROM scorecard_scores
		WHERE (? = '' OR scorecard = ?) AND (? = '' OR entity = ?) AND at >= ? ORDER BY at, id`),
		card, card, entity, entity, unixnano.From(since))
	if err != nil {
		return nil, fmt.Errorf("score history: %w", err)
	}
	return scanRecords(rows)
}

// Prune deletes the history older than before, keeping each entity's
// latest record.
func (s *Store) Prune(ctx context.Context, before time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`DELETE FROM scorecard_scores WHERE at < ? AND id NOT IN
			(SELECT MAX(id) FROM scorecard_scores GROUP BY scorecard, entity)`), unixnano.From(before))
		return err
	})
}

// PushFact keeps a pushed fact, audited.
func (s *Store) PushFact(ctx context.Context, f scorecard.CustomFact) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO scorecard_facts(service, name, value, at, actor) VALUES(?,?,?,?,?)`),
			f.Service, f.Name, f.Value, unixnano.From(f.At), f.Actor); err != nil {
			return fmt.Errorf("push fact %s of %s: %w", f.Name, f.Service, err)
		}
		digest, err := audit.DigestOf(f)
		if err != nil {
			return err
		}
		if _, err := s.Audit.AppendTx(ctx, tx, f.Actor, "facts.push", "service/"+f.Service+"/"+f.Name, digest); err != nil {
			return err
		}
		return s.mark(ctx, tx, "facts", f.At)
	})
}

// CustomFacts are the latest pushed facts by service and name.
func (s *Store) CustomFacts(ctx context.Context) (map[string]map[string]scorecard.CustomFact, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT f.service, f.name, f.value, f.at, f.actor FROM scorecard_facts f
		JOIN (SELECT MAX(id) AS id FROM scorecard_facts GROUP BY service, name) m ON f.id = m.id`)
	if err != nil {
		return nil, fmt.Errorf("pushed facts: %w", err)
	}
	defer rows.Close()
	out := map[string]map[string]scorecard.CustomFact{}
	for rows.Next() {
		var f scorecard.CustomFact
		var at int64
		if err := rows.Scan(&f.Service, &f.Name, &f.Value, &at, &f.Actor); err != nil {
			return nil, err
		}
		f.At = unixnano.To(at)
		if out[f.Service] == nil {
			out[f.Service] = map[string]scorecard.CustomFact{}
		}
		out[f.Service][f.Name] = f
	}
	return out, rows.Err()
}

// FactHistory lists the pushes of a service's facts, newest first.
func (s *Store) FactHistory(ctx context.Context, service string, limit int) ([]scorecard.CustomFact, error) {
	rows, err := s.DB.QueryContext(ctx, s.q(`SELECT service, name, value, at, actor FROM scorecard_facts WHERE service = ? ORDER BY id DESC LIMIT ?`), service, limit)
	if err != nil {
		return nil, fmt.Errorf("pushed facts of %s: %w", service, err)
	}
	defer rows.Close()
	out := []scorecard.CustomFact{}
	for rows.Next() {
		var f scorecard.CustomFact
		var at int64
		if err := rows.Scan(&f.Service, &f.Name, &f.Value, &at, &f.Actor); err != nil {
			return nil, err
		}
		f.At = unixnano.To(at)
		out = append(out, f)
	}
	return out, rows.Err()
}

// Notify queues a notice to each target once per key.
func (s *Store) Notify(ctx context.Context, n scorecard.Notice, targets []string, now time.Time) (bool, error) {
	queued := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.D.InsertNotice, n.Key, unixnano.From(now))
		if err != nil {
			return fmt.Errorf("notice %s: %w", n.Key, err)
		}
		if k, _ := res.RowsAffected(); k == 0 {
			return nil
		}
		queued = true
		b, err := json.Marshal(n.Payload)
		if err != nil {
			return err
		}
		// Every notice is audited: an exemption's expiry, a level drop,
		// an initiative's start, reminders and end.
		digest, err := audit.DigestOf(n.Payload)
		if err != nil {
			return err
		}
		if _, err := s.Audit.AppendTx(ctx, tx, "server", n.Event, "scorecard/"+n.Subject, digest); err != nil {
			return err
		}
		for _, t := range targets {
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO notifications(event, subject, target, payload, created_at, next_at) VALUES(?,?,?,?,?,?)`),
				n.Event, n.Subject, t, string(b), unixnano.From(now), unixnano.From(now)); err != nil {
				return fmt.Errorf("queue notification: %w", err)
			}
		}
		return nil
	})
	return queued, err
}

func (s *Store) mark(ctx context.Context, tx *sql.Tx, reason string, at time.Time) error {
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO scorecard_marks(reason, at) VALUES(?,?)`), reason, unixnano.From(at))
	return err
}

// Mark records that something scores read changed (the leader scores
// again).
func (s *Store) Mark(ctx context.Context, reason string, at time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return s.mark(ctx, tx, reason, at) })
}

// Marked is the newest mark's id (0: none).
func (s *Store) Marked(ctx context.Context) (int64, error) {
	var id sql.NullInt64
	if err := s.DB.QueryRowContext(ctx, `SELECT MAX(id) FROM scorecard_marks`).Scan(&id); err != nil {
		return 0, fmt.Errorf("score marks: %w", err)
	}
	return id.Int64, nil
}

// Unmark deletes the marks up to id, once scored.
func (s *Store) Unmark(ctx context.Context, id int64) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`DELETE FROM scorecard_marks WHERE id <= ?`), id)
		return err
	})
}
