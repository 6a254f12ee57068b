package feeds_test

import (
	"archive/zip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/store/sqlite"
)

// sharedRecords returns the first n records of a shared ecosystem's
// all.zip, by member name.
func sharedRecords(t *testing.T, eco string, n int) map[string][]byte {
	t.Helper()
	zr, err := zip.OpenReader(filepath.Join(sharedtest.Dir(t, "feeds/osv/"+eco), "all.zip"))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	out := map[string][]byte{}
	for _, f := range zr.File {
		if len(out) == n {
			break
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), `"withdrawn"`) {
			continue
		}
		out[f.Name] = b
	}
	return out
}

// storeZip writes the members uncompressed (zip.Store), in name order, so
// that their data sits verbatim in the file.
func storeZip(t *testing.T, path string, members map[string][]byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	var names []string
	for n := range members {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: n, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(members[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// corrupt flips bytes inside the data of the archive's member'th member:
// the archive still opens, the member's CRC-32 fails.
func corrupt(t *testing.T, path string, member int) {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	off, err := zr.File[member].DataOffset()
	size := zr.File[member].CompressedSize64
	zr.Close()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := off + int64(size)/2; i < off+int64(size)/2+8; i++ {
		b[i] ^= 0x20 // letters change case: still JSON-ish, not the same bytes
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func sources(t *testing.T, db *sqlite.DB) map[string]feeds.SourceState {
	t.Helper()
	srcs, err := db.Sources(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]feeds.SourceState{}
	for _, s := range srcs {
		out[s.Source] = s
	}
	return out
}

func kevFile(t *testing.T) string {
	return filepath.Join(sharedtest.Dir(t, "feeds/kev"), "known_exploited_vulnerabilities.json")
}

// A zip with a member whose CRC fails is refused whole, and so is the rest
// of the import: the KEV catalog and the good Go archive before it are not
// applied either.
func TestCorruptZipIsRefusedWhole(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	dir := t.TempDir()
	recs := sharedRecords(t, "Go", 5)
	good := filepath.Join(dir, "Go", "all.zip")
	storeZip(t, good, recs)
	bad := filepath.Join(dir, "corrupt.zip")
	storeZip(t, bad, sharedRecords(t, "PyPI", 5))
	corrupt(t, bad, 2)
	_, err := (&feeds.Importer{Store: db}).ImportPaths(ctx, []string{kevFile(t), good, bad})
	if !errors.Is(err, zip.ErrChecksum) || !strings.Contains(err.Error(), "corrupt.zip") {
		t.Fatalf("import of a corrupt zip: %v, want zip.ErrChecksum naming the file", err)
	}
	if v, err := db.RecordVersions(ctx); err != nil || len(v) != 0 {
		t.Errorf("records after a refused import: %d %v", len(v), err)
	}
	if s := sources(t, db); len(s) != 0 {
		t.Errorf("sources after a refused import: %+v", s)
	}
	// The archive alone is refused too; the good one imports.
	if _, err := (&feeds.Importer{Store: db}).ImportPaths(ctx, []string{bad}); !errors.Is(err, zip.ErrChecksum) {
		t.Errorf("corrupt zip alone: %v", err)
	}
	if sum, err := (&feeds.Importer{Store: db}).ImportPaths(ctx, []string{kevFile(t), good}); err != nil || sum.Added != len(recs) || sum.KEV != 1404 {
		t.Errorf("good import: %+v %v", sum, err)
	}
}

// The collection comes from the records, not the file name.
func TestZipCollectionFromContent(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	dir := t.TempDir()
	recs := sharedRecords(t, "Go", 4)
	z := filepath.Join(dir, "corrupt.zip")
	storeZip(t, z, recs)
	sum, err := (&feeds.Importer{Store: db}).ImportPaths(ctx, []string{z})
	if err != nil || sum.Added != 4 {
		t.Fatalf("import: %+v %v", sum, err)
	}
	s := sources(t, db)
	if _, ok := s["osv/corrupt"]; ok || s["osv/Go"].Records != 4 {
		t.Errorf("sources %+v, want osv/Go with 4 records", s)
	}
	// The same snapshot under another name is the same collection.
	other := filepath.Join(dir, "x", "all.zip")
	storeZip(t, other, recs)
	if sum, err := (&feeds.Importer{Store: db}).ImportPaths(ctx, []string{other}); err != nil || sum.Unchanged != 4 || sum.Removed != 0 {
		t.Errorf("renamed re-import: %+v %v", sum, err)
	}
	// Two snapshots of one collection in one import: refused.
	if _, err := (&feeds.Importer{Store: db}).ImportPaths(ctx, []string{z, other}); err == nil || !strings.Contains(err.Error(), "both snapshots of osv/Go") {
		t.Errorf("two Go snapshots: %v", err)
	}
	// An archive mixing ecosystems is no ecosystem's snapshot.
	mixed := sharedRecords(t, "PyPI", 2)
	for n, b := range sharedRecords(t, "Go", 2) {
		mixed[n] = b
	}
	mz := filepath.Join(dir, "mixed.zip")
	storeZip(t, mz, mixed)
	if _, err := (&feeds.Importer{Store: db}).ImportPaths(ctx, []string{mz}); err == nil || !strings.Contains(err.Error(), "mixes ecosystems (records: Go 2, PyPI 2)") {
		t.Errorf("mixed archive: %v", err)
	}
	if s := sources(t, db); len(s) != 1 {
		t.Errorf("sources after the refused imports: %+v", s)
	}
}

// A feed that shrinks its source by more than half is refused, naming the
// source, both counts and the flag, unless forced.
func TestShrinkingFeedsAreRefused(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	dir := t.TempDir()
	im := &feeds.Importer{Store: db}
	z := filepath.Join(dir, "Go", "all.zip")
	recs := sharedRecords(t, "Go", 6)
	storeZip(t, z, recs)
	if _, err := im.ImportPaths(ctx, []string{kevFile(t), z, "testdata/epss_scores-sample.csv"}); err != nil {
		t.Fatal(err)
	}
	emptyKEV := write(t, filepath.Join(dir, "kev.json"), `{"catalogVersion":"2026.11.30","dateReleased":"2026-11-30T00:00:00Z","count":0,"vulnerabilities":[]}`)
	var se *feeds.ShrinkError
	_, err := im.ImportPaths(ctx, []string{emptyKEV})
	if !errors.As(err, &se) || se.Source != "kev" || se.Stored != 1404 || se.New != 0 {
		t.Fatalf("empty KEV catalog: %v", err)
	}
	for _, want := range []string{"kev: refusing " + emptyKEV, "holds 0 records where the index holds 1404", "--force"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	if s := sources(t, db); s["kev"].Records != 1404 {
		t.Errorf("KEV after the refused import: %+v", s["kev"])
	}
	// An OSV snapshot with 2 of the 6 records would remove 4.
	few := map[string][]byte{}
	for n, b := range recs {
		if len(few) < 2 {
			few[n] = b
		}
	}
	storeZip(t, z, few)
	if _, err := im.ImportPaths(ctx, []string{z}); !errors.As(err, &se) || se.Source != "osv/Go" || se.Stored != 6 || se.New != 2 {
		t.Errorf("shrunk OSV snapshot: %v", err)
	}
	// EPSS: 1 score where 5 are stored.
	epss := write(t, filepath.Join(dir, "epss.csv"), "cve,epss,percentile\nCVE-2024-53859,0.00234,0.46501\n")
	if _, err := im.ImportPaths(ctx, []string{epss}); !errors.As(err, &se) || se.Source != "epss" || se.Stored != 5 || se.New != 1 {
		t.Errorf("shrunk EPSS: %v", err)
	}
	// ImportKEV (what sync and the server's refresh use) is guarded too.
	f, _ := os.Open(emptyKEV)
	defer f.Close()
	if _, err := im.ImportKEV(ctx, f, feeds.SourceState{Origin: "https://mirror/kev.json"}); !errors.As(err, &se) {
		t.Errorf("ImportKEV: %v", err)
	}
	if s := sources(t, db); s["kev"].Records != 1404 || s["osv/Go"].Records != 6 || s["epss"].Records != 5 {
		t.Errorf("sources after the refused imports: %+v", s)
	}
	// A threshold of its own: 2 of 6 is fine when 70% may go.
	loose := &feeds.Importer{Store: db, MaxShrink: 0.7}
	if sum, err := loose.ImportPaths(ctx, []string{z}); err != nil || sum.Removed != 4 {
		t.Errorf("MaxShrink 0.7: %+v %v", sum, err)
	}
	// Forced: applied.
	forced := &feeds.Importer{Store: db, Force: true}
	if sum, err := forced.ImportPaths(ctx, []string{emptyKEV, epss}); err != nil || sum.EPSS != 1 {
		t.Fatalf("forced: %+v %v", sum, err)
	}
	if s := sources(t, db); s["kev"].Records != 0 || s["epss"].Records != 1 {
		t.Errorf("sources after the forced import: %+v", s)
	}
}
