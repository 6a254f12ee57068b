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
// never a mix. Malformed records are skipped and reported by file name.
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
	ImportedAt time.Time `json:"imported_at"`
	// DataTime is the age of the data itself: newest record modification,
	// KEV release date or EPSS score date.
	DataTime time.Time `json:"data_time"`
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

// OSVBatch is one import's changes, applied atomically.
type OSVBatch struct {
	Upserts []Record
	Deletes []string // advisory ids
	// Sources are the source states to record with the batch.
	Sources []SourceState
}

// Store is the advisory index as the importer sees it.
type Store interface {
	// RecordVersions returns the stored version of every OSV record.
	RecordVersions(ctx context.Context) (map[string]RecordVersion, error)
	// CollectionIDs returns the ids of the records of a collection.
	CollectionIDs(ctx context.Context, collection string) ([]string, error)
	// KeysOf returns the package keys the stored records name.
	KeysOf(ctx context.Context, ids []string) ([]match.Key, error)
	// ApplyOSV writes a batch in one transaction.
	ApplyOSV(ctx context.Context, b OSVBatch) error
	// ReplaceKEV replaces the KEV catalog in one transaction.
	ReplaceKEV(ctx context.Context, c *advisory.KEVCatalog, s SourceState) error
	// ReplaceEPSS replaces all EPSS scores in one transaction.
	ReplaceEPSS(ctx context.Context, f *advisory.EPSSFile, s SourceState) error
	// Sources returns every source's state, sorted by name.
	Sources(ctx context.Context) ([]SourceState, error)
	// EcosystemCounts returns, per affected ecosystem, how many advisories
	// name it.
	EcosystemCounts(ctx context.Context) (map[string]int, error)
	// UpdateValidators records the HTTP validators of a source after a
	// download that changed nothing (304 or identical content).
	UpdateValidators(ctx context.Context, s SourceState) error
}
