package sqlite

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/pressly/goose/v3"
)

// TestMigrationEnrichmentBackfill: migration 00013 fills advisory_cves
// from the advisories already imported (their CVE id and CVE aliases), so
// that enrichment changes rematch the packages of existing advisories.
func TestMigrationEnrichmentBackfill(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, sub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 11); err != nil {
		t.Fatal(err)
	}
	for id, doc := range map[string]string{
		"DEBCL-CVE-2024-0001-expat": `{"id":"DEBCL-CVE-2024-0001-expat","aliases":["CVE-2024-0001"],"modified":"2024-01-01T00:00:00Z","affected":[]}`,
		"GHSA-aaaa-bbbb-cccc":       `{"id":"GHSA-aaaa-bbbb-cccc","aliases":["CVE-2024-0002","PYSEC-2024-1","CVE-2024-0003"],"modified":"2024-01-01T00:00:00Z","affected":[]}`,
		"CVE-2024-0004":             `{"id":"CVE-2024-0004","modified":"2024-01-01T00:00:00Z","affected":[]}`,
		"GO-2024-0001":              `{"id":"GO-2024-0001","modified":"2024-01-01T00:00:00Z","affected":[]}`,
	} {
		if _, err := db.ExecContext(ctx, `INSERT INTO advisories(id, collection, modified, hash, doc) VALUES(?,?,?,?,?)`,
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
	want := []string{"CVE-2024-0004 CVE-2024-0004", "DEBCL-CVE-2024-0001-expat CVE-2024-0001", "GHSA-aaaa-bbbb-cccc CVE-2024-0002", "GHSA-aaaa-bbbb-cccc CVE-2024-0003"}
	if len(got) != len(want) {
		t.Fatalf("advisory_cves %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("advisory_cves %q, want %q", got, want)
			break
		}
	}
}
