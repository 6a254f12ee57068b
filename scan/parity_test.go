package scan_test

import (
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/inventory/collect"
	"github.com/patchbay/patchbay/match"
	"github.com/patchbay/patchbay/scan"
)

// TestCorpusParityWithOSVScanner scans the shared lockfile corpus and
// compares the unique (package, version, advisory) rows with what
// osv-scanner 2.5.0 reported on the same files and feeds. Every reference
// row must be found. patchbay finds more only where the reference is known
// to skip something (shared/corpus/README.md): the Go standard library
// named by go.mod's go directive.
func TestCorpusParityWithOSVScanner(t *testing.T) {
	corpus := sharedtest.Dir(t, "corpus")
	feedsDir := sharedtest.Dir(t, "feeds")
	db := openStore(t, filepath.Join(feedsDir, "osv/Go/all.zip"), filepath.Join(feedsDir, "osv/PyPI/all.zip"))
	inv, err := collect.Collect(context.Background(), collect.Options{Paths: []string{filepath.Join(corpus, "lockfiles")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Skipped) > 0 {
		t.Errorf("skipped: %v", inv.Skipped)
	}
	if len(inv.Files) != 52 {
		t.Errorf("read %d files, the corpus has 52 lockfiles", len(inv.Files))
	}
	res, err := scan.Run(context.Background(), db, inv, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key := func(eco, name, version, id string) string {
		return eco + "|" + match.NormalizeName(eco, name) + "|" + version + "|" + id
	}
	ours := map[string]bool{}
	for _, f := range res.Findings {
		for _, id := range f.Advisories {
			ours[key(f.Ecosystem, f.Package, f.Version, id)] = true
		}
	}
	ref := readTSV(t, filepath.Join(corpus, "osv-scanner/findings-unique.tsv"))
	refSet := map[string]bool{}
	var missing []string
	for _, r := range ref {
		k := key(r["ecosystem"], r["package"], r["version"], r["vuln_id"])
		refSet[k] = true
		if !ours[k] {
			missing = append(missing, k)
		}
	}
	var extra []string
	stdlib := 0
	for k := range ours {
		if refSet[k] {
			continue
		}
		if strings.HasPrefix(k, "Go|stdlib|") {
			stdlib++
			continue
		}
		extra = append(extra, k)
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("%d reference rows not found, e.g. %v", len(missing), head(missing))
	}
	if len(extra) > 0 {
		t.Errorf("%d rows the reference lacks, unexplained, e.g. %v", len(extra), head(extra))
	}
	if len(refSet) != 592 {
		t.Errorf("reference has %d unique rows, README says 592", len(refSet))
	}
	t.Logf("%d packages in %d files; %d reference rows all found; %d extra rows, all Go stdlib from go directives", len(inv.Packages), len(inv.Files), len(refSet), stdlib)
}

func readTSV(t *testing.T, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.Comma = '\t'
	r.LazyQuotes = true
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, row := range rows[1:] {
		m := map[string]string{}
		for i, h := range rows[0] {
			m[h] = row[i]
		}
		out = append(out, m)
	}
	return out
}
