// Package sqlstore assembles patchbay's store on database/sql from one
// database's SQL: store/sqlite and store/postgres each supply their
// dialects and migrations, and share everything else.
package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/pressly/goose/v3"

	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/scan"
	"github.com/patchbay/patchbay/store/internal/auditsql"
	"github.com/patchbay/patchbay/store/internal/feedsql"
	"github.com/patchbay/patchbay/store/internal/fixsql"
	"github.com/patchbay/patchbay/store/internal/fleetsql"
	"github.com/patchbay/patchbay/store/internal/kpisql"
	"github.com/patchbay/patchbay/store/internal/leasesql"
	"github.com/patchbay/patchbay/store/internal/policysql"
	"github.com/patchbay/patchbay/store/internal/rolloutsql"
	"github.com/patchbay/patchbay/store/internal/scoresql"
	"github.com/patchbay/patchbay/store/internal/tokensql"
	"github.com/patchbay/patchbay/store/internal/usersql"
)

// Dialects are one database's SQL, per aggregate.
type Dialects struct {
	Feeds    *feedsql.Dialect
	Audit    *auditsql.Dialect
	Leases   *leasesql.Dialect
	Tokens   *tokensql.Dialect
	Fleet    *fleetsql.Dialect
	Findings *fleetsql.FindingsDialect
	Policy   *policysql.Dialect
	Rollouts *rolloutsql.Dialect
	// Schedules is the SQL of schedule runs and pauses.
	Schedules *rolloutsql.ScheduleDialect
	Users     *usersql.Dialect
	KPI       *kpisql.Dialect
	Scores    *scoresql.Dialect
	Fixes     *fixsql.Dialect
}

// Stores is the store, one part per aggregate. The advisory index is
// embedded: Stores is a feeds.Store and a scan.Source.
type Stores struct {
	feedsql.Store
	// Audit is the tamper-evident log.
	Audit *auditsql.Store
	// Leases elect the one process that runs once-only work.
	Leases *leasesql.Store
	// Tokens are the credentials.
	Tokens *tokensql.Store
	// Fleet keeps hosts and their inventories.
	Fleet *fleetsql.Store
	// Findings keeps host findings and their history.
	Findings *fleetsql.Findings
	// Policy keeps the applied policy documents and their versions.
	Policy *policysql.Store
	// Rollouts keeps plans, rollouts and their jobs, and notifications.
	Rollouts *rolloutsql.Store
	// Users keeps the web UI's people and their sessions.
	Users *usersql.Store
	// KPI reads the exposure ledger and keeps the daily snapshots.
	KPI *kpisql.Store
	// Scores keeps scorecard results, their history and pushed facts.
	Scores *scoresql.Store
	// Fixes keeps the fix proposals of services (branches, merge requests).
	Fixes *fixsql.Store
}

var (
	_ feeds.Store = (*Stores)(nil)
	_ scan.Source = (*Stores)(nil)
)

// New assembles the stores on db.
func New(db *sql.DB, d Dialects) Stores {
	leases := &leasesql.Store{DB: db, D: d.Leases, WriteLock: d.Findings.WriteLock}
	aud := &auditsql.Store{DB: db, D: d.Audit}
	findings := &fleetsql.Findings{DB: db, D: d.Findings, Fencer: leases}
	return Stores{
		Store:    feedsql.Store{DB: db, D: d.Feeds},
		Audit:    aud,
		Leases:   leases,
		Tokens:   &tokensql.Store{DB: db, D: d.Tokens},
		Fleet:    &fleetsql.Store{DB: db, D: d.Fleet, Findings: findings},
		Findings: findings,
		Policy:   &policysql.Store{DB: db, D: d.Policy, Audit: aud, WriteLock: d.Findings.WriteLock},
		Rollouts: &rolloutsql.Store{DB: db, D: d.Rollouts, S: d.Schedules, Audit: aud, Leases: leases, WriteLock: d.Findings.WriteLock},
		Users:    &usersql.Store{DB: db, D: d.Users},
		KPI:      &kpisql.Store{DB: db, D: d.KPI},
		Scores:   &scoresql.Store{DB: db, D: d.Scores, Audit: aud, WriteLock: d.Findings.WriteLock},
		Fixes:    &fixsql.Store{DB: db, D: d.Fixes},
	}
}

// Migrate applies the pending migrations of fsys (goose SQL files).
func Migrate(ctx context.Context, dialect goose.Dialect, db *sql.DB, fsys fs.FS) error {
	p, err := goose.NewProvider(dialect, db, fsys)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate database: %w", err)
	}
	return nil
}

// Latest is the highest migration version among fsys's goose files
// (NNNNN_name.sql): the schema this binary knows.
func Latest(fsys fs.FS) (int64, error) {
	ents, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return 0, fmt.Errorf("migrations: %w", err)
	}
	var latest int64
	for _, e := range ents {
		name := e.Name()
		i := strings.IndexByte(name, '_')
		if i <= 0 || !strings.HasSuffix(name, ".sql") {
			continue
		}
		v, err := strconv.ParseInt(name[:i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("migration %s: %w", name, err)
		}
		latest = max(latest, v)
	}
	return latest, nil
}

// Version is the schema version goose applied to db: the highest applied
// migration, 0 for a database goose never migrated. hasTable counts the
// tables named goose_db_version (the backend's catalog query).
func Version(ctx context.Context, db *sql.DB, hasTable string) (int64, error) {
	var n int
	if err := db.QueryRowContext(ctx, hasTable).Scan(&n); err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	var v sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT MAX(version_id) FROM goose_db_version WHERE is_applied`).Scan(&v); err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return v.Int64, nil
}
