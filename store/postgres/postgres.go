// Package postgres is patchbay's scale-out store: PostgreSQL through pgx,
// migrated with goose from the SQL files embedded in the binary. Several
// server processes share one database.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	"github.com/pressly/goose/v3"

	"github.com/patchbay/patchbay/store/internal/auditsql"
	"github.com/patchbay/patchbay/store/internal/feedsql"
	"github.com/patchbay/patchbay/store/internal/fleetsql"
	"github.com/patchbay/patchbay/store/internal/kpisql"
	"github.com/patchbay/patchbay/store/internal/leasesql"
	"github.com/patchbay/patchbay/store/internal/scoresql"
	"github.com/patchbay/patchbay/store/internal/sqlstore"
	"github.com/patchbay/patchbay/store/internal/tokensql"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is an open, migrated patchbay database on PostgreSQL.
type DB struct {
	sqlstore.Stores
	db *sql.DB
}

// Open connects to the database named by dsn (postgres://…) and applies
// pending migrations.
func Open(ctx context.Context, dsn string) (*DB, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	// database/sql keeps two idle connections by default: under load,
	// connections would be opened and closed at every burst.
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		db.Close()
		return nil, err
	}
	if err := sqlstore.Migrate(ctx, goose.DialectPostgres, db, sub); err != nil {
		db.Close()
		return nil, err
	}
	return &DB{Stores: sqlstore.New(db, sqlstore.Dialects{Feeds: dialect, Audit: auditDialect, Leases: leaseDialect, Tokens: tokenDialect, Fleet: fleetDialect, Findings: findingsDialect,
		Policy: policyDialect, Rollouts: rolloutDialect, Schedules: scheduleDialect, KPI: &kpisql.Dialect{Rebind: rebind, WriteLock: nil}, Users: userDialect,
		Scores: &scoresql.Dialect{Rebind: rebind, InsertNotice: `INSERT INTO scorecard_notices(key, at) VALUES($1,$2) ON CONFLICT DO NOTHING`}, Fixes: fixDialect}), db: db}, nil
}

// Close closes the connection pool.
func (d *DB) Close() error { return d.db.Close() }

// SQL is the connection pool, for its statistics.
func (d *DB) SQL() *sql.DB { return d.db }

// dialect is PostgreSQL's SQL for the advisory index.
var dialect = &feedsql.Dialect{
	RecordVersions: `SELECT id, modified, hash, collection FROM advisories`,
	CollectionIDs:  `SELECT id FROM advisories WHERE collection = $1`,
	DeleteAdvisory: `DELETE FROM advisories WHERE id = $1`,
	DeleteAffected: `DELETE FROM affected WHERE advisory_id = $1`,
	UpsertAdvisory: `INSERT INTO advisories(id, collection, modified, hash, doc) VALUES($1,$2,$3,$4,$5)
		ON CONFLICT(id) DO UPDATE SET collection=excluded.collection, modified=excluded.modified, hash=excluded.hash, doc=excluded.doc`,
	InsertAffected:  `INSERT INTO affected(advisory_id, ecosystem, name) VALUES($1,$2,$3)`,
	CollectionStats: `SELECT COUNT(*), MAX(modified) FROM advisories WHERE collection = $1`,
	PutSource: `INSERT INTO feed_sources(source, origin, imported_at, data_time, records, etag, last_modified, version)
		VALUES($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT(source) DO UPDATE SET origin=excluded.origin, imported_at=excluded.imported_at,
		data_time=excluded.data_time, records=excluded.records, etag=excluded.etag, last_modified=excluded.last_modified, version=excluded.version`,
	UpdateValidators: `UPDATE feed_sources SET etag=$1, last_modified=$2, origin=$3 WHERE source=$4`,
	DeleteKEV:        `DELETE FROM kev`,
	InsertKEV: `INSERT INTO kev(cve, vendor, product, name, date_added, due_date, ransomware) VALUES($1,$2,$3,$4,$5,$6,$7)
		ON CONFLICT(cve) DO UPDATE SET vendor=excluded.vendor, product=excluded.product, name=excluded.name,
		date_added=excluded.date_added, due_date=excluded.due_date, ransomware=excluded.ransomware`,
	DeleteEPSS: `DELETE FROM epss`,
	InsertEPSS: `INSERT INTO epss(cve, probability, percentile) VALUES($1,$2,$3)
		ON CONFLICT(cve) DO UPDATE SET probability=excluded.probability, percentile=excluded.percentile`,
	Sources:         `SELECT source, origin, imported_at, data_time, records, etag, last_modified, version FROM feed_sources ORDER BY source`,
	EcosystemCounts: `SELECT ecosystem, COUNT(DISTINCT advisory_id) FROM affected GROUP BY ecosystem`,
	AdvisoriesByKey: `SELECT a.id, a.doc FROM affected f JOIN advisories a ON a.id = f.advisory_id WHERE f.ecosystem = $1 AND f.name = $2`,
	KEVIn: func(in string) string {
		return `SELECT cve, vendor, product, name, date_added, due_date, ransomware FROM kev WHERE cve IN (` + in + `)`
	},
	KeysIn: func(in string) string {
		return `SELECT DISTINCT ecosystem, name FROM affected WHERE advisory_id IN (` + in + `)`
	},
	EPSSIn: func(in string) string {
		return `SELECT cve, probability, percentile FROM epss WHERE cve IN (` + in + `)`
	},
	Placeholders: func(n int) string {
		var b strings.Builder
		for i := 1; i <= n; i++ {
			if i > 1 {
				b.WriteByte(',')
			}
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(i))
		}
		return b.String()
	},
	EnrichmentDialect: feedsql.EnrichmentDialect{
		CVERecordTimes: `SELECT cve, last_modified FROM cve_records`,
		UpsertCVERecord: `INSERT INTO cve_records(cve, last_modified, doc) VALUES($1,$2,$3)
			ON CONFLICT(cve) DO UPDATE SET last_modified=excluded.last_modified, doc=excluded.doc`,
		CVERecordStats:     `SELECT COUNT(*), MAX(last_modified) FROM cve_records`,
		DeleteVendor:       `DELETE FROM vendor_ratings WHERE vendor = $1`,
		InsertVendor:       `INSERT INTO vendor_ratings(cve, vendor, ecosystem, package, rating) VALUES($1,$2,$3,$4,$5)`,
		VendorRatings:      `SELECT cve, vendor, ecosystem, package, rating FROM vendor_ratings WHERE vendor = $1`,
		DeleteAdvisoryCVEs: `DELETE FROM advisory_cves WHERE advisory_id = $1`,
		InsertAdvisoryCVE:  `INSERT INTO advisory_cves(advisory_id, cve) VALUES($1,$2)`,
		CVERecordsIn: func(in string) string {
			return `SELECT cve, doc FROM cve_records WHERE cve IN (` + in + `)`
		},
		VendorRatingsIn: func(in string) string {
			return `SELECT cve, vendor, ecosystem, package, rating FROM vendor_ratings WHERE cve IN (` + in + `)`
		},
		KeysOfCVEsIn: func(in string) string {
			return `SELECT DISTINCT f.ecosystem, f.name FROM advisory_cves c JOIN affected f ON f.advisory_id = c.advisory_id WHERE c.cve IN (` + in + `)`
		},
	},
}

// auditDialect is this database's SQL for the audit log.
var auditDialect = &auditsql.Dialect{
	Lock:   `LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE`,
	Last:   `SELECT seq, time, actor, action, object, digest, prev, hash FROM audit_log ORDER BY seq DESC LIMIT 1`,
	Insert: `INSERT INTO audit_log(seq, time, actor, action, object, digest, prev, hash) VALUES($1,$2,$3,$4,$5,$6,$7,$8)`,
	All:    `SELECT seq, time, actor, action, object, digest, prev, hash FROM audit_log ORDER BY seq`,
}

// leaseDialect is PostgreSQL's SQL for leader leases.
var leaseDialect = &leasesql.Dialect{
	Ensure:   `INSERT INTO leases(name, holder, term, expires_at) VALUES($1, '', 0, 0) ON CONFLICT(name) DO NOTHING`,
	Lock:     `SELECT holder, term, expires_at FROM leases WHERE name = $1 FOR UPDATE`,
	Take:     `UPDATE leases SET holder = $1, term = $2, expires_at = $3 WHERE name = $4`,
	Renew:    `UPDATE leases SET expires_at = $1 WHERE name = $2 AND holder = $3 AND term = $4 AND expires_at > $5`,
	ReadTerm: `SELECT term FROM leases WHERE name = $1 FOR SHARE`,
	Release:  `UPDATE leases SET holder = '', expires_at = 0 WHERE name = $1 AND holder = $2 AND term = $3`,
}

// tokenDialect is PostgreSQL's SQL for credentials.
var tokenDialect = &tokensql.Dialect{
	Insert: `INSERT INTO tokens(id, hash, kind, role, name, created, expires, uses_left, revoked, subject) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)`,
	ByHash: `SELECT ` + tokensql.Columns + ` FROM tokens WHERE hash = $1`,
	UseEnrollment: `UPDATE tokens SET uses_left = CASE WHEN uses_left > 0 THEN uses_left - 1 ELSE uses_left END
		WHERE hash = $1 AND kind = 'enrollment' AND NOT revoked AND uses_left <> 0 AND (expires = 0 OR expires > $2)`,
	Revoke:  `UPDATE tokens SET revoked = TRUE, revoked_at = $1 WHERE id = $2 AND NOT revoked`,
	Revoked: `SELECT revoked, revoked_at FROM tokens WHERE id = $1`,
	List:    `SELECT ` + tokensql.Columns + ` FROM tokens ORDER BY created, id`,
}

// fleetDialect is PostgreSQL's SQL for hosts and inventories.
var fleetDialect = &fleetsql.Dialect{
	UpsertHost: `INSERT INTO hosts(id, machine_id, hostname, ecosystem, labels, last_seen, inventory_hash) VALUES($1,$2,$3,$4,$5,$6,'')
		ON CONFLICT(id) DO UPDATE SET machine_id=excluded.machine_id, hostname=excluded.hostname, ecosystem=excluded.ecosystem,
		labels=excluded.labels, last_seen=excluded.last_seen`,
	LockHost:       `SELECT inventory_hash FROM hosts WHERE id = $1 FOR UPDATE`,
	EnsureSW:       `INSERT INTO software(ecosystem, name, version, source_name, source_version, match_name) VALUES($1,$2,$3,$4,$5,$6) ON CONFLICT DO NOTHING`,
	SoftwareID:     `SELECT id FROM software WHERE ecosystem = $1 AND name = $2 AND version = $3 AND source_name = $4 AND source_version = $5`,
	HostHash:       `SELECT inventory_hash FROM hosts WHERE id = $1`,
	HostSeq:        `SELECT seq FROM host_keys WHERE host_id = $1`,
	EnsureHostSeq:  `INSERT INTO host_keys(host_id) VALUES($1) ON CONFLICT DO NOTHING`,
	LocationID:     `SELECT id FROM locations WHERE path = $1`,
	EnsureLocation: `INSERT INTO locations(path) VALUES($1) ON CONFLICT DO NOTHING`,
	Links:          `SELECT software_id, location_id FROM host_links WHERE host_seq = $1`,
	DeleteLink:     `DELETE FROM host_links WHERE host_seq = $1 AND software_id = $2 AND location_id = $3`,
	InsertLinks: func(n int) string {
		var b strings.Builder
		b.WriteString(`INSERT INTO host_links(host_seq, software_id, location_id) VALUES `)
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "($%d,$%d,$%d)", 3*i+1, 3*i+2, 3*i+3)
		}
		b.WriteString(` ON CONFLICT DO NOTHING`)
		return b.String()
	},
	SetHash:        `UPDATE hosts SET inventory_hash = $1 WHERE id = $2`,
	Inventory:      `SELECT s.ecosystem, s.name, s.version, s.source_name, s.source_version, loc.path FROM host_keys k JOIN host_links l ON l.host_seq = k.seq JOIN software s ON s.id = l.software_id JOIN locations loc ON loc.id = l.location_id WHERE k.host_id = $1 ORDER BY s.ecosystem, s.name, s.version, loc.path`,
	CountSW:        `SELECT COUNT(*) FROM software`,
	SoftwareWith:   `SELECT k.host_id, s.ecosystem, s.name, s.version, s.source_name, s.source_version, loc.path FROM software s JOIN host_links l ON l.software_id = s.id JOIN host_keys k ON k.seq = l.host_seq JOIN locations loc ON loc.id = l.location_id WHERE s.match_name = $1 AND (s.ecosystem = $2 OR s.ecosystem LIKE $3)`,
	InsertHost:     `INSERT INTO hosts(id, machine_id, hostname, ecosystem, labels, last_seen, inventory_hash, facts, enrolled_at, clone_of) VALUES($1,$2,$3,$4,$5,$6,'',$7,$8,$9)`,
	OtherByMachine: `SELECT id FROM hosts WHERE machine_id = $1 AND id <> $2 ORDER BY enrolled_at LIMIT 1`,
	MarkClone:      `UPDATE hosts SET clone_of = $1 WHERE id = $2 AND clone_of = ''`,
	InsertToken:    tokenDialect.Insert,
	UseEnrollment:  tokenDialect.UseEnrollment,
	CheckIn:        `UPDATE hosts SET hostname = $1, ecosystem = $2, facts = $3, last_seen = $4 WHERE id = $5`,
	Touch:          `UPDATE hosts SET last_seen = $1 WHERE id = $2 AND last_seen < $3`,
	SetUpdates:     `UPDATE hosts SET updates_hash = $1, updates = $2, updates_count = $3 WHERE id = $4`,
	Updates:        `SELECT updates FROM hosts WHERE id = $1`,
	SetLabels:      `UPDATE hosts SET labels = $1 WHERE id = $2`,
	Hosts:          `SELECT ` + fleetsql.HostColumns + ` FROM hosts ORDER BY hostname, id`,
	HostSummary:    `SELECT ` + fleetsql.HostColumns + ` FROM hosts WHERE id = $1`,
	Rebind:         rebind,
	// Ingests are group-committed in four lanes: a transaction (and its
	// WAL flush) per group instead of per host, groups in parallel.
	GroupLanes: 4,
}

// findingsDialect is this database's SQL for host findings.
var findingsDialect = &fleetsql.FindingsDialect{
	LockHost:  `SELECT open_counts FROM hosts WHERE id = $1 FOR UPDATE`,
	SetCounts: `UPDATE hosts SET open_counts = $1 WHERE id = $2`,
	Open:      `SELECT ` + fleetsql.OpenColumns + ` FROM host_findings WHERE host_id = $1 AND remediated_at = 0`,
	ForUpdate: ` FOR UPDATE`,
	Rebind:    rebind,
	// Many rows per statement: each is a round trip.
	UpdateFromValues:       true,
	BeforeUpdateFromValues: []string{`SET LOCAL enable_hashjoin = off`, `SET LOCAL enable_mergejoin = off`},
	BoolType:               "BOOLEAN",
	AnalyzeTemp:            true,
}

// rebind turns '?' placeholders into PostgreSQL's $1, $2, ….
func rebind(q string) string {
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}
