// Package pgtest gives tests a fresh PostgreSQL database on the machine's
// server ($PATCHBAY_TEST_POSTGRES, or 127.0.0.1:5432 with trust auth),
// dropped when the test ends.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/patchbay/patchbay/internal/sharedtest"
)

// AdminDSN reaches the test server.
func AdminDSN() string {
	if d := os.Getenv("PATCHBAY_TEST_POSTGRES"); d != "" {
		return d
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// Fresh creates an empty database for one test, drops it after, and
// returns its DSN. Without a reachable server the test skips (or fails
// when PATCHBAY_REQUIRE_SYSTEM=1).
func Fresh(t testing.TB) string {
	t.Helper()
	admin, err := sql.Open("pgx", AdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	if err := admin.PingContext(context.Background()); err != nil {
		sharedtest.System(t, "PostgreSQL is not reachable at "+AdminDSN()+": "+err.Error())
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := "patchbay_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)") })
	dsn := AdminDSN()
	i := strings.LastIndex(dsn, "/")
	rest := ""
	if q := strings.IndexByte(dsn[i:], '?'); q >= 0 {
		rest = dsn[i+q:]
	}
	return dsn[:i+1] + name + rest
}
