package feeds

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/patchbay/patchbay/advisory"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/match"
)

// Importer loads feed files into a Store.
type Importer struct {
	Store Store
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxShrink is the largest share of a source's stored records that one
	// import may drop: a KEV catalog, EPSS file or OSV all.zip (a snapshot
	// of its collection) with fewer than (1 - MaxShrink) × the stored
	// records is refused with a *ShrinkError. Zero means DefaultMaxShrink;
	// 1 or more never refuses.
	MaxShrink float64
	// Force imports such a feed anyway.
	Force bool
}

// DefaultMaxShrink refuses a feed with fewer than half the records its
// source holds.
const DefaultMaxShrink = 0.5

// ShrinkError refuses a feed that would replace most of a source's data
// with much less (an empty KEV catalog replacing 1,404 entries).
type ShrinkError struct {
	Source    string  // "kev", "epss", "osv/Go"
	Origin    string  // the file or URL
	Stored    int     // records the source holds
	New       int     // records the feed holds
	MaxShrink float64 // the share it may drop
}

func (e *ShrinkError) Error() string {
	return fmt.Sprintf("%s: refusing %s: it holds %d records where the index holds %d, a drop of more than %.0f%%; `patchbay feeds import --force` imports it anyway",
		e.Source, e.Origin, e.New, e.Stored, e.MaxShrink*100)
}

// checkShrink refuses n new records for a source that holds stored.
func (im *Importer) checkShrink(source, origin string, stored, n int) error {
	max := im.MaxShrink
	if max == 0 {
		max = DefaultMaxShrink
	}
	if im.Force || max >= 1 || stored == 0 || float64(n) >= float64(stored)*(1-max) {
		return nil
	}
	return &ShrinkError{Source: source, Origin: origin, Stored: stored, New: n, MaxShrink: max}
}

// storedRecords is the record count of each source.
func (im *Importer) storedRecords(ctx context.Context) (map[string]int, error) {
	srcs, err := im.Store.Sources(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, s := range srcs {
		out[s.Source] = s.Records
	}
	return out, nil
}

// Problem is an input, or a record inside one, that was skipped.
type Problem struct {
	File string `json:"file"` // "all.zip:GO-2024-1234.json" for archive members
	Err  string `json:"error"`
}

func (p Problem) String() string { return p.File + ": " + p.Err }

// Summary counts what an import did.
type Summary struct {
	Added     int `json:"added"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	Removed   int `json:"removed"`   // withdrawn or gone from a snapshot
	Malformed int `json:"malformed"` // records skipped as unreadable
	KEV       int `json:"kev"`       // KEV entries imported
	EPSS      int `json:"epss"`      // EPSS scores imported
	// CVERecords are NVD records added or updated; CVEUnchanged those
	// already stored at the same or a newer last-modified time.
	CVERecords   int `json:"cve_records,omitempty"`
	CVEUnchanged int `json:"cve_unchanged,omitempty"`
	// VendorRatings are vendor ratings imported (replacing the vendor's).
	VendorRatings int       `json:"vendor_ratings,omitempty"`
	Problems      []Problem `json:"problems,omitempty"`
	// NotImported are files found in a directory that look like feed
	// files (by name) but are of no kind this version imports.
	NotImported []string `json:"not_imported,omitempty"`
	// Changed are the package keys named by added, updated or removed
	// records (before and after the change): the inventories to rematch.
	Changed []match.Key `json:"-"`
}

// String is the one-line summary printed after an import.
func (s Summary) String() string {
	var parts []string
	osv := s.Added+s.Updated+s.Unchanged+s.Removed+s.Malformed > 0
	enriched := s.KEV + s.EPSS + s.CVERecords + s.CVEUnchanged + s.VendorRatings
	if osv || enriched == 0 {
		parts = append(parts, fmt.Sprintf("%d added, %d updated, %d unchanged, %d removed", s.Added, s.Updated, s.Unchanged, s.Removed))
	}
	if s.KEV > 0 {
		parts = append(parts, fmt.Sprintf("%d KEV entries", s.KEV))
	}
	if s.EPSS > 0 {
		parts = append(parts, fmt.Sprintf("%d EPSS scores", s.EPSS))
	}
	if s.CVERecords+s.CVEUnchanged > 0 {
		parts = append(parts, fmt.Sprintf("%d NVD CVE records (%d unchanged)", s.CVERecords, s.CVEUnchanged))
	}
	if s.VendorRatings > 0 {
		parts = append(parts, fmt.Sprintf("%d vendor ratings", s.VendorRatings))
	}
	if osv || enriched == 0 {
		parts = append(parts, fmt.Sprintf("%d skipped as malformed", s.Malformed))
	}
	return strings.Join(parts, ", ")
}

func (im *Importer) now() time.Time {
	if im.Now != nil {
		return im.Now().UTC()
	}
	return time.Now().UTC()
}

// Kind is the format of a feed file.
type Kind int

// Feed file kinds.
const (
	KindUnknown Kind = iota
	KindOSVZip
	KindOSVJSON
	KindKEV
	KindEPSS
	// KindNVD is a file of NVD CVE records (API 2.0 shape), optionally
	// gzipped.
	KindNVD
	// KindDebianTracker is the Debian security tracker's JSON export.
	KindDebianTracker
	// KindCSAF is a CSAF 2.0 VEX document (Red Hat's, one per CVE).
	KindCSAF
)

// Detect tells a feed file's kind from its name and first bytes.
func Detect(name string, head []byte) Kind {
	lower := strings.ToLower(name)
	switch {
	case strings.HasSuffix(lower, ".zip"):
		return KindOSVZip
	case strings.HasSuffix(lower, ".csv"), strings.HasSuffix(lower, ".csv.gz"):
		return KindEPSS
	case strings.HasSuffix(lower, ".json.gz"):
		// Only NVD files are imported gzipped; head is the decompressed
		// start (nil while walking a directory: a candidate).
		if head == nil || bytes.Contains(head, []byte(`"NVD_CVE"`)) {
			return KindNVD
		}
	case strings.HasSuffix(lower, ".json"):
		if bytes.Contains(head, []byte(`"csaf_version"`)) {
			return KindCSAF
		}
		if bytes.Contains(head, []byte(`"catalogVersion"`)) || bytes.Contains(head, []byte(`"cveID"`)) {
			return KindKEV
		}
		if bytes.Contains(head, []byte(`"NVD_CVE"`)) {
			return KindNVD
		}
		if isTrackerHead(head) {
			return KindDebianTracker
		}
		return KindOSVJSON
	}
	return KindUnknown
}

// pending accumulates the changes of one import.
type pending struct {
	versions map[string]RecordVersion
	records  map[string]Record
	deletes  map[string]bool
	sum      Summary
	sources  []SourceState
	// zips names the archive staged for each collection.
	zips map[string]string
	// kev and epss, when set, replace the stored ones.
	kev       *advisory.KEVCatalog
	kevState  SourceState
	epss      *advisory.EPSSFile
	epssState SourceState
	// cves are staged NVD records (newest copy of each), cveOrigins the
	// files or URLs they came from.
	cves         map[string]advisory.CVERecord
	cveTimes     map[string]time.Time // stored, read at the first NVD file
	cveUnchanged map[string]bool
	cveOrigins   []string
	// vendor, when set, replaces the ratings of vendorState's vendor.
	vendor      []advisory.VendorRating
	vendorState SourceState
	// redHat are the ratings of Red Hat's CSAF documents, redHatCVEs the
	// CVEs they describe (their stored ratings are replaced), redHatFiles
	// the documents, redHatNewest their newest release.
	redHatNewest time.Time
	redHat       []advisory.VendorRating
	redHatCVEs   map[string]bool
	redHatFiles  []string
}

// ImportPaths imports files and directories: OSV all.zip archives, OSV JSON
// files, the KEV catalog and EPSS CSV (optionally gzipped). A directory is
// walked for all of these. Everything is applied in one transaction, OSV,
// KEV and EPSS alike: an import that fails or is killed part way changes
// nothing. A file that cannot be read at all, an archive with a member
// that does not read back (a failed CRC), and a feed that shrinks its
// source by more than MaxShrink (unless Force) are errors that import
// nothing; a malformed record inside a readable input is a Problem.
func (im *Importer) ImportPaths(ctx context.Context, paths []string) (Summary, error) {
	p, err := im.begin(ctx)
	if err != nil {
		return Summary{}, err
	}
	var files []string
	walked := map[string]bool{}
	for _, path := range paths {
		st, err := os.Stat(path)
		if err != nil {
			return Summary{}, fmt.Errorf("import: %w", err)
		}
		if !st.IsDir() {
			files = append(files, path)
			continue
		}
		err = filepath.WalkDir(path, func(f string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && Detect(f, nil) != KindUnknown {
				files = append(files, f)
				walked[f] = true
			}
			return nil
		})
		if err != nil {
			return Summary{}, fmt.Errorf("import: %w", err)
		}
	}
	localSeen := false
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return Summary{}, err
		}
		kind, err := detectFile(f)
		if err != nil {
			return Summary{}, err
		}
		switch kind {
		case KindOSVZip:
			zr, err := zip.OpenReader(f)
			if err != nil {
				return Summary{}, fmt.Errorf("import %s: %w", f, err)
			}
			err = im.addZip(p, &zr.Reader, f, "", SourceState{})
			zr.Close()
			if err != nil {
				return Summary{}, err
			}
		case KindOSVJSON:
			data, err := os.ReadFile(f)
			if err != nil {
				return Summary{}, fmt.Errorf("import %s: %w", f, err)
			}
			p.addRecord(f, data, LocalCollection)
			localSeen = true
		case KindKEV:
			if err := im.stageFile(p, f, im.readKEV); err != nil {
				return Summary{}, err
			}
		case KindEPSS:
			if err := im.stageFile(p, f, im.readEPSS); err != nil {
				return Summary{}, err
			}
		case KindNVD:
			if err := im.stageNVDFile(ctx, p, f); err != nil {
				if errors.Is(err, errNotNVDGzip) && walked[f] {
					p.sum.NotImported = append(p.sum.NotImported, f)
					continue
				}
				return Summary{}, err
			}
		case KindDebianTracker:
			if err := im.stageTrackerFile(p, f); err != nil {
				return Summary{}, err
			}
		case KindCSAF:
			if err := im.stageCSAFFile(p, f); err != nil {
				return Summary{}, err
			}
		default:
			return Summary{}, fmt.Errorf("import %s: not an OSV zip or JSON record, KEV catalog, EPSS CSV, NVD CVE file, Debian security tracker JSON or CSAF VEX document", f)
		}
	}
	if localSeen {
		p.sources = append(p.sources, SourceState{Source: LocalCollection, Origin: "files", ImportedAt: im.now()})
	}
	err = im.commit(ctx, p) // before reading p.sum: commit records what changed
	return p.sum, err
}

func detectFile(path string) (Kind, error) {
	f, err := os.Open(path)
	if err != nil {
		return KindUnknown, fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(strings.ToLower(path), ".gz") {
		if gz, err := gzip.NewReader(f); err == nil {
			defer gz.Close()
			r = gz
		}
	}
	head := make([]byte, 4096)
	n, _ := io.ReadFull(r, head)
	return Detect(path, head[:n]), nil
}

// zipCollection is the collection an archive's path suggests: osv/<dir>
// for the bucket layout ".../<Ecosystem>/all.zip", osv/<name> otherwise.
// It only chooses among the ecosystems the records all name (see
// recordsCollection): the content decides, not the file name.
func zipCollection(path string) string {
	base := filepath.Base(path)
	if strings.EqualFold(base, "all.zip") {
		return SourceOSVPrefix + filepath.Base(filepath.Dir(path))
	}
	return SourceOSVPrefix + strings.TrimSuffix(base, filepath.Ext(base))
}

func (im *Importer) begin(ctx context.Context) (*pending, error) {
	v, err := im.Store.RecordVersions(ctx)
	if err != nil {
		return nil, err
	}
	return &pending{versions: v, records: map[string]Record{}, deletes: map[string]bool{}, zips: map[string]string{}}, nil
}

// stageFile reads a KEV or EPSS file with read and stages it in p, to be
// applied with the rest of the import.
func (im *Importer) stageFile(p *pending, path string, read func(io.Reader, SourceState) (Batch, error)) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	b, err := read(f, SourceState{Origin: path})
	if err != nil {
		return err
	}
	if b.KEV != nil {
		p.kev, p.kevState = b.KEV, b.KEVState
	}
	if b.EPSS != nil {
		p.epss, p.epssState = b.EPSS, b.EPSSState
	}
	return nil
}

// checkExploitation refuses a KEV catalog or EPSS file of b that shrinks
// its source too much.
func (im *Importer) checkExploitation(ctx context.Context, b Batch) error {
	if b.KEV == nil && b.EPSS == nil {
		return nil
	}
	stored, err := im.storedRecords(ctx)
	if err != nil {
		return err
	}
	if b.KEV != nil {
		if err := im.checkShrink(SourceKEV, b.KEVState.Origin, stored[SourceKEV], len(b.KEV.Entries)); err != nil {
			return err
		}
	}
	if b.EPSS != nil {
		if err := im.checkShrink(SourceEPSS, b.EPSSState.Origin, stored[SourceEPSS], len(b.EPSS.Scores)); err != nil {
			return err
		}
	}
	return nil
}

func (im *Importer) commit(ctx context.Context, p *pending) error {
	b := Batch{Sources: p.sources, KEV: p.kev, KEVState: p.kevState, EPSS: p.epss, EPSSState: p.epssState}
	if err := im.checkExploitation(ctx, b); err != nil {
		return err
	}
	enriched, err := im.stageEnrichment(ctx, p, &b)
	if err != nil {
		return err
	}
	if p.kev != nil {
		p.sum.KEV += len(p.kev.Entries)
	}
	if p.epss != nil {
		p.sum.EPSS += len(p.epss.Scores)
	}
	if len(p.records) == 0 && len(p.deletes) == 0 && b.empty() {
		return nil
	}
	for id := range p.deletes {
		b.Deletes = append(b.Deletes, id)
	}
	sort.Strings(b.Deletes)
	for _, r := range p.records {
		b.Upserts = append(b.Upserts, r)
	}
	sort.Slice(b.Upserts, func(i, j int) bool { return b.Upserts[i].Advisory.ID < b.Upserts[j].Advisory.ID })
	// What changed, for incremental rematching: the keys the records name
	// now and named before (an update may move a record between packages).
	var touched []string
	seen := map[match.Key]bool{}
	for _, r := range b.Upserts {
		if _, stored := p.versions[r.Advisory.ID]; stored {
			touched = append(touched, r.Advisory.ID)
		}
		for _, af := range r.Advisory.Affected {
			seen[match.Key{Ecosystem: af.Ecosystem, Name: match.NormalizeName(af.Ecosystem, af.Name)}] = true
		}
	}
	old, err := im.Store.KeysOf(ctx, append(touched, b.Deletes...))
	if err != nil {
		return err
	}
	for _, k := range old {
		seen[k] = true
	}
	// An enrichment that changed re-decides the findings of its CVEs
	// only: the packages of the advisories naming them.
	if len(enriched) > 0 {
		keys, err := im.Store.KeysOfCVEs(ctx, enriched)
		if err != nil {
			return err
		}
		for _, k := range keys {
			seen[k] = true
		}
	}
	for k := range seen {
		p.sum.Changed = append(p.sum.Changed, k)
	}
	sort.Slice(p.sum.Changed, func(i, j int) bool {
		a, b := p.sum.Changed[i], p.sum.Changed[j]
		return a.Ecosystem < b.Ecosystem || (a.Ecosystem == b.Ecosystem && a.Name < b.Name)
	})
	return im.Store.Apply(ctx, b)
}

// addZip stages an OSV archive, a snapshot of its collection: stored
// records of the collection that it no longer holds are removed. Every
// member is read in full before anything is staged, and one that does not
// read back (archive/zip checks each member's CRC-32 at its end; a corrupt
// deflate stream fails earlier) refuses the whole archive. The collection,
// when not given, comes from the records: osv/<the base ecosystem every
// record names>, whatever the file is called (see recordsCollection).
func (im *Importer) addZip(p *pending, zr *zip.Reader, origin, collection string, validators SourceState) error {
	type member struct {
		name string
		adv  *advisory.Advisory
		hash [32]byte
	}
	var members []member
	var malformed []Problem
	for _, zf := range zr.File {
		if zf.FileInfo().IsDir() || !strings.HasSuffix(zf.Name, ".json") {
			continue
		}
		name := filepath.Base(origin) + ":" + zf.Name
		data, err := readMember(zf)
		if err != nil {
			return fmt.Errorf("import %s: refusing the archive, nothing of it imported: member %s: %w", origin, zf.Name, err)
		}
		a, err := advisory.ParseOSV(data)
		if err != nil {
			malformed = append(malformed, Problem{File: name, Err: err.Error()})
			continue
		}
		members = append(members, member{name: name, adv: a, hash: sha256.Sum256(data)})
	}
	if collection == "" {
		advs := make([]*advisory.Advisory, len(members))
		for i, m := range members {
			advs[i] = m.adv
		}
		c, err := recordsCollection(origin, advs)
		if err != nil {
			return err
		}
		collection = c
	}
	if prev, ok := p.zips[collection]; ok {
		return fmt.Errorf("import: %s and %s are both snapshots of %s: import one of them", prev, origin, collection)
	}
	p.zips[collection] = origin
	// The shrink guard, before anything is staged: what the collection
	// holds now against what it will hold.
	kept := map[string]bool{}
	for _, m := range members {
		kept[m.adv.ID] = m.adv.Withdrawn.IsZero() || kept[m.adv.ID]
	}
	stored, n := 0, 0
	for _, rv := range p.versions {
		if rv.Collection == collection {
			stored++
		}
	}
	for _, k := range kept {
		if k {
			n++
		}
	}
	if err := im.checkShrink(collection, origin, stored, n); err != nil {
		return err
	}
	for _, pr := range malformed {
		p.sum.Malformed++
		p.sum.Problems = append(p.sum.Problems, pr)
	}
	for _, m := range members {
		p.stage(m.adv, m.hash, collection)
	}
	// Snapshot semantics: what the collection held and the archive lacks goes.
	for id, rv := range p.versions {
		if _, inZip := kept[id]; !inZip && rv.Collection == collection && !p.deletes[id] {
			p.deletes[id] = true
			p.sum.Removed++
		}
	}
	validators.Source, validators.Origin, validators.ImportedAt = collection, origin, im.now()
	p.sources = append(p.sources, validators)
	return nil
}

// readMember reads an archive member to its end, where archive/zip checks
// its CRC-32 (zip.ErrChecksum).
func readMember(zf *zip.File) ([]byte, error) {
	rc, err := zf.Open()
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	return data, err
}

// recordsCollection names the OSV collection an archive's records are a
// snapshot of: osv/<base ecosystem> ("Debian:12" counts as Debian) of the
// one ecosystem that every record naming any names. A record may name
// several (a GHSA record affecting a Go and an npm module is in both
// all.zip files); when every record names the same several, the file's
// bucket layout (.../<Ecosystem>/all.zip or <Ecosystem>.zip) decides among
// them. An archive whose records share no ecosystem mixes ecosystems and
// is refused: it is no ecosystem's snapshot, and importing it as one would
// remove records of the others.
func recordsCollection(origin string, advs []*advisory.Advisory) (string, error) {
	var common map[string]bool
	counts := map[string]int{}
	for _, a := range advs {
		names := map[string]bool{}
		for _, af := range a.Affected {
			names[inventory.BaseEcosystem(af.Ecosystem)] = true
		}
		if len(names) == 0 {
			continue
		}
		for e := range names {
			counts[e]++
		}
		if common == nil {
			common = names
			continue
		}
		for e := range common {
			if !names[e] {
				delete(common, e)
			}
		}
	}
	if common == nil {
		return "", fmt.Errorf("import %s: no record in the archive names an ecosystem: cannot tell which OSV collection it is a snapshot of", origin)
	}
	if len(common) == 1 {
		for e := range common {
			return SourceOSVPrefix + e, nil
		}
	}
	if byName := zipCollection(origin); common[strings.TrimPrefix(byName, SourceOSVPrefix)] {
		return byName, nil
	}
	var parts []string
	for e, n := range counts {
		parts = append(parts, fmt.Sprintf("%s %d", e, n))
	}
	sort.Strings(parts)
	if len(common) > 1 {
		return "", fmt.Errorf("import %s: every record names each of several ecosystems (%s): name the archive <Ecosystem>/all.zip to say which collection it is", origin, strings.Join(parts, ", "))
	}
	return "", fmt.Errorf("import %s: the archive mixes ecosystems (records: %s): an OSV all.zip is the snapshot of one ecosystem; import one archive per ecosystem", origin, strings.Join(parts, ", "))
}

func (p *pending) problem(name string, err error) {
	p.sum.Malformed++
	p.sum.Problems = append(p.sum.Problems, Problem{File: name, Err: err.Error()})
}

// addRecord parses and stages one OSV record; it returns the record id, or
// "" when the record was malformed.
func (p *pending) addRecord(name string, data []byte, collection string) string {
	a, err := advisory.ParseOSV(data)
	if err != nil {
		p.problem(name, err)
		return ""
	}
	p.stage(a, sha256.Sum256(data), collection)
	return a.ID
}

// stage stages one parsed OSV record of a collection (h is the hash of its
// JSON).
func (p *pending) stage(a *advisory.Advisory, h [32]byte, collection string) {
	if !a.Withdrawn.IsZero() {
		if _, stored := p.versions[a.ID]; stored && !p.deletes[a.ID] {
			p.deletes[a.ID] = true
			p.sum.Removed++
		}
		delete(p.records, a.ID)
		return
	}
	if prev, ok := p.records[a.ID]; ok && prev.Advisory.Modified.After(a.Modified) {
		return // a newer copy is already staged
	}
	stored, ok := p.versions[a.ID]
	switch {
	case ok && stored.Modified.After(a.Modified):
		p.sum.Unchanged++ // never replace a newer record with an older one
		return
	case ok && stored.Modified.Equal(a.Modified) && stored.Hash == h && stored.Collection == collection:
		p.sum.Unchanged++
		return
	case ok:
		p.sum.Updated++
	default:
		if _, staged := p.records[a.ID]; !staged {
			p.sum.Added++
		}
	}
	p.records[a.ID] = Record{Advisory: a, Hash: h, Collection: collection}
}

// ErrNoData is returned when a feed file holds no usable data.
var ErrNoData = errors.New("no data")

// ImportKEV replaces the KEV catalog with the one read from r, in one
// transaction, unless it shrinks the catalog by more than MaxShrink.
func (im *Importer) ImportKEV(ctx context.Context, r io.Reader, st SourceState) (Summary, error) {
	b, err := im.readKEV(r, st)
	if err != nil {
		return Summary{}, err
	}
	if err := im.checkExploitation(ctx, b); err != nil {
		return Summary{}, err
	}
	if err := im.Store.Apply(ctx, b); err != nil {
		return Summary{}, err
	}
	return Summary{KEV: len(b.KEV.Entries)}, nil
}

func (im *Importer) readKEV(r io.Reader, st SourceState) (Batch, error) {
	cat, err := advisory.ParseKEV(r)
	if err != nil {
		return Batch{}, fmt.Errorf("import %s: %w", st.Origin, err)
	}
	st.Source, st.ImportedAt, st.Records, st.Version = SourceKEV, im.now(), len(cat.Entries), cat.Version
	st.DataTime = cat.Released
	return Batch{KEV: cat, KEVState: st}, nil
}

// ImportEPSS replaces all EPSS scores with those read from r (CSV, or
// gzipped CSV: detected from the content), in one transaction, unless
// they are fewer by more than MaxShrink.
func (im *Importer) ImportEPSS(ctx context.Context, r io.Reader, st SourceState) (Summary, error) {
	b, err := im.readEPSS(r, st)
	if err != nil {
		return Summary{}, err
	}
	if err := im.checkExploitation(ctx, b); err != nil {
		return Summary{}, err
	}
	if err := im.Store.Apply(ctx, b); err != nil {
		return Summary{}, err
	}
	return Summary{EPSS: len(b.EPSS.Scores)}, nil
}

func (im *Importer) readEPSS(r io.Reader, st SourceState) (Batch, error) {
	br := bufioReader(r)
	if head, err := br.Peek(2); err == nil && head[0] == 0x1f && head[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return Batch{}, fmt.Errorf("import %s: %w", st.Origin, err)
		}
		defer gz.Close()
		r = gz
	} else {
		r = br
	}
	f, err := advisory.ParseEPSS(r)
	if err != nil {
		return Batch{}, fmt.Errorf("import %s: %w", st.Origin, err)
	}
	if len(f.Scores) == 0 {
		return Batch{}, fmt.Errorf("import %s: %w: no EPSS scores", st.Origin, ErrNoData)
	}
	st.Source, st.ImportedAt, st.Records, st.Version, st.DataTime = SourceEPSS, im.now(), len(f.Scores), f.ModelVersion, f.ScoreDate
	return Batch{EPSS: f, EPSSState: st}, nil
}

func bufioReader(r io.Reader) *bufio.Reader {
	if br, ok := r.(*bufio.Reader); ok {
		return br
	}
	return bufio.NewReaderSize(r, 64<<10)
}
