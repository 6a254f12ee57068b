// Package sqlite is patchbay's embedded store: one SQLite file (pure Go,
// modernc.org/sqlite) in the data dir, migrated with goose from the SQL
// files embedded in the binary.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/patchbay/patchbay/store/internal/auditsql"
	"github.com/patchbay/patchbay/store/internal/fleetsql"
	"github.com/patchbay/patchbay/store/internal/kpisql"
	"github.com/patchbay/patchbay/store/internal/leasesql"
	"github.com/patchbay/patchbay/store/internal/scoresql"
	"github.com/patchbay/patchbay/store/internal/sqlstore"
	"github.com/patchbay/patchbay/store/internal/tokensql"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is an open, migrated patchbay database.
type DB struct {
	sqlstore.Stores
	db   *sql.DB
	stop func() // ends the checkpointer
	path string
	// lock is the server's lock file while LockForServer holds it.
	lockMu sync.Mutex
	lock   *os.File
}

// Open opens (creating if needed) the database file at path and applies
// pending migrations. The file is made mode 0600 (it holds credentials'
// hashes and the audit chain): created so whatever the umask, and
// narrowed when found wider, as are its -wal and -shm files (SQLite gives
// them the database file's mode when it creates them).
func Open(ctx context.Context, path string) (*DB, error) {
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if err := private(path); err != nil {
		return nil, err
	}
	q := url.Values{}
	// Every connection reads pages through one shared memory map (each
	// has its own page cache otherwise, cold for whichever connection the
	// pool hands the next writer). The WAL is checkpointed in the
	// background, not inside the writers' commits.
	for _, p := range []string{"journal_mode(WAL)", "busy_timeout(10000)", "synchronous(NORMAL)", "foreign_keys(1)",
		"cache_size(-32768)", "mmap_size(536870912)", "temp_store(MEMORY)", "wal_autocheckpoint(0)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	// A few readers beside the one writer; kept open (the default keeps
	// two idle, and opening a connection applies every pragma again).
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		db.Close()
		return nil, err
	}
	if err := sqlstore.Migrate(ctx, goose.DialectSQLite3, db, sub); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// Migrating wrote through the WAL: the -wal and -shm files exist now.
	if err := private(path); err != nil {
		db.Close()
		return nil, err
	}
	cctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go checkpointer(cctx, db, done)
	return &DB{Stores: sqlstore.New(db, sqlstore.Dialects{Feeds: dialect, Audit: auditDialect, Leases: leaseDialect, Tokens: tokenDialect, Fleet: fleetDialect, Findings: findingsDialect,
		Policy: policyDialect, Rollouts: rolloutDialect, Schedules: scheduleDialect, KPI: &kpisql.Dialect{Rebind: rebind, WriteLock: findingsDialect.WriteLock}, Users: userDialect,
		Scores: &scoresql.Dialect{Rebind: rebind, InsertNotice: `INSERT INTO scorecard_notices(key, at) VALUES(?,?) ON CONFLICT DO NOTHING`}, Fixes: fixDialect}),
		db: db, stop: func() { cancel(); <-done }, path: path}, nil
}

// private narrows the database file, its -wal and its -shm to mode 0600
// (owner read and write) when they exist with wider modes.
func private(path string) error {
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		st, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("database file mode: %w", err)
		}
		if !st.Mode().IsRegular() || st.Mode().Perm() == 0o600 {
			continue
		}
		if err := os.Chmod(p, 0o600); err != nil {
			return fmt.Errorf("database file mode: %w", err)
		}
	}
	return nil
}

// checkpointer copies the WAL into the database file every second
// (PASSIVE: it never blocks readers or the writer), and truncates the WAL
// when it has grown past 256 MiB.
func checkpointer(ctx context.Context, db *sql.DB, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var busy, logPages, done int
		if err := db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logPages, &done); err != nil {
			continue
		}
		if logPages > 65536 {
			db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
		}
	}
}

// Close checkpoints and closes the database, then releases the server's
// lock (LockForServer) if it holds it.
func (d *DB) Close() error {
	defer d.unlock()
	d.stop()
	d.db.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	return d.db.Close()
}

// SQL is the connection pool, for its statistics.
func (d *DB) SQL() *sql.DB { return d.db }

// auditDialect is this database's SQL for the audit log.
var auditDialect = &auditsql.Dialect{
	Lock:   ``,
	Last:   `SELECT seq, time, actor, action, object, digest, prev, hash FROM audit_log ORDER BY seq DESC LIMIT 1`,
	Insert: `INSERT INTO audit_log(seq, time, actor, action, object, digest, prev, hash) VALUES(?,?,?,?,?,?,?,?)`,
	All:    `SELECT seq, time, actor, action, object, digest, prev, hash FROM audit_log ORDER BY seq`,
}

// leaseDialect is SQLite's SQL for leader leases (immediate transactions
// serialise writers, so reads need no lock clause).
var leaseDialect = &leasesql.Dialect{
	Ensure:   `INSERT INTO leases(name, holder, term, expires_at) VALUES(?, '', 0, 0) ON CONFLICT(name) DO NOTHING`,
	Lock:     `SELECT holder, term, expires_at FROM leases WHERE name = ?`,
	Take:     `UPDATE leases SET holder = ?, term = ?, expires_at = ? WHERE name = ?`,
	Renew:    `UPDATE leases SET expires_at = ? WHERE name = ? AND holder = ? AND term = ? AND expires_at > ?`,
	ReadTerm: `SELECT term FROM leases WHERE name = ?`,
	Release:  `UPDATE leases SET holder = '', expires_at = 0 WHERE name = ? AND holder = ? AND term = ?`,
}

// tokenDialect is SQLite's SQL for credentials.
var tokenDialect = &tokensql.Dialect{
	Insert: `INSERT INTO tokens(id, hash, kind, role, name, created, expires, uses_left, revoked, subject) VALUES(?,?,?,?,?,?,?,?,?,?)`,
	ByHash: `SELECT ` + tokensql.Columns + ` FROM tokens WHERE hash = ?`,
	UseEnrollment: `UPDATE tokens SET uses_left = CASE WHEN uses_left > 0 THEN uses_left - 1 ELSE uses_left END
		WHERE hash = ? AND kind = 'enrollment' AND NOT revoked AND uses_left <> 0 AND (expires = 0 OR expires > ?)`,
	Revoke:  `UPDATE tokens SET revoked = TRUE, revoked_at = ? WHERE id = ? AND NOT revoked`,
	Revoked: `SELECT revoked, revoked_at FROM tokens WHERE id = ?`,
	List:    `SELECT ` + tokensql.Columns + ` FROM tokens ORDER BY created, id`,
}

// fleetDialect is SQLite's SQL for hosts and inventories.
var fleetDialect = &fleetsql.Dialect{
	UpsertHost: `INSERT INTO hosts(id, machine_id, hostname, ecosystem, labels, last_seen, inventory_hash) VALUES(?,?,?,?,?,?,'')
		ON CONFLICT(id) DO UPDATE SET machine_id=excluded.machine_id, hostname=excluded.hostname, ecosystem=excluded.ecosystem,
		labels=excluded.labels, last_seen=excluded.last_seen`,
	LockHost:       `SELECT inventory_hash FROM hosts WHERE id = ?`,
	EnsureSW:       `INSERT INTO software(ecosystem, name, version, source_name, source_version, match_name) VALUES(?,?,?,?,?,?) ON CONFLICT DO NOTHING`,
	SoftwareID:     `SELECT id FROM software WHERE ecosystem = ? AND name = ? AND version = ? AND source_name = ? AND source_version = ?`,
	HostHash:       `SELECT inventory_hash FROM hosts WHERE id = ?`,
	HostSeq:        `SELECT seq FROM host_keys WHERE host_id = ?`,
	EnsureHostSeq:  `INSERT INTO host_keys(host_id) VALUES(?) ON CONFLICT DO NOTHING`,
	LocationID:     `SELECT id FROM locations WHERE path = ?`,
	EnsureLocation: `INSERT INTO locations(path) VALUES(?) ON CONFLICT DO NOTHING`,
	Links:          `SELECT software_id, location_id FROM host_links WHERE host_seq = ?`,
	DeleteLink:     `DELETE FROM host_links WHERE host_seq = ? AND software_id = ? AND location_id = ?`,
	InsertLinks: func(n int) string {
		return `INSERT INTO host_links(host_seq, software_id, location_id) VALUES ` +
			strings.TrimSuffix(strings.Repeat("(?,?,?),", n), ",") + ` ON CONFLICT DO NOTHING`
	},
	SetHash:        `UPDATE hosts SET inventory_hash = ? WHERE id = ?`,
	Inventory:      `SELECT s.ecosystem, s.name, s.version, s.source_name, s.source_version, loc.path FROM host_keys k JOIN host_links l ON l.host_seq = k.seq JOIN software s ON s.id = l.software_id JOIN locations loc ON loc.id = l.location_id WHERE k.host_id = ? ORDER BY s.ecosystem, s.name, s.version, loc.path`,
	CountSW:        `SELECT COUNT(*) FROM software`,
	SoftwareWith:   `SELECT k.host_id, s.ecosystem, s.name, s.version, s.source_name, s.source_version, loc.path FROM software s JOIN host_links l ON l.software_id = s.id JOIN host_keys k ON k.seq = l.host_seq JOIN locations loc ON loc.id = l.location_id WHERE s.match_name = ? AND (s.ecosystem = ? OR s.ecosystem LIKE ?)`,
	InsertHost:     `INSERT INTO hosts(id, machine_id, hostname, ecosystem, labels, last_seen, inventory_hash, facts, enrolled_at, clone_of) VALUES(?,?,?,?,?,?,'',?,?,?)`,
	OtherByMachine: `SELECT id FROM hosts WHERE machine_id = ? AND id <> ? ORDER BY enrolled_at LIMIT 1`,
	MarkClone:      `UPDATE hosts SET clone_of = ? WHERE id = ? AND clone_of = ''`,
	InsertToken:    tokenDialect.Insert,
	UseEnrollment:  tokenDialect.UseEnrollment,
	CheckIn:        `UPDATE hosts SET hostname = ?, ecosystem = ?, facts = ?, last_seen = ? WHERE id = ?`,
	Touch:          `UPDATE hosts SET last_seen = ? WHERE id = ? AND last_seen < ?`,
	SetUpdates:     `UPDATE hosts SET updates_hash = ?, updates = ?, updates_count = ? WHERE id = ?`,
	Updates:        `SELECT updates FROM hosts WHERE id = ?`,
	SetLabels:      `UPDATE hosts SET labels = ? WHERE id = ?`,
	Hosts:          `SELECT ` + fleetsql.HostColumns + ` FROM hosts ORDER BY hostname, id`,
	HostSummary:    `SELECT ` + fleetsql.HostColumns + ` FROM hosts WHERE id = ?`,
	Rebind:         rebind,
	WriteLock:      &writeLock,
	PrepareInGroup: true,
}

// findingsDialect is this database's SQL for host findings.
var findingsDialect = &fleetsql.FindingsDialect{
	LockHost:  `SELECT open_counts FROM hosts WHERE id = ?`,
	SetCounts: `UPDATE hosts SET open_counts = ? WHERE id = ?`,
	Open:      `SELECT ` + fleetsql.OpenColumns + ` FROM host_findings WHERE host_id = ? AND remediated_at = 0`,
	Rebind:    rebind,
	WriteLock: &writeLock,
	BoolType:  "INTEGER",
}

// writeLock queues this process's big write transactions (inventories,
// findings) for SQLite's single writer.
var writeLock sync.Mutex

// rebind keeps SQLite's '?' placeholders.
func rebind(q string) string { return q }
