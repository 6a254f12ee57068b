package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/feeds/nvd/nvdtest"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/report"
)

var updateSeverity = flag.Bool("update-severity", false, "rewrite testdata/severity/decisions.golden")

// severityFeeds imports, into a fresh data dir, the shared Debian feed,
// the KEV catalog and, as asked, the NVD sample and
// testdata/severity/epss.csv (its
// CVE-2023-44487 row is the EPSS sample's; the other rows are test values
// that put three Debian CVEs across the "likely" threshold and below it,
// not FIRST's scores).
func severityFeeds(t *testing.T, withNVD, withEPSS bool) string {
	t.Helper()
	shared := sharedtest.Dir(t, "feeds")
	args := []string{"feeds", "import", filepath.Join(shared, "osv/Debian/all.zip"), filepath.Join(shared, "kev/known_exploited_vulnerabilities.json")}
	if withEPSS {
		args = append(args, filepath.Join("testdata", "severity", "epss.csv"))
	}
	if withNVD {
		args = append(args, filepath.Join(shared, "nvd/nvdcve-sample.json"))
	}
	dir := t.TempDir()
	if code, _, errs := run(t, dir, args...); code != 0 {
		t.Fatalf("feeds import: %s", errs)
	}
	return dir
}

// debianRoot writes a bookworm root with the shared fixture's dpkg status
// after edit.
func debianRoot(t *testing.T, fixture string, edit func(string) string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(sharedtest.Dir(t, "fixtures/dpkg"), fixture))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	osRelease := "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n"
	for path, content := range map[string]string{"var/lib/dpkg/status": edit(string(data)), "etc/os-release": osRelease} {
		p := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func sampleCVEs(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(sharedtest.Dir(t, "feeds/nvd"), "nvdcve-sample.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Vulnerabilities []struct {
			CVE struct {
				ID      string                     `json:"id"`
				Metrics map[string]json.RawMessage `json:"metrics"`
			} `json:"cve"`
		} `json:"vulnerabilities"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{} // CVE → has a CVSS metric
	for _, v := range doc.Vulnerabilities {
		has := false
		for k := range v.CVE.Metrics {
			has = has || strings.HasPrefix(k, "cvssMetric")
		}
		out[v.CVE.ID] = has
	}
	return out
}

func distribution(doc report.Document) string {
	n := map[string]int{}
	for _, f := range doc.Findings {
		n[f.Priority.String()]++
	}
	var parts []string
	for _, p := range []string{"P1", "P2", "P3", "P4"} {
		parts = append(parts, fmt.Sprintf("%s %d (%.1f%%)", p, n[p], 100*float64(n[p])/float64(len(doc.Findings))))
	}
	return strings.Join(parts, ", ")
}

var scoredRE = regexp.MustCompile(`^CVSS (2\.0|3\.0|3\.1|4\.0) \d+\.\d (none|low|medium|high|critical) from (NVD|the CNA \(\S+\)|CISA ADP|ADP \S+)(,|$)`)

// TestSeverityFullHost scans the shared full-host fixture against the
// Debian feed and KEV, then with the NVD sample too: the findings of the
// sample's CVEs are scored and name their score's source, the rest stay
// as they were, and the share of P4 falls.
func TestSeverityFullHost(t *testing.T) {
	root := debianRoot(t, "status-bookworm-host", func(s string) string { return s })
	args := []string{"--root", root, "--no-package-manager", "--stale-after", "0"}
	before := scanJSON(t, severityFeeds(t, false, false), args...)
	after := scanJSON(t, severityFeeds(t, true, false), args...)
	t.Logf("%d findings; before the NVD sample: %s", len(before.Findings), distribution(before))
	t.Logf("after: %s", distribution(after))
	if len(before.Findings) != len(after.Findings) || len(after.Findings) < 2000 {
		t.Fatalf("%d findings before, %d after", len(before.Findings), len(after.Findings))
	}
	p4 := func(d report.Document) int {
		n := 0
		for _, f := range d.Findings {
			if f.Priority == 4 {
				n++
			}
		}
		return n
	}
	if p4(before) != len(before.Findings) {
		t.Errorf("before: %d of %d findings P4, want all (the Debian records carry no CVSS)", p4(before), len(before.Findings))
	}
	if p4(after) >= p4(before) {
		t.Errorf("P4 findings %d after, %d before: the NVD scores changed nothing", p4(after), p4(before))
	}
	sample := sampleCVEs(t)
	inSample := 0
	for _, f := range after.Findings {
		scored, ok := sample[f.Vulnerability]
		if !ok {
			if strings.Contains(strings.Join(f.Reasons, "; "), " from ") {
				t.Errorf("%s %s: not in the sample but scored: %q", f.Package, f.Vulnerability, f.Reasons)
			}
			continue
		}
		inSample++
		named := false
		for _, r := range f.Reasons {
			named = named || scoredRE.MatchString(r) || (!scored && r == "no CVSS vector or severity in the advisories, NVD or the vendors")
		}
		if !named {
			t.Errorf("%s %s (CVSS in its NVD record: %v): reasons %q name no score source", f.Package, f.Vulnerability, scored, f.Reasons)
		}
	}
	if inSample == 0 {
		t.Error("no finding of a CVE in the NVD sample")
	}
}

// goldenCVEs are the decisions pinned: KEV kernel and nghttp2 CVEs, CVEs
// scored by NVD, by a CNA (v3.1 and v4.0), by CISA ADP, with an EPSS
// score on both sides of "likely", and NVD records without CVSS.
var goldenCVEs = []string{
	"CVE-2024-1086", "CVE-2024-36971", "CVE-2024-50302", "CVE-2023-44487", "CVE-2026-32316", "CVE-2026-7168",
	"CVE-2025-14524", "CVE-2026-7598", "CVE-2025-12084", "CVE-2025-14819", "CVE-2025-9375", "CVE-2026-1489", "CVE-2024-46860",
}

// TestSeverityGolden pins a dozen decisions of real CVEs end to end
// (feeds import, then scan): the full-host fixture as it was before its
// kernel (6.1.66-1) and nghttp2 (1.52.0-1) updates, so that the KEV
// CVEs of the Debian feed apply through the DEBCL records' CVE aliases.
// go test ./cli -run TestSeverityGolden -update-severity rewrites
// testdata/severity/decisions.golden.
func TestSeverityGolden(t *testing.T) {
	root := debianRoot(t, "status-bookworm-host", func(s string) string {
		s = strings.ReplaceAll(s, "Version: 6.1.187-1\n", "Version: 6.1.66-1\n")
		return strings.Replace(s, "Version: 1.52.0-1+deb12u2\n", "Version: 1.52.0-1\n", 1)
	})
	doc := scanJSON(t, severityFeeds(t, true, true), "--root", root, "--no-package-manager", "--stale-after", "0")
	var lines []string
	for _, cve := range goldenCVEs {
		found := false
		for _, f := range doc.Findings {
			if f.Vulnerability != cve {
				continue
			}
			found = true
			kev := ""
			if f.KEV != nil {
				kev = " KEV"
			}
			lines = append(lines, fmt.Sprintf("%s %s %s %s%s: %s", f.Priority, cve, f.Package, f.Version, kev, strings.Join(f.Reasons, "; ")))
		}
		if !found {
			t.Errorf("no finding of %s", cve)
		}
	}
	sort.Strings(lines)
	got := strings.Join(lines, "\n") + "\n"
	golden := filepath.Join("testdata", "severity", "decisions.golden")
	if *updateSeverity {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("decisions differ from %s (-update-severity rewrites it; review the diff):\ngot:\n%s\nwant:\n%s", golden, got, want)
	}
}

// TestFeedsSyncNVD syncs the NVD sample from a loopback server with the
// CVE API's paging, then shows it in feeds status with its count and age.
func TestFeedsSyncNVD(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(sharedtest.Dir(t, "feeds/nvd"), "nvdcve-sample.json"))
	if err != nil {
		t.Fatal(err)
	}
	api, err := nvdtest.NewAPIServer(data)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	defer srv.Close()
	dir := t.TempDir()
	code, out, errs := run(t, dir, "feeds", "sync", "--sources", "nvd", "--nvd-url", srv.URL)
	if code != 0 || !strings.Contains(out, "nvd            updated: 64 NVD CVE records (0 unchanged)") {
		t.Fatalf("feeds sync: %d\n%s%s", code, out, errs)
	}
	code, out, errs = run(t, dir, "feeds", "status", "--stale-after", "0", "--wide")
	if code != 0 || !regexp.MustCompile(`(?m)^nvd\s+64\s+just now .*\(2026-06-17 10:59 UTC\)\s+fresh\s+`+regexp.QuoteMeta(srv.URL)).MatchString(out) {
		t.Errorf("feeds status: %d\n%s%s", code, out, errs)
	}
}
