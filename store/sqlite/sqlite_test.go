package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/leader"
	"github.com/patchbay/patchbay/store/storetest"
)

func TestFeedsContract(t *testing.T) {
	storetest.Feeds(t, func(t *testing.T) storetest.FeedStore {
		db := openTest(t)
		return db
	})
}

func TestAuditContract(t *testing.T) {
	storetest.Audit(t, func(t *testing.T) (storetest.AuditStore, storetest.Tamper) {
		db := openTest(t)
		return db.Audit, func(q string) {
			if _, err := db.db.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestLeasesContract(t *testing.T) {
	storetest.Leases(t, func(t *testing.T) leader.Store {
		db := openTest(t)
		return db.Leases
	})
}

func TestTokensContract(t *testing.T) {
	storetest.Tokens(t, func(t *testing.T) storetest.TokenStore {
		db := openTest(t)
		return db.Tokens
	})
}

func TestFleetContract(t *testing.T) {
	storetest.Fleet(t, func(t *testing.T) storetest.FleetStore {
		db := openTest(t)
		return db.Fleet
	})
}

func TestFindingsContract(t *testing.T) {
	storetest.Findings(t, func(t *testing.T) storetest.FindingStore {
		db := openTest(t)
		if err := db.Fleet.UpsertHost(context.Background(), fleet.Host{ID: "h1", MachineID: "m1"}); err != nil {
			t.Fatal(err)
		}
		return db.Findings
	})
}

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
