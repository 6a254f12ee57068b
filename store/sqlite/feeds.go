package sqlite

import (
	"strings"

	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/scan"
	"github.com/patchbay/patchbay/store/internal/feedsql"
)

var (
	_ feeds.Store = (*DB)(nil)
	_ scan.Source = (*DB)(nil)
)

// dialect is SQLite's SQL for the advisory index.
var dialect = &feedsql.Dialect{
	RecordVersions: `SELECT id, modified, hash, collection FROM advisories`,
	CollectionIDs:  `SELECT id FROM advisories WHERE collection = ?`,
	DeleteAdvisory: `DELETE FROM advisories WHERE id = ?`,
	DeleteAffected: `DELETE FROM affected WHERE advisory_id = ?`,
	UpsertAdvisory: `INSERT INTO advisories(id, collection, modified, hash, doc) VALUES(?,?,?,?,?)
		ON CONFLICT(id) DO UPDATE SET collection=excluded.collection, modified=excluded.modified, hash=excluded.hash, doc=excluded.doc`,
	InsertAffected:  `INSERT INTO affected(advisory_id, ecosystem, name) VALUES(?,?,?)`,
	CollectionStats: `SELECT COUNT(*), MAX(modified) FROM advisories WHERE collection = ?`,
	PutSource: `INSERT INTO feed_sources(source, origin, imported_at, data_time, records, etag, last_modified, version)
		VALUES(?,?,?,?,?,?,?,?) ON CONFLICT(source) DO UPDATE SET origin=excluded.origin, imported_at=excluded.imported_at,
		data_time=excluded.data_time, records=excluded.records, etag=excluded.etag, last_modified=excluded.last_modified, version=excluded.version`,
	UpdateValidators: `UPDATE feed_sources SET etag=?, last_modified=?, origin=? WHERE source=?`,
	DeleteKEV:        `DELETE FROM kev`,
	InsertKEV:        `INSERT OR REPLACE INTO kev(cve, vendor, product, name, date_added, due_date, ransomware) VALUES(?,?,?,?,?,?,?)`,
	DeleteEPSS:       `DELETE FROM epss`,
	InsertEPSS:       `INSERT OR REPLACE INTO epss(cve, probability, percentile) VALUES(?,?,?)`,
	Sources:          `SELECT source, origin, imported_at, data_time, records, etag, last_modified, version FROM feed_sources ORDER BY source`,
	EcosystemCounts:  `SELECT ecosystem, COUNT(DISTINCT advisory_id) FROM affected GROUP BY ecosystem`,
	AdvisoriesByKey:  `SELECT a.id, a.doc FROM affected f JOIN advisories a ON a.id = f.advisory_id WHERE f.ecosystem = ? AND f.name = ?`,
	KEVIn: func(in string) string {
		return `SELECT cve, vendor, product, name, date_added, due_date, ransomware FROM kev WHERE cve IN (` + in + `)`
	},
	KeysIn: func(in string) string {
		return `SELECT DISTINCT ecosystem, name FROM affected WHERE advisory_id IN (` + in + `)`
	},
	EPSSIn: func(in string) string {
		return `SELECT cve, probability, percentile FROM epss WHERE cve IN (` + in + `)`
	},
	Placeholders: func(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") },
	EnrichmentDialect: feedsql.EnrichmentDialect{
		CVERecordTimes: `SELECT cve, last_modified FROM cve_records`,
		UpsertCVERecord: `INSERT INTO cve_records(cve, last_modified, doc) VALUES(?,?,?)
			ON CONFLICT(cve) DO UPDATE SET last_modified=excluded.last_modified, doc=excluded.doc`,
		CVERecordStats:     `SELECT COUNT(*), MAX(last_modified) FROM cve_records`,
		DeleteVendor:       `DELETE FROM vendor_ratings WHERE vendor = ?`,
		InsertVendor:       `INSERT INTO vendor_ratings(cve, vendor, ecosystem, package, rating) VALUES(?,?,?,?,?)`,
		VendorRatings:      `SELECT cve, vendor, ecosystem, package, rating FROM vendor_ratings WHERE vendor = ?`,
		DeleteAdvisoryCVEs: `DELETE FROM advisory_cves WHERE advisory_id = ?`,
		InsertAdvisoryCVE:  `INSERT INTO advisory_cves(advisory_id, cve) VALUES(?,?)`,
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
