package feeds

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/patchbay/patchbay/advisory"
	"github.com/patchbay/patchbay/feeds/debsec"
	"github.com/patchbay/patchbay/feeds/nvd"
	"github.com/patchbay/patchbay/feeds/rhcsaf"
)

// errNotNVDGzip: a .json.gz that is not NVD records (skipped when found
// in a directory).
var errNotNVDGzip = errors.New("a gzipped JSON file that is not NVD CVE records")

// isTrackerHead tells the Debian security tracker's export from its first
// bytes: an object of source packages whose CVEs have "releases" with an
// "urgency".
func isTrackerHead(head []byte) bool {
	t := bytes.TrimSpace(head)
	return len(t) > 0 && t[0] == '{' && bytes.Contains(head, []byte(`"releases"`)) && bytes.Contains(head, []byte(`"urgency"`)) &&
		!bytes.Contains(head, []byte(`"schema_version"`))
}

// stageNVDFile reads a file of NVD CVE records (gzipped or not) and
// stages them.
func (im *Importer) stageNVDFile(ctx context.Context, p *pending, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(strings.ToLower(path), ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("import %s: %w", path, err)
		}
		defer gz.Close()
		r = gz
	}
	page, err := nvd.Parse(r)
	if errors.Is(err, nvd.ErrNotNVD) && strings.HasSuffix(strings.ToLower(path), ".gz") {
		return fmt.Errorf("import %s: %w", path, errNotNVDGzip)
	}
	if err != nil {
		return fmt.Errorf("import %s: %w", path, err)
	}
	return im.stageNVD(ctx, p, path, page.Records)
}

// stageNVD stages NVD records: a record replaces the stored copy only when
// it was modified later (NVD records are never removed: the API has no
// deletions, a rejected CVE is a record with status "Rejected").
func (im *Importer) stageNVD(ctx context.Context, p *pending, origin string, recs []advisory.CVERecord) error {
	if p.cveTimes == nil {
		t, err := im.Store.CVERecordTimes(ctx)
		if err != nil {
			return err
		}
		p.cveTimes, p.cves, p.cveUnchanged = t, map[string]advisory.CVERecord{}, map[string]bool{}
	}
	p.cveOrigins = append(p.cveOrigins, origin)
	for _, r := range recs {
		if prev, ok := p.cves[r.ID]; ok && !r.LastModified.After(prev.LastModified) {
			continue // the same or an older copy of one staged
		}
		if t, ok := p.cveTimes[r.ID]; ok && !r.LastModified.After(t) {
			if !p.cveUnchanged[r.ID] {
				p.cveUnchanged[r.ID] = true
				p.sum.CVEUnchanged++
			}
			continue
		}
		if _, staged := p.cves[r.ID]; !staged {
			p.sum.CVERecords++
		}
		p.cves[r.ID] = r
	}
	return nil
}

// stageTrackerFile reads the Debian security tracker's export and stages
// it as the Debian vendor ratings (a snapshot: it replaces them all).
func (im *Importer) stageTrackerFile(p *pending, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	rs, err := debsec.Parse(bufioReader(f))
	if err != nil {
		return fmt.Errorf("import %s: %w", path, err)
	}
	if len(rs) == 0 {
		return fmt.Errorf("import %s: %w: no Debian urgencies", path, ErrNoData)
	}
	if p.vendor != nil {
		return fmt.Errorf("import %s: a second Debian security tracker export in one import (%s): import one", path, p.vendorState.Origin)
	}
	if p.redHatFiles != nil {
		return fmt.Errorf("import %s: the Debian security tracker export and Red Hat's CSAF documents (%s) in one import: import them separately", path, p.redHatFiles[0])
	}
	p.vendor = rs
	p.vendorState = SourceState{Source: SourceVendorPrefix + "Debian", Origin: path, ImportedAt: im.now(), Records: len(rs)}
	return nil
}

// stageCSAFFile reads one of Red Hat's CSAF VEX documents and stages its
// ratings: they replace the stored Red Hat ratings of the CVEs it
// describes (Red Hat publishes a document per CVE, so an import of some
// documents keeps the ratings of the others).
func (im *Importer) stageCSAFFile(p *pending, path string) error {
	if p.vendor != nil {
		return fmt.Errorf("import %s: Red Hat's CSAF documents and the Debian security tracker export (%s) in one import: import them separately", path, p.vendorState.Origin)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	doc, err := rhcsaf.Parse(bufioReader(f))
	if err != nil {
		return fmt.Errorf("import %s: %w", path, err)
	}
	if p.redHatCVEs == nil {
		p.redHatCVEs = map[string]bool{}
	}
	for _, c := range doc.CVEs {
		if p.redHatCVEs[c] {
			return fmt.Errorf("import %s: a second CSAF document of %s in one import: import one", path, c)
		}
		p.redHatCVEs[c] = true
	}
	p.redHat = append(p.redHat, doc.Ratings...)
	p.redHatFiles = append(p.redHatFiles, path)
	if doc.Released.After(p.redHatNewest) {
		p.redHatNewest = doc.Released
	}
	return nil
}

// mergeRedHat stages the Red Hat ratings of the documents of p over the
// stored ones, as the new set of Red Hat's ratings.
func (im *Importer) mergeRedHat(ctx context.Context, p *pending) error {
	old, err := im.Store.VendorRatings(ctx, rhcsaf.Vendor)
	if err != nil {
		return err
	}
	all := make([]advisory.VendorRating, 0, len(old)+len(p.redHat))
	for _, r := range old {
		if !p.redHatCVEs[r.CVE] {
			all = append(all, r)
		}
	}
	all = append(all, p.redHat...)
	srcs, err := im.Store.Sources(ctx)
	if err != nil {
		return err
	}
	for _, st := range srcs {
		if st.Source == SourceVendorPrefix+rhcsaf.Vendor && st.DataTime.After(p.redHatNewest) {
			p.redHatNewest = st.DataTime // the newest document stays the newest
		}
	}
	origin := p.redHatFiles[0]
	if n := len(p.redHatFiles); n > 1 {
		origin = fmt.Sprintf("%s and %d more CSAF documents", origin, n-1)
	}
	p.vendor = all
	p.vendorState = SourceState{Source: SourceVendorPrefix + rhcsaf.Vendor, Origin: origin, ImportedAt: im.now(), Records: len(all), DataTime: p.redHatNewest}
	return nil
}

// stageEnrichment moves the staged NVD records and vendor ratings into b
// and returns the CVEs whose enrichment changed.
func (im *Importer) stageEnrichment(ctx context.Context, p *pending, b *Batch) ([]string, error) {
	var changed []string
	if p.cveOrigins != nil {
		b.CVERecords = make([]advisory.CVERecord, 0, len(p.cves))
		for id, r := range p.cves {
			b.CVERecords = append(b.CVERecords, r)
			changed = append(changed, id)
		}
		sort.Slice(b.CVERecords, func(i, j int) bool { return b.CVERecords[i].ID < b.CVERecords[j].ID })
		b.CVEState = SourceState{Source: SourceNVD, Origin: strings.Join(p.cveOrigins, ", "), ImportedAt: im.now(), Version: "2.0"}
	}
	if p.redHatFiles != nil {
		if err := im.mergeRedHat(ctx, p); err != nil {
			return nil, err
		}
	}
	if p.vendor != nil {
		vendor := strings.TrimPrefix(p.vendorState.Source, SourceVendorPrefix)
		old, err := im.Store.VendorRatings(ctx, vendor)
		if err != nil {
			return nil, err
		}
		stored, err := im.storedRecords(ctx)
		if err != nil {
			return nil, err
		}
		if err := im.checkShrink(p.vendorState.Source, p.vendorState.Origin, stored[p.vendorState.Source], len(p.vendor)); err != nil {
			return nil, err
		}
		type key struct{ cve, eco, pkg string }
		was := map[key]string{}
		for _, r := range old {
			was[key{r.CVE, r.Ecosystem, r.Package}] = r.Rating
		}
		moved := map[string]bool{}
		for _, r := range p.vendor {
			k := key{r.CVE, r.Ecosystem, r.Package}
			if w, ok := was[k]; !ok || w != r.Rating {
				moved[r.CVE] = true
			}
			delete(was, k)
		}
		for k := range was {
			moved[k.cve] = true // no longer rated
		}
		for c := range moved {
			changed = append(changed, c)
		}
		b.Vendor, b.VendorState = p.vendor, p.vendorState
		if p.redHatFiles != nil {
			p.sum.VendorRatings += len(p.redHat) // the documents', not the kept ones
		} else {
			p.sum.VendorRatings += len(p.vendor)
		}
	}
	sort.Strings(changed)
	return changed, nil
}

// NVDSyncOverlap is how far before the newest stored record an incremental
// NVD sync starts: records NVD publishes late with an earlier
// last-modified time are not missed (those already stored are skipped).
const NVDSyncOverlap = time.Hour

// syncNVD fetches what changed at NVD since the newest stored record (all
// of it on a first sync) and applies it in one transaction.
func (im *Importer) syncNVD(ctx context.Context, c *nvd.Client, prev SourceState) (Summary, bool, error) {
	since := time.Time{}
	if !prev.DataTime.IsZero() {
		since = prev.DataTime.Add(-NVDSyncOverlap)
	}
	recs, err := c.Fetch(ctx, since, im.now())
	if err != nil {
		return Summary{}, false, fmt.Errorf("%s: %w", SourceNVD, err)
	}
	p, err := im.begin(ctx)
	if err != nil {
		return Summary{}, false, err
	}
	origin := c.URL
	if origin == "" {
		origin = nvd.Upstream
	}
	if err := im.stageNVD(ctx, p, origin, recs); err != nil {
		return Summary{}, false, err
	}
	if p.sum.CVERecords == 0 {
		return p.sum, false, nil
	}
	err = im.commit(ctx, p)
	return p.sum, err == nil, err
}
