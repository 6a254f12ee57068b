package scan_test

import (
	"archive/zip"
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/advisory"
	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/inventory/collect"
	"github.com/patchbay/patchbay/scan"
	"github.com/patchbay/patchbay/store/sqlite"
)

// openStore opens a fresh database and imports the given feed paths.
func openStore(t testing.TB, paths ...string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "patchbay.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if len(paths) > 0 {
		im := &feeds.Importer{Store: db}
		if _, err := im.ImportPaths(context.Background(), paths); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// installedSources parses a dpkg status file independently of patchbay:
// source package name → source versions of installed binaries.
func installedSources(t *testing.T, path string) map[string]map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string]bool{}
	fields := map[string]string{}
	flush := func() {
		if strings.HasSuffix(fields["Status"], " installed") {
			name, ver := fields["Package"], fields["Version"]
			if src := fields["Source"]; src != "" {
				n, v, ok := strings.Cut(src, " (")
				name = n
				if ok {
					ver = strings.TrimSuffix(v, ")")
				}
			}
			if out[name] == nil {
				out[name] = map[string]bool{}
			}
			out[name][ver] = true
		}
		fields = map[string]string{}
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue
		}
		k, v, _ := strings.Cut(line, ": ")
		fields[k] = v
	}
	flush()
	return out
}

// TestDebianHostOracle scans a real bookworm host's dpkg status against the
// Debian feed and checks that the (source package, CVE) pairs are exactly
// those that dpkg --compare-versions computes from the feed directly.
func TestDebianHostOracle(t *testing.T) {
	dpkg := sharedtest.Tool(t, "dpkg", "the oracle of Debian version ordering")
	status := filepath.Join(sharedtest.Dir(t, "fixtures/dpkg"), "status-bookworm-host")
	feed := filepath.Join(sharedtest.Dir(t, "feeds/osv/Debian"), "all.zip")

	// The oracle: every record is {introduced 0, fixed F} for one source
	// package; a source version V is affected iff dpkg says V lt F.
	installed := installedSources(t, status)
	zr, err := zip.OpenReader(feed)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	want := map[string]bool{}
	cache := map[[2]string]bool{}
	for _, zf := range zr.File {
		rc, err := zf.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(rc)
		rc.Close()
		a, err := advisory.ParseOSV(data)
		if err != nil {
			t.Fatalf("%s: %v", zf.Name, err)
		}
		if len(a.Affected) != 1 || len(a.Affected[0].Ranges) != 1 || len(a.Affected[0].Ranges[0].Events) != 2 ||
			a.Affected[0].Ranges[0].Events[0].Introduced != "0" || a.Affected[0].Ranges[0].Events[1].Fixed == "" {
			t.Fatalf("%s: not a single {introduced 0, fixed} range; the oracle needs extending", zf.Name)
		}
		src, fix := a.Affected[0].Name, a.Affected[0].Ranges[0].Events[1].Fixed
		for ver := range installed[src] {
			k := [2]string{ver, fix}
			lt, ok := cache[k]
			if !ok {
				err := exec.Command(dpkg, "--compare-versions", ver, "lt", fix).Run()
				lt = err == nil
				if ee, isExit := err.(*exec.ExitError); err != nil && (!isExit || ee.ExitCode() != 1) {
					t.Fatalf("dpkg: %v", err)
				}
				cache[k] = lt
			}
			if lt {
				want[src+" "+ver+" "+a.CVEs()[0]] = true
			}
		}
	}

	db := openStore(t, feed)
	inv, err := collect.Collect(context.Background(), collect.Options{Root: sharedtest.DebianRoot(t, "status-bookworm-host")})
	if err != nil {
		t.Fatal(err)
	}
	res, err := scan.Run(context.Background(), db, inv, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range res.Findings {
		if f.Ecosystem != "Debian:12" {
			t.Errorf("finding in ecosystem %s", f.Ecosystem)
		}
		got[f.Package+" "+f.Version+" "+f.Vulnerability] = true
	}
	var missing, extra []string
	for k := range want {
		if !got[k] {
			missing = append(missing, k)
		}
	}
	for k := range got {
		if !want[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("%d pairs missing (first %v), %d extra (first %v)", len(missing), head(missing), len(extra), head(extra))
	}
	if len(want) < 1000 {
		t.Errorf("oracle found only %d pairs; the fixture should have thousands", len(want))
	}
	t.Logf("%d installed source packages, %d (source, version, CVE) pairs agree with dpkg", len(installed), len(want))
}

func head(xs []string) []string {
	if len(xs) > 5 {
		return xs[:5]
	}
	return xs
}
