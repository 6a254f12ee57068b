package postgres

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/match"
	"github.com/patchbay/patchbay/store/storetest"
)

// adminDSN reaches the test server: $PATCHBAY_TEST_POSTGRES, or the
// machine's PostgreSQL on 127.0.0.1:5432 (trust auth, database test).
func adminDSN() string {
	if d := os.Getenv("PATCHBAY_TEST_POSTGRES"); d != "" {
		return d
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// freshDatabase creates an empty database for one test and drops it after.
func freshDatabase(t *testing.T) string {
	t.Helper()
	admin, err := sql.Open("pgx", adminDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	if err := admin.PingContext(context.Background()); err != nil {
		sharedtest.System(t, "PostgreSQL is not reachable at "+adminDSN()+": "+err.Error())
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := "patchbay_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)") })
	dsn := adminDSN()
	i := strings.LastIndex(dsn, "/")
	rest := ""
	if q := strings.IndexByte(dsn[i:], '?'); q >= 0 {
		rest = dsn[i+q:]
	}
	return dsn[:i+1] + name + rest
}

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
		return storetest.Backend{
			Feeds: db, Audit: db.Audit, Leases: db.Leases, Tokens: db.Tokens, Fleet: db.Fleet, Findings: db.Findings,
			Tamper: func(q string) {
				if _, err := db.db.Exec(q); err != nil {
					t.Fatal(err)
				}
			},
		}
	})
}
