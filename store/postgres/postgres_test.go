package postgres

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/internal/pgtest"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/match"
	"github.com/patchbay/patchbay/store/storetest"
	"github.com/pressly/goose/v3"
)

func freshDatabase(t *testing.T) string { return pgtest.Fresh(t) }

// TestImportSharedFeedsIntoPostgres imports the real feeds and scans a
// real host against them on PostgreSQL, as the SQLite tests do.
func TestImportSharedFeedsIntoPostgres(t *testing.T) {
	dir := sharedtest.Dir(t, "feeds")
	ctx := context.Background()
	db, err := Open(ctx, freshDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	im := &feeds.Importer{Store: db}
	paths := []string{filepath.Join(dir, "osv/Debian/all.zip"), filepath.Join(dir, "kev/known_exploited_vulnerabilities.json")}
	sum, err := im.ImportPaths(ctx, paths)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Added != 5368 || sum.KEV != 1404 {
		t.Errorf("import: %s", sum)
	}
	again, err := im.ImportPaths(ctx, paths)
	if err != nil || again.Added+again.Updated+again.Removed != 0 || again.Unchanged != 5368 {
		t.Errorf("re-import: %s %v", again, err)
	}
	advs, err := db.Advisories(ctx, []match.Key{{Ecosystem: "Debian:12", Name: "openssl"}})
	if err != nil || len(advs) == 0 {
		t.Errorf("openssl advisories: %d %v", len(advs), err)
	}
}

// openTest opens a fresh, migrated store for one test.
func openTest(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), freshDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		db := openTest(t)
		db.Findings.BulkChunk = 4 // re-decisions in several transactions
		return storetest.Backend{
			Feeds: db, Audit: db.Audit, Leases: db.Leases, Tokens: db.Tokens, Fleet: db.Fleet, Findings: db.Findings, Policy: db.Policy, Users: db.Users, Rollouts: db.Rollouts, Scores: db.Scores, Fixes: db.Fixes,
			Tamper: func(q string) {
				if _, err := db.db.Exec(q); err != nil {
					t.Fatal(err)
				}
			},
			Fault: func(vuln string) {
				if _, err := db.db.Exec(`CREATE FUNCTION refuse_finding() RETURNS trigger LANGUAGE plpgsql AS $$
					BEGIN IF NEW.vulnerability = '` + vuln + `' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$;
					CREATE TRIGGER refuse_finding BEFORE INSERT ON host_findings FOR EACH ROW EXECUTE FUNCTION refuse_finding()`); err != nil {
					t.Fatal(err)
				}
			},
		}
	})
}

func TestLedgerBackfill(t *testing.T) {
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
	storetest.LedgerBackfill(t, db, func(ctx context.Context, v int64) error {
		_, err := p.UpTo(ctx, v)
		return err
	})
}

// TestDurability SIGKILLs a process group-committing ingests: every
// acknowledged one is stored.
func TestDurability(t *testing.T) {
	storetest.Durability(t, freshDatabase(t), "TestDurabilityChild", openAt)
}

func TestDurabilityChild(t *testing.T) { storetest.DurabilityChild(t, openAt) }

func openAt(t *testing.T, dsn string) (storetest.IngestStore, storetest.FindingStore) {
	db, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db.Fleet, db.Findings
}
