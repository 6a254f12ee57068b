package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/patchbay/patchbay/store/storetest"
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
		return storetest.Backend{
			Feeds: db, Audit: db.Audit, Leases: db.Leases, Tokens: db.Tokens, Fleet: db.Fleet, Findings: db.Findings, Policy: db.Policy, Users: db.Users,
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
