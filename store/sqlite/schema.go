package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"net/url"
	"os"

	"github.com/patchbay/patchbay/audit"
	"github.com/patchbay/patchbay/store/internal/auditsql"
	"github.com/patchbay/patchbay/store/internal/sqlstore"
)

const hasGoose = `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'goose_db_version'`

// Latest is the schema version this binary's migrations reach.
func Latest() int64 {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		panic(err)
	}
	v, err := sqlstore.Latest(sub)
	if err != nil {
		panic(err) // the embedded files are the binary's own
	}
	return v
}

// Version reads the schema version of the database file at path without
// migrating it or writing to it (read-only, immutable: not even a -wal).
func Version(ctx context.Context, path string) (int64, error) {
	if _, err := os.Stat(path); err != nil {
		return 0, fmt.Errorf("database %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&immutable=1&"+url.Values{"_pragma": {"busy_timeout(10000)"}}.Encode())
	if err != nil {
		return 0, fmt.Errorf("database %s: %w", path, err)
	}
	defer db.Close()
	v, err := sqlstore.Version(ctx, db, hasGoose)
	if err != nil {
		return 0, fmt.Errorf("database %s: %w", path, err)
	}
	return v, nil
}

// Version is the schema version of the open database.
func (d *DB) Version(ctx context.Context) (int64, error) {
	return sqlstore.Version(ctx, d.db, hasGoose)
}

// VacuumInto writes a consistent copy of the live database to path (a
// file that must not exist) with SQLite's VACUUM INTO: one read
// transaction, so writers go on meanwhile (WAL mode) and the copy is the
// database as of the moment it began, compacted.
func (d *DB) VacuumInto(ctx context.Context, path string) error {
	if _, err := d.db.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		return fmt.Errorf("snapshot of %s: %w", d.path, err)
	}
	return nil
}

// ReadOnly reads a database file without migrating it or writing to it
// (a backup's snapshot): its schema version, whether SQLite's quick check
// passes, and its audit chain.
func ReadOnly(ctx context.Context, path string) (version int64, entries []audit.Entry, err error) {
	if _, err := os.Stat(path); err != nil {
		return 0, nil, fmt.Errorf("database %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&immutable=1")
	if err != nil {
		return 0, nil, fmt.Errorf("database %s: %w", path, err)
	}
	defer db.Close()
	if version, err = sqlstore.Version(ctx, db, hasGoose); err != nil {
		return 0, nil, fmt.Errorf("database %s: %w", path, err)
	}
	var ok string
	if err := db.QueryRowContext(ctx, `PRAGMA quick_check`).Scan(&ok); err != nil || ok != "ok" {
		return 0, nil, fmt.Errorf("database %s: integrity check: %v %s", path, err, ok)
	}
	if entries, err = auditsql.EntriesIn(ctx, db, auditDialect); err != nil {
		return 0, nil, fmt.Errorf("database %s: %w", path, err)
	}
	return version, entries, nil
}
