// Package feeds imports advisory feeds into the advisory index and keeps
// them current: OSV records (all.zip archives, directories, single files),
// the CISA KEV catalog and EPSS scores, from local files (`feeds import`) or
// over HTTP from upstream or a mirror with the same layout (`feeds sync`).
//
// Imports are idempotent and incremental: a record whose `modified` time and
// content are unchanged is not rewritten, an older copy never replaces a
// newer one, withdrawn records are removed, and an all.zip is a snapshot of
// its ecosystem, so records that vanished from it are removed too. Every
// import is applied in one transaction: readers see the old data or the new,
// never a mix (ImportPaths applies every file it is given, OSV, KEV and
// EPSS alike, in one transaction; Sync one source at a time). Malformed
// records are skipped and reported by file name; an archive with a member
// that cannot be read (a failed CRC) is refused whole, and a feed that
// would shrink a source by more than Importer.MaxShrink is refused unless
// Importer.Force is set.
package feeds

import (
	"context"
	"time"

	"github.com/patchbay/patchbay/advisory"
	"github.com/patchbay/patchbay/match"
)

// Source names.
const (
	SourceKEV  = "kev"
	SourceEPSS = "epss"
	// SourceNVD holds NVD CVE records (scores, CWEs, dates).
	SourceNVD = "nvd"
	// SourceVendorPrefix prefixes the vendor ratings of one vendor:
	// "vendor/Debian" (the security tracker's urgencies).
	SourceVendorPrefix = "vendor/"
	// SourceOSVPrefix prefixes OSV collections: "osv/Go", "osv/local".
	SourceOSVPrefix = "osv/"
	// LocalCollection holds records imported from directories and single
	// files; they are never removed by a snapshot.
	LocalCollection = SourceOSVPrefix + "local"
)

// SourceState is what the index knows of one feed source.
type SourceState struct {
	Source     string    `json:"source"`
	Origin     string    `json:"origin"` // path or URL last imported
	ImportedAt time.Time `json:"imported_at,omitzero"`
	// DataTime is the age of the data itself: newest record modification,
	// KEV release date or EPSS score date.
	DataTime time.Time `json:"data_time,omitzero"`
	Records  int       `json:"records"`
	// ETag and LastModified are the HTTP validators of the last download.
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	Version      string `json:"version,omitempty"` // KEV catalog or EPSS model version
}

// RecordVersion identifies the stored copy of an OSV record.
type RecordVersion struct {
	Modified   time.Time
	Hash       [32]byte
	Collection string
}

// Record is an OSV record to store.
type Record struct {
	Advisory   *advisory.Advisory
	Hash       [32]byte
	Collection string
}

// Batch is one import's changes, applied in one transaction: OSV records
// and, when set, a new KEV catalog and new EPSS scores.
type Batch struct {
	Upserts []Record
	Deletes []string // advisory ids
	// Sources are the states of the OSV collections to record with the
	// batch (their counts and data age are computed in the transaction).
	Sources []SourceState
	// KEV, when set, replaces the KEV catalog; KEVState is recorded with it.
	KEV      *advisory.KEVCatalog
	KEVState SourceState
	// EPSS, when set, replaces all EPSS scores; EPSSState is recorded with
	// them.
	EPSS      *advisory.EPSSFile
	EPSSState SourceState
	// CVERecords are NVD records to insert or replace (NVD is not a
	// snapshot: records not given stay); CVEState is recorded with them
	// (its count and data age are computed in the transaction).
	CVERecords []advisory.CVERecord
	CVEState   SourceState
	// Vendor, when set, replaces every rating of VendorState's vendor
	// (VendorState.Source is SourceVendorPrefix + the vendor).
	Vendor      []advisory.VendorRating
	VendorState SourceState
}

func (b Batch) empty() bool {
	return len(b.Upserts) == 0 && len(b.Deletes) == 0 && len(b.Sources) == 0 && b.KEV == nil && b.EPSS == nil &&
		b.CVERecords == nil && b.Vendor == nil
}

// Store is the advisory index as the importer sees it.
type Store interface {
	// RecordVersions returns the stored version of every OSV record.
	RecordVersions(ctx context.Context) (map[string]RecordVersion, error)
	// CollectionIDs returns the ids of the records of a collection.
	CollectionIDs(ctx context.Context, collection string) ([]string, error)
	// KeysOf returns the package keys the stored records name.
	KeysOf(ctx context.Context, ids []string) ([]match.Key, error)
	// Apply writes a batch in one transaction: readers see all of it or
	// none of it.
	Apply(ctx context.Context, b Batch) error
	// Sources returns every source's state, sorted by name.
	Sources(ctx context.Context) ([]SourceState, error)
	// EcosystemCounts returns, per affected ecosystem, how many advisories
	// name it.
	EcosystemCounts(ctx context.Context) (map[string]int, error)
	// CVERecordTimes returns the last-modified time of every stored NVD
	// record.
	CVERecordTimes(ctx context.Context) (map[string]time.Time, error)
	// KeysOfCVEs returns the package keys of the advisories that name any
	// of the CVEs (as id or alias): the findings an enrichment changes.
	KeysOfCVEs(ctx context.Context, cves []string) ([]match.Key, error)
	// VendorRatings returns every stored rating of a vendor.
	VendorRatings(ctx context.Context, vendor string) ([]advisory.VendorRating, error)
	// UpdateValidators records the HTTP validators of a source after a
	// download that changed nothing (304 or identical content).
	UpdateValidators(ctx context.Context, s SourceState) error
}
