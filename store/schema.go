package store

import (
	"context"
	"errors"
	"strings"

	"github.com/patchbay/patchbay/audit"

	"github.com/patchbay/patchbay/store/postgres"
	"github.com/patchbay/patchbay/store/sqlite"
)

// Schema versions, snapshots and emptiness: what backups and restores
// (package backup) need of the database.

// KnownSchema is the schema version this binary's migrations reach for a
// backend ("sqlite" or "postgres").
func KnownSchema(backend string) int64 {
	if backend == "postgres" {
		return postgres.Latest()
	}
	return sqlite.Latest()
}

// SchemaVersionOf reads the schema version of the database dsn names
// without opening it as Open does (no migration, nothing written).
func SchemaVersionOf(ctx context.Context, dsn string) (int64, error) {
	if IsPostgres(dsn) {
		return postgres.Version(ctx, dsn)
	}
	return sqlite.Version(ctx, strings.TrimPrefix(dsn, "sqlite:"))
}

// SchemaVersion is the schema version of the open database.
func (d *DB) SchemaVersion(ctx context.Context) (int64, error) {
	if d.pg != nil {
		return d.pg.Version(ctx)
	}
	return d.lite.Version(ctx)
}

// ErrNotSQLite is returned by SQLite-only operations on PostgreSQL.
var ErrNotSQLite = errors.New("the database is PostgreSQL, not SQLite")

// VacuumInto writes a consistent, compacted copy of the live SQLite
// database to path (which must not exist) while writers go on.
func (d *DB) VacuumInto(ctx context.Context, path string) error {
	if d.lite == nil {
		return ErrNotSQLite
	}
	return d.lite.VacuumInto(ctx, path)
}

// PGSnapshot is an exported PostgreSQL snapshot (pg_dump --snapshot) with
// the schema version and audit chain read in it.
type PGSnapshot = postgres.Snapshot

// ExportSnapshot exports a snapshot of the PostgreSQL database; close it
// once pg_dump has started with it.
func (d *DB) ExportSnapshot(ctx context.Context) (*PGSnapshot, error) {
	if d.pg == nil {
		return nil, errors.New("an exported snapshot is PostgreSQL's: the database is SQLite")
	}
	return d.pg.ExportSnapshot(ctx)
}

// PostgresTables counts the tables of the PostgreSQL database dsn names.
func PostgresTables(ctx context.Context, dsn string) (int, error) { return postgres.Tables(ctx, dsn) }

// EmptyPostgres drops everything in the current schema of the PostgreSQL
// database dsn names.
func EmptyPostgres(ctx context.Context, dsn string) error { return postgres.Empty(ctx, dsn) }

// ReadSQLiteSnapshot reads a SQLite file without migrating or writing it:
// its schema version and audit chain, after SQLite's quick check.
func ReadSQLiteSnapshot(ctx context.Context, path string) (int64, []audit.Entry, error) {
	return sqlite.ReadOnly(ctx, strings.TrimPrefix(path, "sqlite:"))
}
