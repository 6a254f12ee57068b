// Package feedsql is the advisory index on database/sql, shared by the
// SQLite and PostgreSQL stores. Each store brings its own SQL (a Dialect):
// no query is rewritten at run time.
package feedsql

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/patchbay/patchbay/advisory"
	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/match"
	"github.com/patchbay/patchbay/store/internal/sqlrows"
)

var _ feeds.Store = (*Store)(nil)

// RecordVersions implements feeds.Store.
func (d *Store) RecordVersions(ctx context.Context) (map[string]feeds.RecordVersion, error) {
	rows, err := d.DB.QueryContext(ctx, d.D.RecordVersions)
	if err != nil {
		return nil, fmt.Errorf("read advisory versions: %w", err)
	}
	defer rows.Close()
	out := map[string]feeds.RecordVersion{}
	for rows.Next() {
		var id, mod string
		var h []byte
		var rv feeds.RecordVersion
		if err := rows.Scan(&id, &mod, &h, &rv.Collection); err != nil {
			return nil, err
		}
		rv.Modified = parseTime(mod)
		copy(rv.Hash[:], h)
		out[id] = rv
	}
	return out, rows.Err()
}

// KeysOf implements feeds.Store.
func (d *Store) KeysOf(ctx context.Context, ids []string) ([]match.Key, error) {
	var out []match.Key
	for start := 0; start < len(ids); start += 500 {
		chunk := ids[start:min(start+500, len(ids))]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := d.DB.QueryContext(ctx, d.D.KeysIn(d.D.Placeholders(len(chunk))), args...)
		if err != nil {
			return nil, fmt.Errorf("read advisory keys: %w", err)
		}
		for rows.Next() {
			var k match.Key
			if err := rows.Scan(&k.Ecosystem, &k.Name); err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, k)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// CollectionIDs implements feeds.Store.
func (d *Store) CollectionIDs(ctx context.Context, collection string) ([]string, error) {
	return sqlrows.Strings(ctx, d.DB, "read collection "+collection, d.D.CollectionIDs, collection)
}

// Apply implements feeds.Store.
func (d *Store) Apply(ctx context.Context, b feeds.Batch) error {
	return d.inTx(ctx, func(tx *sql.Tx) error {
		if err := d.applyOSV(ctx, tx, b); err != nil {
			return err
		}
		if b.KEV != nil {
			if err := d.replaceKEV(ctx, tx, b.KEV, b.KEVState); err != nil {
				return err
			}
		}
		if b.EPSS != nil {
			if err := d.replaceEPSS(ctx, tx, b.EPSS, b.EPSSState); err != nil {
				return err
			}
		}
		return d.applyEnrichment(ctx, tx, b)
	})
}

func (d *Store) applyOSV(ctx context.Context, tx *sql.Tx, b feeds.Batch) error {
	del, err := tx.PrepareContext(ctx, d.D.DeleteAdvisory)
	if err != nil {
		return err
	}
	defer del.Close()
	delAff, err := tx.PrepareContext(ctx, d.D.DeleteAffected)
	if err != nil {
		return err
	}
	defer delAff.Close()
	delCVEs, err := tx.PrepareContext(ctx, d.D.DeleteAdvisoryCVEs)
	if err != nil {
		return err
	}
	defer delCVEs.Close()
	insCVE, err := tx.PrepareContext(ctx, d.D.InsertAdvisoryCVE)
	if err != nil {
		return err
	}
	defer insCVE.Close()
	for _, id := range b.Deletes {
		if _, err := delAff.ExecContext(ctx, id); err != nil {
			return fmt.Errorf("delete advisory %s: %w", id, err)
		}
		if _, err := delCVEs.ExecContext(ctx, id); err != nil {
			return fmt.Errorf("delete advisory %s: %w", id, err)
		}
		if _, err := del.ExecContext(ctx, id); err != nil {
			return fmt.Errorf("delete advisory %s: %w", id, err)
		}
	}
	up, err := tx.PrepareContext(ctx, d.D.UpsertAdvisory)
	if err != nil {
		return err
	}
	defer up.Close()
	aff, err := tx.PrepareContext(ctx, d.D.InsertAffected)
	if err != nil {
		return err
	}
	defer aff.Close()
	for _, r := range b.Upserts {
		a := r.Advisory
		doc, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("encode advisory %s: %w", a.ID, err)
		}
		if _, err := up.ExecContext(ctx, a.ID, r.Collection, fmtTime(a.Modified), r.Hash[:], doc); err != nil {
			return fmt.Errorf("store advisory %s: %w", a.ID, err)
		}
		if _, err := delAff.ExecContext(ctx, a.ID); err != nil {
			return fmt.Errorf("store advisory %s: %w", a.ID, err)
		}
		if _, err := delCVEs.ExecContext(ctx, a.ID); err != nil {
			return fmt.Errorf("store advisory %s: %w", a.ID, err)
		}
		for _, cve := range a.CVEs() {
			if _, err := insCVE.ExecContext(ctx, a.ID, cve); err != nil {
				return fmt.Errorf("store advisory %s: %w", a.ID, err)
			}
		}
		seen := map[match.Key]bool{}
		for _, af := range a.Affected {
			k := match.Key{Ecosystem: af.Ecosystem, Name: match.NormalizeName(af.Ecosystem, af.Name)}
			if seen[k] {
				continue
			}
			seen[k] = true
			if _, err := aff.ExecContext(ctx, a.ID, k.Ecosystem, k.Name); err != nil {
				return fmt.Errorf("store advisory %s: %w", a.ID, err)
			}
		}
	}
	for _, s := range b.Sources {
		// Counts and data age of an OSV collection are what it holds now.
		var newest sql.NullString
		if err := tx.QueryRowContext(ctx, d.D.CollectionStats, s.Source).Scan(&s.Records, &newest); err != nil {
			return fmt.Errorf("count collection %s: %w", s.Source, err)
		}
		s.DataTime = parseTime(newest.String)
		if err := d.putSource(ctx, tx, s); err != nil {
			return err
		}
	}
	return nil
}

func (d *Store) putSource(ctx context.Context, tx *sql.Tx, s feeds.SourceState) error {
	_, err := tx.ExecContext(ctx, d.D.PutSource,
		s.Source, s.Origin, fmtTime(s.ImportedAt), fmtTime(s.DataTime), s.Records, s.ETag, s.LastModified, s.Version)
	if err != nil {
		return fmt.Errorf("record feed source %s: %w", s.Source, err)
	}
	return nil
}

// UpdateValidators implements feeds.Store.
func (d *Store) UpdateValidators(ctx context.Context, s feeds.SourceState) error {
	_, err := d.DB.ExecContext(ctx, d.D.UpdateValidators, s.ETag, s.LastModified, s.Origin, s.Source)
	if err != nil {
		return fmt.Errorf("record feed source %s: %w", s.Source, err)
	}
	return nil
}

func (d *Store) replaceKEV(ctx context.Context, tx *sql.Tx, c *advisory.KEVCatalog, s feeds.SourceState) error {
	if _, err := tx.ExecContext(ctx, d.D.DeleteKEV); err != nil {
		return err
	}
	ins, err := tx.PrepareContext(ctx, d.D.InsertKEV)
	if err != nil {
		return err
	}
	defer ins.Close()
	for _, e := range c.Entries {
		due := ""
		if !e.DueDate.IsZero() {
			due = e.DueDate.Format(time.DateOnly)
		}
		if _, err := ins.ExecContext(ctx, e.CVE, e.Vendor, e.Product, e.Name, e.DateAdded.Format(time.DateOnly), due, e.Ransomware); err != nil {
			return fmt.Errorf("store KEV %s: %w", e.CVE, err)
		}
	}
	return d.putSource(ctx, tx, s)
}

func (d *Store) replaceEPSS(ctx context.Context, tx *sql.Tx, f *advisory.EPSSFile, s feeds.SourceState) error {
	if _, err := tx.ExecContext(ctx, d.D.DeleteEPSS); err != nil {
		return err
	}
	ins, err := tx.PrepareContext(ctx, d.D.InsertEPSS)
	if err != nil {
		return err
	}
	defer ins.Close()
	for _, e := range f.Scores {
		if _, err := ins.ExecContext(ctx, e.CVE, e.Probability, e.Percentile); err != nil {
			return fmt.Errorf("store EPSS %s: %w", e.CVE, err)
		}
	}
	return d.putSource(ctx, tx, s)
}

// Sources implements feeds.Store.
func (d *Store) Sources(ctx context.Context) ([]feeds.SourceState, error) {
	rows, err := d.DB.QueryContext(ctx, d.D.Sources)
	if err != nil {
		return nil, fmt.Errorf("read feed sources: %w", err)
	}
	defer rows.Close()
	var out []feeds.SourceState
	for rows.Next() {
		var s feeds.SourceState
		var imp, dt string
		if err := rows.Scan(&s.Source, &s.Origin, &imp, &dt, &s.Records, &s.ETag, &s.LastModified, &s.Version); err != nil {
			return nil, err
		}
		s.ImportedAt, s.DataTime = parseTime(imp), parseTime(dt)
		out = append(out, s)
	}
	return out, rows.Err()
}

// EcosystemCounts implements feeds.Store.
func (d *Store) EcosystemCounts(ctx context.Context) (map[string]int, error) {
	rows, err := d.DB.QueryContext(ctx, d.D.EcosystemCounts)
	if err != nil {
		return nil, fmt.Errorf("count advisories: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var eco string
		var n int
		if err := rows.Scan(&eco, &n); err != nil {
			return nil, err
		}
		out[eco] = n
	}
	return out, rows.Err()
}

// Advisories returns the advisories that name any of the keys, each once.
func (d *Store) Advisories(ctx context.Context, keys []match.Key) ([]*advisory.Advisory, error) {
	// One read-only transaction for every key: one snapshot, and SQLite
	// takes its WAL read lock once instead of once per query (on the
	// lockfile corpus, 3,118 fcntl calls fewer).
	tx, err := d.DB.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("look up advisories: %w", err)
	}
	defer tx.Rollback() // read only: nothing to commit
	stmt, err := tx.PrepareContext(ctx, d.D.AdvisoriesByKey)
	if err != nil {
		return nil, fmt.Errorf("look up advisories: %w", err)
	}
	defer stmt.Close()
	seen := map[string]bool{}
	var out []*advisory.Advisory
	for _, k := range keys {
		rows, err := stmt.QueryContext(ctx, k.Ecosystem, k.Name)
		if err != nil {
			return nil, fmt.Errorf("look up advisories for %s/%s: %w", k.Ecosystem, k.Name, err)
		}
		for rows.Next() {
			var id string
			var doc []byte
			if err := rows.Scan(&id, &doc); err != nil {
				rows.Close()
				return nil, err
			}
			if seen[id] {
				continue
			}
			seen[id] = true
			a, err := advisory.DecodeStored(doc)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("decode stored advisory %s: %w", id, err)
			}
			out = append(out, a)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Exploitation returns the KEV entries and EPSS scores of the given CVEs.
func (d *Store) Exploitation(ctx context.Context, cves []string) (map[string]advisory.KEVEntry, map[string]advisory.EPSSScore, error) {
	kev := map[string]advisory.KEVEntry{}
	epss := map[string]advisory.EPSSScore{}
	for start := 0; start < len(cves); start += 500 {
		chunk := cves[start:min(start+500, len(cves))]
		args := make([]any, len(chunk))
		for i, c := range chunk {
			args[i] = c
		}
		in := d.D.Placeholders(len(chunk))
		rows, err := d.DB.QueryContext(ctx, d.D.KEVIn(in), args...)
		if err != nil {
			return nil, nil, fmt.Errorf("read KEV: %w", err)
		}
		for rows.Next() {
			var e advisory.KEVEntry
			var added, due string
			if err := rows.Scan(&e.CVE, &e.Vendor, &e.Product, &e.Name, &added, &due, &e.Ransomware); err != nil {
				rows.Close()
				return nil, nil, err
			}
			e.DateAdded, _ = time.Parse(time.DateOnly, added)
			e.DueDate, _ = time.Parse(time.DateOnly, due)
			kev[e.CVE] = e
		}
		rows.Close()
		rows, err = d.DB.QueryContext(ctx, d.D.EPSSIn(in), args...)
		if err != nil {
			return nil, nil, fmt.Errorf("read EPSS: %w", err)
		}
		for rows.Next() {
			var s advisory.EPSSScore
			if err := rows.Scan(&s.CVE, &s.Probability, &s.Percentile); err != nil {
				rows.Close()
				return nil, nil, err
			}
			epss[s.CVE] = s
		}
		rows.Close()
	}
	return kev, epss, nil
}

// Dialect holds one database's SQL for the advisory index.
type Dialect struct {
	RecordVersions, CollectionIDs, DeleteAdvisory, DeleteAffected, UpsertAdvisory, InsertAffected,
	CollectionStats, PutSource, UpdateValidators, DeleteKEV, InsertKEV, DeleteEPSS, InsertEPSS,
	Sources, EcosystemCounts, AdvisoriesByKey string
	// KEVIn and EPSSIn select by a list of CVEs given as placeholders;
	// KeysIn the affected keys of a list of advisory ids.
	KEVIn, EPSSIn, KeysIn func(placeholders string) string
	// Placeholders renders n bind parameters: "?,?,?" or "$1,$2,$3".
	Placeholders func(n int) string
	EnrichmentDialect
}

// Store implements feeds.Store and scan.Source on a database.
type Store struct {
	DB *sql.DB
	D  *Dialect
}

func (d *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := d.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

const timeFormat = time.RFC3339Nano

func fmtTime(t time.Time) string { return t.UTC().Format(timeFormat) }

func parseTime(s string) time.Time {
	t, _ := time.Parse(timeFormat, s)
	return t
}
