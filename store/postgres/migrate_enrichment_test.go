package postgres

import (
	"context"
	"database/sql"
	"io/fs"
	"slices"
	"testing"

	"github.com/pressly/goose/v3"
)

// TestMigrationEnrichmentBackfill: on PostgreSQL too, migration 00013
// fills advisory_cves from the advisories already imported (their CVE id
// and CVE aliases; an advisory without aliases, or with aliases that are
// not a list, names none), so that enrichment changes rematch the
// packages of existing advisories.
func TestMigrationEnrichmentBackfill(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("pgx", freshDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 11); err != nil {
		t.Fatal(err)
	}
	for id, doc := range map[string]string{
		"DEBCL-CVE-2024-0001-expat": `{"id":"DEBCL-CVE-2024-0001-expat","aliases":["CVE-2024-0001"],"modified":"2024-01-01T00:00:00Z","affected":[]}`,
		"GHSA-aaaa-bbbb-cccc":       `{"id":"GHSA-aaaa-bbbb-cccc","aliases":["CVE-2024-0002","PYSEC-2024-1","CVE-2024-0003","CVE-2024-0002"],"modified":"2024-01-01T00:00:00Z","affected":[]}`,
		"CVE-2024-0004":             `{"id":"CVE-2024-0004","modified":"2024-01-01T00:00:00Z","affected":[]}`,
		"GO-2024-0001":              `{"id":"GO-2024-0001","modified":"2024-01-01T00:00:00Z","affected":[]}`,
		"PYSEC-2024-2":              `{"id":"PYSEC-2024-2","aliases":null,"modified":"2024-01-01T00:00:00Z","affected":[]}`,
		"RLSA-2024:1249":            `{"id":"RLSA-2024:1249","aliases":"CVE-2024-1086","modified":"2024-01-01T00:00:00Z","affected":[]}`,
	} {
		if _, err := db.ExecContext(ctx, `INSERT INTO advisories(id, collection, modified, hash, doc) VALUES($1,$2,$3,$4,$5)`,
			id, "osv/x", "2024-01-01T00:00:00Z", []byte{1}, []byte(doc)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	rows, err := db.QueryContext(ctx, `SELECT advisory_id || ' ' || cve FROM advisory_cves ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"CVE-2024-0004 CVE-2024-0004", "DEBCL-CVE-2024-0001-expat CVE-2024-0001", "GHSA-aaaa-bbbb-cccc CVE-2024-0002", "GHSA-aaaa-bbbb-cccc CVE-2024-0003"}
	if !slices.Equal(got, want) {
		t.Errorf("advisory_cves %q, want %q", got, want)
	}
}
