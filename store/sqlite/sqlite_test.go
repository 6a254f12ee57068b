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
		db, err := Open(context.Background(), filepath.Join(t.TempDir(), "patchbay.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}

func TestAuditContract(t *testing.T) {
	storetest.Audit(t, func(t *testing.T) (storetest.AuditStore, storetest.Tamper) {
		db, err := Open(context.Background(), filepath.Join(t.TempDir(), "patchbay.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db.Audit, func(q string) {
			if _, err := db.db.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestLeasesContract(t *testing.T) {
	storetest.Leases(t, func(t *testing.T) leader.Store {
		db, err := Open(context.Background(), filepath.Join(t.TempDir(), "patchbay.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db.Leases
	})
}

func TestTokensContract(t *testing.T) {
	storetest.Tokens(t, func(t *testing.T) storetest.TokenStore {
		db, err := Open(context.Background(), filepath.Join(t.TempDir(), "patchbay.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db.Tokens
	})
}

func TestFleetContract(t *testing.T) {
	storetest.Fleet(t, func(t *testing.T) storetest.FleetStore {
		db, err := Open(context.Background(), filepath.Join(t.TempDir(), "patchbay.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db.Fleet
	})
}

func TestFindingsContract(t *testing.T) {
	storetest.Findings(t, func(t *testing.T) storetest.FindingStore {
		db, err := Open(context.Background(), filepath.Join(t.TempDir(), "patchbay.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if err := db.Fleet.UpsertHost(context.Background(), fleet.Host{ID: "h1", MachineID: "m1"}); err != nil {
			t.Fatal(err)
		}
		return db.Findings
	})
}
