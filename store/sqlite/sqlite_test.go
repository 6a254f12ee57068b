package sqlite

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/patchbay/patchbay/store/storetest"
	"github.com/pressly/goose/v3"
)

// openTest opens a fresh, migrated store for one test.
func openTest(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "patchbay.db"))
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
				if _, err := db.db.Exec(`CREATE TRIGGER refuse_finding BEFORE INSERT ON host_findings WHEN NEW.vulnerability = '` + vuln + `'
					BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`); err != nil {
					t.Fatal(err)
				}
			},
		}
	})
}

func TestLedgerBackfill(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "patchbay.db")+"?_pragma=foreign_keys(1)")
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
	storetest.LedgerBackfill(t, db, func(ctx context.Context, v int64) error {
		_, err := p.UpTo(ctx, v)
		return err
	})
}

// TestDurability SIGKILLs a process group-committing ingests: every
// acknowledged one is stored.
func TestDurability(t *testing.T) {
	storetest.Durability(t, filepath.Join(t.TempDir(), "patchbay.db"), "TestDurabilityChild", openAt)
}

func TestDurabilityChild(t *testing.T) { storetest.DurabilityChild(t, openAt) }

func openAt(t *testing.T, path string) (storetest.IngestStore, storetest.FindingStore) {
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db.Fleet, db.Findings
}
