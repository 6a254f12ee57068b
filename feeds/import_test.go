package feeds_test

import (
	"archive/zip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/match"
	"github.com/patchbay/patchbay/store/sqlite"
)

func newDB(t *testing.T) *sqlite.DB { return newDBB(t) }

// newDBB is newDB for tests and benchmarks.
func newDBB(t testing.TB) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "patchbay.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func write(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func record(id, modified, fixed string, extra string) string {
	return `{"id":"` + id + `","modified":"` + modified + `","aliases":["CVE-2024-0001"],` + extra +
		`"affected":[{"package":{"ecosystem":"PyPI","name":"Flask"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"` + fixed + `"}]}]}]}`
}

func fixedOf(t *testing.T, db *sqlite.DB, id string) string {
	t.Helper()
	advs, err := db.Advisories(context.Background(), []match.Key{{Ecosystem: "PyPI", Name: "flask"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range advs {
		if a.ID == id {
			return a.Affected[0].Ranges[0].Events[1].Fixed
		}
	}
	return ""
}

func TestImportIsIdempotentAndIncremental(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	im := &feeds.Importer{Store: db}
	dir := t.TempDir()
	f := write(t, filepath.Join(dir, "PYSEC-1.json"), record("PYSEC-1", "2024-01-01T00:00:00Z", "2.0", ""))

	sum, err := im.ImportPaths(ctx, []string{f})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Added != 1 || sum.Updated != 0 || sum.Unchanged != 0 {
		t.Fatalf("first import: %+v", sum)
	}
	sum, err = im.ImportPaths(ctx, []string{f})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Added != 0 || sum.Unchanged != 1 {
		t.Fatalf("second import: %+v", sum)
	}
	// An older copy never replaces the stored one.
	write(t, f, record("PYSEC-1", "2023-06-01T00:00:00Z", "1.0", ""))
	if sum, err = im.ImportPaths(ctx, []string{f}); err != nil || sum.Updated != 0 {
		t.Fatalf("older copy: %+v %v", sum, err)
	}
	if got := fixedOf(t, db, "PYSEC-1"); got != "2.0" {
		t.Fatalf("fixed after older copy = %q, want 2.0", got)
	}
	// A newer one does.
	write(t, f, record("PYSEC-1", "2024-02-01T00:00:00Z", "2.1", ""))
	if sum, err = im.ImportPaths(ctx, []string{f}); err != nil || sum.Updated != 1 {
		t.Fatalf("newer copy: %+v %v", sum, err)
	}
	if got := fixedOf(t, db, "PYSEC-1"); got != "2.1" {
		t.Fatalf("fixed after newer copy = %q, want 2.1", got)
	}
	// Withdrawn: removed.
	write(t, f, record("PYSEC-1", "2024-03-01T00:00:00Z", "2.1", `"withdrawn":"2024-03-01T00:00:00Z",`))
	if sum, err = im.ImportPaths(ctx, []string{f}); err != nil || sum.Removed != 1 {
		t.Fatalf("withdrawn: %+v %v", sum, err)
	}
	if got := fixedOf(t, db, "PYSEC-1"); got != "" {
		t.Fatalf("withdrawn record still matches (fixed %q)", got)
	}
}

func TestImportReportsMalformedRecordsAndGoesOn(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "good.json"), record("PYSEC-2", "2024-01-01T00:00:00Z", "2.0", ""))
	write(t, filepath.Join(dir, "truncated.json"), `{"id":"PYSEC-3","modified":`)
	write(t, filepath.Join(dir, "noname.json"), `{"id":"PYSEC-4","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"PyPI"}}]}`)
	sum, err := (&feeds.Importer{Store: db}).ImportPaths(ctx, []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Added != 1 || sum.Malformed != 2 || len(sum.Problems) != 2 {
		t.Fatalf("summary %+v", sum)
	}
	text := sum.Problems[0].String() + "\n" + sum.Problems[1].String()
	for _, want := range []string{"truncated.json: parse OSV JSON", "noname.json: invalid OSV record: affected[0].package: missing name or ecosystem"} {
		if !strings.Contains(text, want) {
			t.Errorf("problems %q lack %q", text, want)
		}
	}
	if !strings.Contains(sum.String(), "2 skipped as malformed") {
		t.Errorf("summary line %q does not count the skipped records", sum.String())
	}
}

func writeZip(t *testing.T, path string, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for name, content := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(content))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func TestZipIsASnapshotOfItsEcosystem(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	im := &feeds.Importer{Store: db}
	z := filepath.Join(t.TempDir(), "PyPI", "all.zip")
	writeZip(t, z, map[string]string{
		"PYSEC-1.json": record("PYSEC-1", "2024-01-01T00:00:00Z", "2.0", ""),
		"PYSEC-2.json": record("PYSEC-2", "2024-01-01T00:00:00Z", "3.0", ""),
	})
	if _, err := im.ImportPaths(ctx, []string{z}); err != nil {
		t.Fatal(err)
	}
	// A local record is not part of the snapshot and survives it.
	local := write(t, filepath.Join(t.TempDir(), "LOCAL-1.json"), record("LOCAL-1", "2024-01-01T00:00:00Z", "9.0", ""))
	if _, err := im.ImportPaths(ctx, []string{local}); err != nil {
		t.Fatal(err)
	}
	writeZip(t, z, map[string]string{"PYSEC-1.json": record("PYSEC-1", "2024-01-01T00:00:00Z", "2.0", "")})
	sum, err := im.ImportPaths(ctx, []string{z})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Removed != 1 || sum.Unchanged != 1 {
		t.Fatalf("summary %+v, want PYSEC-2 removed and PYSEC-1 unchanged", sum)
	}
	if fixedOf(t, db, "PYSEC-2") != "" || fixedOf(t, db, "PYSEC-1") != "2.0" || fixedOf(t, db, "LOCAL-1") != "9.0" {
		t.Fatal("snapshot did not leave exactly PYSEC-1 and LOCAL-1")
	}
	srcs, err := db.Sources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range srcs {
		if s.Source == "osv/PyPI" {
			found = true
			if s.Records != 1 || s.DataTime.Format("2006-01-02") != "2024-01-01" {
				t.Errorf("osv/PyPI state %+v", s)
			}
		}
	}
	if !found {
		t.Errorf("no osv/PyPI source in %+v", srcs)
	}
}

func TestImportSharedFeeds(t *testing.T) {
	feedsDir := sharedtest.Dir(t, "feeds")
	ctx := context.Background()
	db := newDB(t)
	im := &feeds.Importer{Store: db}
	sum, err := im.ImportPaths(ctx, []string{feedsDir})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Malformed != 0 {
		t.Errorf("malformed: %v", sum.Problems)
	}
	// The NVD sample beside the OSV data (plain and gzipped: the same
	// records) is imported once.
	if len(sum.NotImported) != 0 || sum.CVERecords != 64 || sum.CVEUnchanged != 0 {
		t.Errorf("NVD: %d records, %d unchanged, not imported %v; want the sample's 64", sum.CVERecords, sum.CVEUnchanged, sum.NotImported)
	}
	if sum.KEV != 1404 {
		t.Errorf("KEV entries = %d, want 1404", sum.KEV)
	}
	counts, err := db.EcosystemCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The README's record counts less the withdrawn records in each zip.
	withdrawn := countWithdrawn(t, feedsDir)
	for eco, want := range map[string]int{"Go": 4291, "PyPI": 2661, "Debian:12": 5368} {
		base := inventory.BaseEcosystem(eco)
		if got := counts[eco]; got != want-withdrawn[base] {
			t.Errorf("%s: %d advisories, want %d (%d records, %d withdrawn)", eco, got, want-withdrawn[base], want, withdrawn[base])
		}
	}
	again, err := im.ImportPaths(ctx, []string{feedsDir})
	if err != nil {
		t.Fatal(err)
	}
	if again.Added+again.Updated+again.Removed+again.CVERecords != 0 || again.CVEUnchanged != 64 {
		t.Errorf("re-import changed data: %s", again)
	}
}

func countWithdrawn(t *testing.T, feedsDir string) map[string]int {
	out := map[string]int{}
	for _, eco := range []string{"Go", "PyPI", "Debian"} {
		zr, err := zip.OpenReader(filepath.Join(feedsDir, "osv", eco, "all.zip"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range zr.File {
			rc, _ := f.Open()
			buf := make([]byte, f.UncompressedSize64)
			n, _ := io.ReadFull(rc, buf)
			rc.Close()
			if strings.Contains(string(buf[:n]), `"withdrawn"`) {
				out[eco]++
			}
		}
		zr.Close()
	}
	return out
}

// TestNVDFileBesideOSV: a file of NVD CVE records in a feeds directory is
// imported as NVD records, the OSV record beside it as OSV; a record
// without lastModified refuses the file, naming the record.
func TestNVDFileBesideOSV(t *testing.T) {
	dir := t.TempDir()
	nvd := `{"resultsPerPage": 1, "startIndex": 0, "totalResults": 1, "format": "NVD_CVE", "version": "2.0",
  "vulnerabilities": [{"cve": {"id": "CVE-2024-0001", "published": "2024-01-01T00:00:00.000", "lastModified": "2024-02-01T00:00:00.000"}}]}`
	osv := `{"id": "LOCAL-1", "modified": "2024-01-01T00:00:00Z", "affected": [{"package": {"ecosystem": "PyPI", "name": "x"}, "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2"}]}]}]}`
	if err := os.WriteFile(filepath.Join(dir, "nvdcve.json"), []byte(nvd), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "LOCAL-1.json"), []byte(osv), 0o644); err != nil {
		t.Fatal(err)
	}
	db := newDB(t)
	sum, err := (&feeds.Importer{Store: db}).ImportPaths(context.Background(), []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Added != 1 || sum.Malformed != 0 || len(sum.NotImported) != 0 || sum.CVERecords != 1 {
		t.Errorf("summary %+v", sum)
	}
	bad := strings.Replace(nvd, `, "lastModified": "2024-02-01T00:00:00.000"`, "", 1)
	if err := os.WriteFile(filepath.Join(dir, "nvdcve.json"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = (&feeds.Importer{Store: db}).ImportPaths(context.Background(), []string{dir})
	if err == nil || !strings.Contains(err.Error(), "nvdcve.json") || !strings.Contains(err.Error(), "vulnerabilities[0] (CVE-2024-0001): no lastModified") {
		t.Errorf("record without lastModified: %v", err)
	}
}
