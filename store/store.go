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
	// serve claims the database for one server process (SQLite); nil
	// where several share it (PostgreSQL).
	serve func() error
	lite  *sqlite.DB
	pg    *postgres.DB
}

// LockForServer claims the database for this server process while it is
// open. The embedded SQLite file serves one server at a time: a second
// server process on it is refused, with an error naming the file, its
// lock file and the other process's pid (sqlite.ErrInUse); the CLI's
// local commands, which do not call this, work beside the server.
// PostgreSQL, where several replicas share the database, takes no lock.
func (d *DB) LockForServer() error {
	if d.serve == nil {
		return nil
	}
	return d.serve()
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
		return &DB{Stores: db.Stores, Backend: "postgres", pool: db.SQL(), close: db.Close, pg: db}, nil
	}
	db, err := sqlite.Open(ctx, strings.TrimPrefix(dsn, "sqlite:"))
	if err != nil {
		return nil, err
	}
	return &DB{Stores: db.Stores, Backend: "sqlite", pool: db.SQL(), close: db.Close, serve: db.LockForServer, lite: db}, nil
}
