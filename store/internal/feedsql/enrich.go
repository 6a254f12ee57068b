package feedsql

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/patchbay/patchbay/advisory"
	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/match"
)

// EnrichmentDialect is one database's SQL for CVE enrichment (NVD
// records, vendor ratings and the advisories' CVEs).
type EnrichmentDialect struct {
	CVERecordTimes, UpsertCVERecord, CVERecordStats, DeleteVendor, InsertVendor, VendorRatings,
	DeleteAdvisoryCVEs, InsertAdvisoryCVE string
	// CVERecordsIn, VendorRatingsIn and KeysOfCVEsIn select by a list of
	// CVEs given as placeholders.
	CVERecordsIn, VendorRatingsIn, KeysOfCVEsIn func(placeholders string) string
}

// CVERecordTimes implements feeds.Store.
func (d *Store) CVERecordTimes(ctx context.Context) (map[string]time.Time, error) {
	rows, err := d.DB.QueryContext(ctx, d.D.CVERecordTimes)
	if err != nil {
		return nil, fmt.Errorf("read NVD record times: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var id, mod string
		if err := rows.Scan(&id, &mod); err != nil {
			return nil, err
		}
		out[id] = parseTime(mod)
	}
	return out, rows.Err()
}

// KeysOfCVEs implements feeds.Store.
func (d *Store) KeysOfCVEs(ctx context.Context, cves []string) ([]match.Key, error) {
	seen := map[match.Key]bool{}
	var out []match.Key
	err := d.chunked(ctx, cves, d.D.KeysOfCVEsIn, func(rows *sql.Rows) error {
		var k match.Key
		if err := rows.Scan(&k.Ecosystem, &k.Name); err != nil {
			return err
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the packages of CVEs: %w", err)
	}
	return out, nil
}

// VendorRatings implements feeds.Store.
func (d *Store) VendorRatings(ctx context.Context, vendor string) ([]advisory.VendorRating, error) {
	rows, err := d.DB.QueryContext(ctx, d.D.VendorRatings, vendor)
	if err != nil {
		return nil, fmt.Errorf("read %s ratings: %w", vendor, err)
	}
	defer rows.Close()
	var out []advisory.VendorRating
	for rows.Next() {
		var r advisory.VendorRating
		if err := rows.Scan(&r.CVE, &r.Vendor, &r.Ecosystem, &r.Package, &r.Rating); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Enrichment returns the NVD record and vendor ratings of each of the
// CVEs that has any.
func (d *Store) Enrichment(ctx context.Context, cves []string) (map[string]advisory.Enrichment, error) {
	out := map[string]advisory.Enrichment{}
	err := d.chunked(ctx, cves, d.D.CVERecordsIn, func(rows *sql.Rows) error {
		var id string
		var doc []byte
		if err := rows.Scan(&id, &doc); err != nil {
			return err
		}
		r := &advisory.CVERecord{}
		if err := json.Unmarshal(doc, r); err != nil {
			return fmt.Errorf("decode stored NVD record %s: %w", id, err)
		}
		e := out[id]
		e.Record = r
		out[id] = e
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read NVD records: %w", err)
	}
	err = d.chunked(ctx, cves, d.D.VendorRatingsIn, func(rows *sql.Rows) error {
		var r advisory.VendorRating
		if err := rows.Scan(&r.CVE, &r.Vendor, &r.Ecosystem, &r.Package, &r.Rating); err != nil {
			return err
		}
		e := out[r.CVE]
		e.Vendors = append(e.Vendors, r)
		out[r.CVE] = e
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read vendor ratings: %w", err)
	}
	for id, e := range out {
		sort.Slice(e.Vendors, func(i, j int) bool {
			a, b := e.Vendors[i], e.Vendors[j]
			if a.Vendor != b.Vendor {
				return a.Vendor < b.Vendor
			}
			if a.Ecosystem != b.Ecosystem {
				return a.Ecosystem < b.Ecosystem
			}
			return a.Package < b.Package
		})
		out[id] = e
	}
	return out, nil
}

// chunked runs query for the items 500 at a time, calling row for every
// row.
func (d *Store) chunked(ctx context.Context, items []string, query func(string) string, row func(*sql.Rows) error) error {
	for start := 0; start < len(items); start += 500 {
		chunk := items[start:min(start+500, len(items))]
		args := make([]any, len(chunk))
		for i, c := range chunk {
			args[i] = c
		}
		rows, err := d.DB.QueryContext(ctx, query(d.D.Placeholders(len(chunk))), args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			if err := row(rows); err != nil {
				rows.Close()
				return err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

// applyEnrichment writes a batch's NVD records and vendor ratings.
func (d *Store) applyEnrichment(ctx context.Context, tx *sql.Tx, b feeds.Batch) error {
	if b.CVERecords != nil {
		up, err := tx.PrepareContext(ctx, d.D.UpsertCVERecord)
		if err != nil {
			return err
		}
		defer up.Close()
		for _, r := range b.CVERecords {
			doc, err := json.Marshal(r)
			if err != nil {
				return fmt.Errorf("encode NVD record %s: %w", r.ID, err)
			}
			if _, err := up.ExecContext(ctx, r.ID, fmtTime(r.LastModified), doc); err != nil {
				return fmt.Errorf("store NVD record %s: %w", r.ID, err)
			}
		}
		s := b.CVEState
		var newest sql.NullString
		if err := tx.QueryRowContext(ctx, d.D.CVERecordStats).Scan(&s.Records, &newest); err != nil {
			return fmt.Errorf("count NVD records: %w", err)
		}
		s.DataTime = parseTime(newest.String)
		if err := d.putSource(ctx, tx, s); err != nil {
			return err
		}
	}
	if b.Vendor != nil {
		vendor := b.VendorState.Source[len(feeds.SourceVendorPrefix):]
		if _, err := tx.ExecContext(ctx, d.D.DeleteVendor, vendor); err != nil {
			return fmt.Errorf("replace %s ratings: %w", vendor, err)
		}
		ins, err := tx.PrepareContext(ctx, d.D.InsertVendor)
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, r := range b.Vendor {
			if r.Vendor != vendor {
				return fmt.Errorf("store %s ratings: a rating of %s by %s", vendor, r.CVE, r.Vendor)
			}
			if _, err := ins.ExecContext(ctx, r.CVE, r.Vendor, r.Ecosystem, r.Package, r.Rating); err != nil {
				return fmt.Errorf("store %s rating of %s: %w", vendor, r.CVE, err)
			}
		}
		if err := d.putSource(ctx, tx, b.VendorState); err != nil {
			return err
		}
	}
	return nil
}
