package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"

	"github.com/patchbay/patchbay/audit"
	"github.com/patchbay/patchbay/store/internal/auditsql"
	"github.com/patchbay/patchbay/store/internal/sqlstore"
)

const hasGoose = `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'goose_db_version'`

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

// Version reads the schema version of the database dsn names without
// migrating it.
func Version(ctx context.Context, dsn string) (int64, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return 0, fmt.Errorf("open database: %w", err)
	}
	defer db.Close()
	return sqlstore.Version(ctx, db, hasGoose)
}

// Tables counts the tables of the database dsn names (in its current
// schema): zero for an empty target.
func Tables(ctx context.Context, dsn string) (int, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return 0, fmt.Errorf("open database: %w", err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()`).Scan(&n); err != nil {
		return 0, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	return n, nil
}

// Empty drops every object of the current schema of the database dsn
// names (the --force of a restore over a database that holds data).
func Empty(ctx context.Context, dsn string) error {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer db.Close()
	var schema string
	if err := db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	q := `DROP SCHEMA ` + quoteIdent(schema) + ` CASCADE; CREATE SCHEMA ` + quoteIdent(schema)
	if _, err := db.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("empty schema %s: %w", schema, err)
	}
	return nil
}

func quoteIdent(s string) string {
	out := []byte{'"'}
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			out = append(out, '"')
		}
		out = append(out, s[i])
	}
	return string(append(out, '"'))
}

// Version is the schema version of the open database.
func (d *DB) Version(ctx context.Context) (int64, error) {
	return sqlstore.Version(ctx, d.db, hasGoose)
}

// Snapshot is a read-only transaction whose snapshot is exported for
// pg_dump --snapshot: what it reads (the audit chain, the schema version)
// is the database as the dump holds it.
type Snapshot struct {
	// ID is the exported snapshot's name.
	ID      string
	Version int64
	Audit   []audit.Entry
	conn    *sql.Conn
	tx      *sql.Tx
}

// Close ends the snapshot's transaction (after pg_dump has begun with it).
func (s *Snapshot) Close() error {
	s.tx.Rollback()
	return s.conn.Close()
}

// ExportSnapshot opens a repeatable-read, read-only transaction, exports
// its snapshot and reads the schema version and the audit chain in it.
func (d *DB) ExportSnapshot(ctx context.Context) (*Snapshot, error) {
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	s := &Snapshot{conn: conn, tx: tx}
	fail := func(err error) (*Snapshot, error) {
		s.Close()
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT pg_export_snapshot()`).Scan(&s.ID); err != nil {
		return fail(err)
	}
	var v sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT MAX(version_id) FROM goose_db_version WHERE is_applied`).Scan(&v); err != nil {
		return fail(err)
	}
	s.Version = v.Int64
	if s.Audit, err = auditsql.EntriesIn(ctx, tx, auditDialect); err != nil {
		return fail(err)
	}
	return s, nil
}
