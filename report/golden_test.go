package report_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/internal/table"
	"github.com/patchbay/patchbay/inventory/collect"
	"github.com/patchbay/patchbay/report"
	"github.com/patchbay/patchbay/scan"
	"github.com/patchbay/patchbay/store/sqlite"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// goldenLockfiles are the real lockfiles of the shared corpus the golden
// outputs are rendered from, relative to corpus/lockfiles: a Go module (its
// go directive brings the standard library's findings, some with EPSS
// scores), a pip requirements file (declaring lines, for SARIF regions)
// and a Pipfile.lock with a vulnerability no version fixes.
var goldenLockfiles = []string{
	"etcd/client/pkg/go.mod",
	"flask/requirements/tests-pallets-min.txt",
	"pipenv/Pipfile.lock",
}

// goldenNow is the fixed clock of the golden scan: first-seen, due dates
// and the reports' generation time derive from it.
var goldenNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// goldenScan runs the real scan: the lockfiles collected as the CLI does,
// matched against the shared Go and PyPI OSV feeds, the KEV catalog and
// the EPSS sample, imported into a fresh SQLite store.
func goldenScan(t *testing.T) scan.Result {
	t.Helper()
	corpus := sharedtest.Dir(t, "corpus/lockfiles")
	feedsDir := sharedtest.Dir(t, "feeds")
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "patchbay.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	im := &feeds.Importer{Store: db, Now: func() time.Time { return goldenNow }}
	if _, err := im.ImportPaths(ctx, []string{
		filepath.Join(feedsDir, "osv/Go/all.zip"),
		filepath.Join(feedsDir, "osv/PyPI/all.zip"),
		filepath.Join(feedsDir, "kev/known_exploited_vulnerabilities.json"),
		filepath.Join("..", "feeds", "testdata", "epss_scores-sample.csv"),
	}); err != nil {
		t.Fatal(err)
	}
	// Relative paths, as a user in the corpus would type them, keep the
	// locations in the reports independent of where shared/ is.
	t.Chdir(corpus)
	inv, err := collect.Collect(ctx, collect.Options{Paths: goldenLockfiles})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Skipped) > 0 || len(inv.Files) != len(goldenLockfiles) {
		t.Fatalf("collected files %v, skipped %v", inv.Files, inv.Skipped)
	}
	res, err := scan.Run(ctx, db, inv, goldenNow)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) == 0 {
		t.Fatal("the golden scan found nothing: the outputs would not show findings")
	}
	return res
}

// TestGolden pins each output format on a real scan, as govulncheck pins
// its CLI output: go test ./report -update rewrites testdata/*.golden; the
// diff is then reviewed like code.
func TestGolden(t *testing.T) {
	dir, err := os.Getwd() // goldenScan changes directory
	if err != nil {
		t.Fatal(err)
	}
	res := goldenScan(t)
	for _, c := range []struct {
		name, format string
		color        bool
		width        int
	}{
		{"table", "table", false, 0},
		{"table-color", "table", true, 0},
		{"table-100", "table", true, 100},
		{"json", "json", false, 0},
		{"sarif", "sarif", false, 0},
		{"cyclonedx", "cyclonedx", false, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			meta := report.Meta{ToolVersion: "v0.0.0-golden", GeneratedAt: goldenNow, Color: c.color, Width: c.width}
			if err := report.Write(&b, c.format, res, meta); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, filepath.Join(dir, "testdata", c.name+".golden"), b.Bytes())
		})
	}
}

// TestTableColorAligned: colour codes take no width, so the coloured
// table is the plain one once they are taken out; fitted to a width, no
// line is wider, and the cut cells end in an ellipsis.
func TestTableColorAligned(t *testing.T) {
	res := goldenScan(t)
	render := func(color bool, width int) string {
		var b bytes.Buffer
		if err := report.Table(&b, res, report.Meta{Color: color, Width: width}); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	plain, colored := render(false, 0), render(true, 0)
	if !strings.Contains(colored, "\x1b[") {
		t.Fatal("no colour in the coloured table")
	}
	if table.Strip(colored) != plain {
		t.Errorf("the coloured table is not the plain one with colour:\n%s\n%s", table.Strip(colored), plain)
	}
	// The header's columns start where the rows' do.
	lines := strings.Split(table.Strip(colored), "\n")
	pkg := strings.Index(lines[0], "PACKAGE")
	for _, l := range lines[1:] {
		if l == "" {
			break
		}
		if l[pkg-1] != ' ' || l[pkg] == ' ' {
			t.Errorf("row %q: the package does not start under PACKAGE (column %d)", l, pkg)
		}
	}
	fitted := render(true, 100)
	for _, l := range strings.Split(fitted, "\n") {
		if table.Width(l) > 100 {
			t.Errorf("line %d wide at width 100: %q", table.Width(l), l)
		}
	}
	if !strings.Contains(fitted, "…") {
		t.Error("nothing cut with an ellipsis at width 100")
	}
}

// checkGolden compares got with the golden file at path, or rewrites it
// with -update.
func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./report -update creates it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test ./report -update rewrites it; review the diff):\n%s",
			path, firstDiff(string(want), string(got)))
	}
}

// firstDiff describes the first line where want and got differ.
func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	line := func(ls []string, i int) string {
		if i >= len(ls) {
			return "(end of output)"
		}
		return strconv.Quote(ls[i])
	}
	for i := 0; i < len(wl) || i < len(gl); i++ {
		if i >= len(wl) || i >= len(gl) || wl[i] != gl[i] {
			return fmt.Sprintf("line %d:\n  want %s\n  got  %s", i+1, line(wl, i), line(gl, i))
		}
	}
	return "(no line differs)"
}
