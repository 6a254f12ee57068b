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
	"github.com/patchbay/patchbay/match"
)

// Importer loads feed files into a Store.
type Importer struct {
	Store Store
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Problem is an input, or a record inside one, that was skipped.
type Problem struct {
	File string `json:"file"` // "all.zip:GO-2024-1234.json" for archive members
	Err  string `json:"error"`
}

func (p Problem) String() string { return p.File + ": " + p.Err }

// Summary counts what an import did.
type Summary struct {
	Added     int       `json:"added"`
	Updated   int       `json:"updated"`
	Unchanged int       `json:"unchanged"`
	Removed   int       `json:"removed"`   // withdrawn or gone from a snapshot
	Malformed int       `json:"malformed"` // records skipped as unreadable
	KEV       int       `json:"kev"`       // KEV entries imported
	EPSS      int       `json:"epss"`      // EPSS scores imported
	Problems  []Problem `json:"problems,omitempty"`
	// NotImported are feed files recognised but of a kind this version
	// does not import (NVD CVE records), left as they are.
	NotImported []string `json:"not_imported,omitempty"`
	// Changed are the package keys named by added, updated or removed
	// records (before and after the change): the inventories to rematch.
	Changed []match.Key `json:"-"`
}

func (s *Summary) add(o Summary) {
	s.Added += o.Added
	s.Updated += o.Updated
	s.Unchanged += o.Unchanged
	s.Removed += o.Removed
	s.Malformed += o.Malformed
	s.KEV += o.KEV
	s.EPSS += o.EPSS
	s.Problems = append(s.Problems, o.Problems...)
	s.NotImported = append(s.NotImported, o.NotImported...)
	s.Changed = append(s.Changed, o.Changed...)
}

// String is the one-line summary printed after an import.
func (s Summary) String() string {
	var parts []string
	osv := s.Added+s.Updated+s.Unchanged+s.Removed+s.Malformed > 0
	if osv || s.KEV+s.EPSS == 0 {
		parts = append(parts, fmt.Sprintf("%d added, %d updated, %d unchanged, %d removed", s.Added, s.Updated, s.Unchanged, s.Removed))
	}
	if s.KEV > 0 {
		parts = append(parts, fmt.Sprintf("%d KEV entries", s.KEV))
	}
	if s.EPSS > 0 {
		parts = append(parts, fmt.Sprintf("%d EPSS scores", s.EPSS))
	}
	if osv || s.KEV+s.EPSS == 0 {
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
	// KindNVD is a file of NVD CVE records (API 2.0 shape): recognised, so
	// that a feeds directory holding one imports the rest, but not
	// imported.
	KindNVD
)

// Detect tells a feed file's kind from its name and first bytes.
func Detect(name string, head []byte) Kind {
	lower := strings.ToLower(name)
	switch {
	case strings.HasSuffix(lower, ".zip"):
		return KindOSVZip
	case strings.HasSuffix(lower, ".csv"), strings.HasSuffix(lower, ".csv.gz"):
		return KindEPSS
	case strings.HasSuffix(lower, ".json"):
		if bytes.Contains(head, []byte(`"catalogVersion"`)) || bytes.Contains(head, []byte(`"cveID"`)) {
			return KindKEV
		}
		if bytes.Contains(head, []byte(`"NVD_CVE"`)) {
			return KindNVD
		}
		return KindOSVJSON
	}
	return KindUnknown
}

// pending accumulates the OSV changes of one import.
type pending struct {
	versions map[string]RecordVersion
	records  map[string]Record
	deletes  map[string]bool
	sum      Summary
	sources  []SourceState
}

// ImportPaths imports files and directories: OSV all.zip archives, OSV JSON
// files, the KEV catalog and EPSS CSV (optionally gzipped). A directory is
// walked for all of these. All OSV changes are applied in one transaction;
// KEV and EPSS each in their own. A file that cannot be read at all is an
// error; a malformed record inside a readable input is a Problem.
func (im *Importer) ImportPaths(ctx context.Context, paths []string) (Summary, error) {
	p, err := im.begin(ctx)
	if err != nil {
		return Summary{}, err
	}
	var files []string
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
			err = p.addZip(&zr.Reader, f, zipCollection(f), im.now(), SourceState{})
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
			s, err := im.importKEVFile(ctx, f, SourceState{Origin: f})
			if err != nil {
				return Summary{}, err
			}
			p.sum.add(s)
		case KindEPSS:
			s, err := im.importEPSSFile(ctx, f, SourceState{Origin: f})
			if err != nil {
				return Summary{}, err
			}
			p.sum.add(s)
		case KindNVD:
			p.sum.NotImported = append(p.sum.NotImported, f)
		default:
			return Summary{}, fmt.Errorf("import %s: not an OSV zip or JSON record, KEV catalog or EPSS CSV", f)
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
	head := make([]byte, 4096)
	n, _ := io.ReadFull(f, head)
	return Detect(path, head[:n]), nil
}

// zipCollection names the collection of an archive: osv/<dir> for the
// bucket layout ".../<Ecosystem>/all.zip", osv/<name> otherwise.
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
	return &pending{versions: v, records: map[string]Record{}, deletes: map[string]bool{}}, nil
}

func (im *Importer) commit(ctx context.Context, p *pending) error {
	if len(p.records) == 0 && len(p.deletes) == 0 && len(p.sources) == 0 {
		return nil
	}
	b := OSVBatch{Sources: p.sources}
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
	for k := range seen {
		p.sum.Changed = append(p.sum.Changed, k)
	}
	sort.Slice(p.sum.Changed, func(i, j int) bool {
		a, b := p.sum.Changed[i], p.sum.Changed[j]
		return a.Ecosystem < b.Ecosystem || (a.Ecosystem == b.Ecosystem && a.Name < b.Name)
	})
	return im.Store.ApplyOSV(ctx, b)
}

// addZip reads every JSON member of an OSV archive. The archive is a
// snapshot of its collection: stored records of the collection that it no
// longer holds are removed.
func (p *pending) addZip(zr *zip.Reader, origin, collection string, now time.Time, validators SourceState) error {
	inZip := map[string]bool{}
	for _, zf := range zr.File {
		if zf.FileInfo().IsDir() || !strings.HasSuffix(zf.Name, ".json") {
			continue
		}
		name := filepath.Base(origin) + ":" + zf.Name
		rc, err := zf.Open()
		if err != nil {
			p.problem(name, err)
			continue
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			p.problem(name, err)
			continue
		}
		if id := p.addRecord(name, data, collection); id != "" {
			inZip[id] = true
		}
	}
	// Snapshot semantics: what the collection held and the archive lacks goes.
	for id, rv := range p.versions {
		if !inZip[id] && rv.Collection == collection && !p.deletes[id] {
			p.deletes[id] = true
			p.sum.Removed++
		}
	}
	validators.Source, validators.Origin, validators.ImportedAt = collection, origin, now
	p.sources = append(p.sources, validators)
	return nil
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
	h := sha256.Sum256(data)
	if !a.Withdrawn.IsZero() {
		if _, stored := p.versions[a.ID]; stored && !p.deletes[a.ID] {
			p.deletes[a.ID] = true
			p.sum.Removed++
		}
		delete(p.records, a.ID)
		return a.ID
	}
	if prev, ok := p.records[a.ID]; ok && prev.Advisory.Modified.After(a.Modified) {
		return a.ID // a newer copy is already staged
	}
	stored, ok := p.versions[a.ID]
	switch {
	case ok && stored.Modified.After(a.Modified):
		p.sum.Unchanged++ // never replace a newer record with an older one
		return a.ID
	case ok && stored.Modified.Equal(a.Modified) && stored.Hash == h && stored.Collection == collection:
		p.sum.Unchanged++
		return a.ID
	case ok:
		p.sum.Updated++
	default:
		if _, staged := p.records[a.ID]; !staged {
			p.sum.Added++
		}
	}
	p.records[a.ID] = Record{Advisory: a, Hash: h, Collection: collection}
	return a.ID
}

// ErrNoData is returned when a feed file holds no usable data.
var ErrNoData = errors.New("no data")

func (im *Importer) importKEVFile(ctx context.Context, path string, st SourceState) (Summary, error) {
	f, err := os.Open(path)
	if err != nil {
		return Summary{}, fmt.Errorf("import KEV: %w", err)
	}
	defer f.Close()
	return im.ImportKEV(ctx, f, st)
}

// ImportKEV replaces the KEV catalog with the one read from r.
func (im *Importer) ImportKEV(ctx context.Context, r io.Reader, st SourceState) (Summary, error) {
	cat, err := advisory.ParseKEV(r)
	if err != nil {
		return Summary{}, fmt.Errorf("import %s: %w", st.Origin, err)
	}
	st.Source, st.ImportedAt, st.Records, st.Version = SourceKEV, im.now(), len(cat.Entries), cat.Version
	st.DataTime = cat.Released
	if err := im.Store.ReplaceKEV(ctx, cat, st); err != nil {
		return Summary{}, err
	}
	return Summary{KEV: len(cat.Entries)}, nil
}

func (im *Importer) importEPSSFile(ctx context.Context, path string, st SourceState) (Summary, error) {
	f, err := os.Open(path)
	if err != nil {
		return Summary{}, fmt.Errorf("import EPSS: %w", err)
	}
	defer f.Close()
	return im.ImportEPSS(ctx, f, st)
}

// ImportEPSS replaces all EPSS scores with those read from r (CSV, or
// gzipped CSV: detected from the content).
func (im *Importer) ImportEPSS(ctx context.Context, r io.Reader, st SourceState) (Summary, error) {
	br := bufioReader(r)
	if head, err := br.Peek(2); err == nil && head[0] == 0x1f && head[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return Summary{}, fmt.Errorf("import %s: %w", st.Origin, err)
		}
		defer gz.Close()
		r = gz
	} else {
		r = br
	}
	f, err := advisory.ParseEPSS(r)
	if err != nil {
		return Summary{}, fmt.Errorf("import %s: %w", st.Origin, err)
	}
	if len(f.Scores) == 0 {
		return Summary{}, fmt.Errorf("import %s: %w: no EPSS scores", st.Origin, ErrNoData)
	}
	st.Source, st.ImportedAt, st.Records, st.Version, st.DataTime = SourceEPSS, im.now(), len(f.Scores), f.ModelVersion, f.ScoreDate
	if err := im.Store.ReplaceEPSS(ctx, f, st); err != nil {
		return Summary{}, err
	}
	return Summary{EPSS: len(f.Scores)}, nil
}

func bufioReader(r io.Reader) *bufio.Reader {
	if br, ok := r.(*bufio.Reader); ok {
		return br
	}
	return bufio.NewReaderSize(r, 64<<10)
}
