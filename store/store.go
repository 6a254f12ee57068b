// Package store opens patchbay's database by its DSN: the embedded SQLite
// file (a path, or sqlite:PATH) by default, PostgreSQL for postgres://…
// and postgresql://…, where several server processes share one database.
// Both backends are the same stores on database/sql with their own SQL,
// and pass the same contract tests (store/storetest).
package store

import (
	"context"
	"database/sql"
	"strings"

	"github.com/patchbay/patchbay/store/internal/sqlstore"
	"github.com/patchbay/patchbay/store/postgres"
	"github.com/patchbay/patchbay/store/sqlite"
)

// DB is an open, migrated database of either backend.
type DB struct {
	sqlstore.Stores
	// Backend is "sqlite" or "postgres".
	Backend string
	pool    *sql.DB
	close   func() error
}

// Close closes the database.
func (d *DB) Close() error { return d.close() }

// SQL is the connection pool, for its statistics.
func (d *DB) SQL() *sql.DB { return d.pool }

// IsPostgres tells whether a DSN names a PostgreSQL database.
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Open opens and migrates the database dsn names.
func Open(ctx context.Context, dsn string) (*DB, error) {
	if IsPostgres(dsn) {
		db, err := postgres.Open(ctx, dsn)
		if err != nil {
			return nil, err
		}
		return &DB{Stores: db.Stores, Backend: "postgres", pool: db.SQL(), close: db.Close}, nil
	}
	db, err := sqlite.Open(ctx, strings.TrimPrefix(dsn, "sqlite:"))
	if err != nil {
		return nil, err
	}
	return &DB{Stores: db.Stores, Backend: "sqlite", pool: db.SQL(), close: db.Close}, nil
}
