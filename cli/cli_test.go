package cli

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/internal/debroot"
	"github.com/patchbay/patchbay/internal/jsontest"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/internal/table"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/report"
	"github.com/patchbay/patchbay/scan"
	"github.com/patchbay/patchbay/store"
)

// run runs the CLI in-process with a data dir and returns exit code,
// stdout and stderr.
func run(t *testing.T, dataDir string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), append([]string{"--data-dir", dataDir}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

var (
	feedsOnce sync.Once
	feedsDir  string
)

// withFeeds returns a data dir with the shared Go, PyPI and KEV feeds and
// the EPSS sample imported. The import runs once per test binary; each
// caller gets its own copy of the database.
func withFeeds(t *testing.T) string {
	t.Helper()
	shared := sharedtest.Dir(t, "feeds")
	feedsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "patchbay-cli-feeds-")
		if err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		code := Run(context.Background(), []string{"--data-dir", dir, "feeds", "import",
			filepath.Join(shared, "osv/Go/all.zip"), filepath.Join(shared, "osv/PyPI/all.zip"),
			filepath.Join(shared, "kev/known_exploited_vulnerabilities.json"),
			"../feeds/testdata/epss_scores-sample.csv"}, &out, &errb)
		if code != 0 {
			t.Fatalf("feeds import: %d %s %s", code, out.String(), errb.String())
		}
		feedsDir = dir
	})
	if feedsDir == "" {
		t.Fatal("feeds import failed earlier")
	}
	dst := t.TempDir()
	data, err := os.ReadFile(filepath.Join(feedsDir, "patchbay.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "patchbay.db"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestMain(m *testing.M) {
	code := m.Run()
	if feedsDir != "" {
		os.RemoveAll(feedsDir)
	}
	os.Exit(code)
}

func scanJSON(t *testing.T, dataDir string, args ...string) report.Document {
	t.Helper()
	code, out, errs := run(t, dataDir, append([]string{"scan", "-o", "json"}, args...)...)
	if code != 0 {
		t.Fatalf("scan exit %d: %s", code, errs)
	}
	var doc report.Document
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("scan JSON: %v\n%s", err, out)
	}
	return doc
}

func find(doc report.Document, pkg, id string) *scan.Finding {
	for i, f := range doc.Findings {
		if f.Package != pkg {
			continue
		}
		if f.Vulnerability == id {
			return &doc.Findings[i]
		}
		for _, a := range f.Aliases {
			if a == id {
				return &doc.Findings[i]
			}
		}
	}
	return nil
}

func TestScanLockfilesJSON(t *testing.T) {
	dir := withFeeds(t)
	doc := scanJSON(t, dir, "testdata/app")
	if doc.Schema != report.JSONSchema {
		t.Errorf("schema %q", doc.Schema)
	}
	cases := []struct {
		pkg, id, version, fixed, priority string
		kev                               bool
		reason                            string
	}{
		// KEV: salt 3000 is exploited in the wild.
		{"salt", "CVE-2020-11651", "3000", "3000.2", "P2", true, "known exploited (CISA KEV since 2021-11-03"},
		// CVSS 3.1 AV:N/AC:L/PR:N/UI:N/A:H: automatable, total impact.
		{"cryptography", "CVE-2023-49083", "41.0.0", "41.0.6", "P2", false, "CVSS 3.1 7.5 high from the advisory, network-reachable without privileges or user interaction"},
		// PR:L: network-reachable, not automatable, high impact.
		{"urllib3", "CVE-2023-43804", "1.26.5", "1.26.17", "P3", false, "CVSS 3.1 8.1 high from the advisory, network-reachable but not automatable"},
		// EPSS 0.12 ≥ 0.1: exploitation likely (the EPSS sample).
		{"golang.org/x/net", "CVE-2022-41723", "0.0.0-20220923203811-8be639271d50", "0.7.0", "P3", false, "exploitation likely (EPSS 0.12, 95th percentile)"},
		// Pseudo-version, several advisories.
		{"golang.org/x/net", "GO-2022-1144", "0.0.0-20220923203811-8be639271d50", "0.4.0", "P4", false, ""},
		// No fix in the advisory.
		{"github.com/cli/go-gh", "GO-2024-3295", "1.0.0", "", "P4", false, ""},
		// +incompatible.
		{"github.com/docker/docker", "GO-2022-0390", "20.10.7+incompatible", "20.10.14+incompatible", "P4", false, ""},
		// Go stdlib from the go directive.
		{"stdlib", "GO-2023-1571", "1.20", "1.20.1", "P3", false, ""},
		// PEP 503: jinja2 pinned in lower case, advisories say Jinja2/jinja2.
		{"jinja2", "CVE-2019-10906", "2.10", "2.10.1", "P4", false, ""},
	}
	for _, c := range cases {
		f := find(doc, c.pkg, c.id)
		if f == nil {
			t.Errorf("%s: no finding %s", c.pkg, c.id)
			continue
		}
		if f.Version != c.version || f.Fixed != c.fixed || f.Priority.String() != c.priority || (f.KEV != nil) != c.kev {
			t.Errorf("%s %s: version %q fixed %q priority %s kev %v; want %q %q %s %v", c.pkg, c.id, f.Version, f.Fixed, f.Priority, f.KEV != nil, c.version, c.fixed, c.priority, c.kev)
		}
		if c.reason != "" && (len(f.Reasons) == 0 || !strings.HasPrefix(f.Reasons[0], c.reason)) {
			t.Errorf("%s %s: reasons %q, want first %q", c.pkg, c.id, f.Reasons, c.reason)
		}
		if f.Due.Sub(f.FirstSeen) <= 0 {
			t.Errorf("%s %s: due %v before first seen %v", c.pkg, c.id, f.Due, f.FirstSeen)
		}
		if len(f.Locations) != 1 || !strings.HasPrefix(f.Locations[0], "testdata/app/") {
			t.Errorf("%s %s: locations %v", c.pkg, c.id, f.Locations)
		}
	}
	// One finding per (package, vulnerability): aliases merged.
	seen := map[string]bool{}
	for _, f := range doc.Findings {
		for _, id := range append([]string{f.Vulnerability}, f.Aliases...) {
			k := f.Package + " " + f.Version + " " + id
			if seen[k] {
				t.Errorf("%s reported twice", k)
			}
			seen[k] = true
		}
	}
	// The unpinned requirement is not a finding.
	for _, f := range doc.Findings {
		if f.Package == "requests" {
			t.Errorf("unpinned requests reported: %v", f)
		}
	}
	if doc.Summary.Findings != len(doc.Findings) || doc.Summary.ByPriority["P2"] < 4 {
		t.Errorf("summary %+v", doc.Summary)
	}
}

func TestScanExitCodes(t *testing.T) {
	dir := withFeeds(t)
	cases := []struct {
		name string
		args []string
		code int
		err  string
	}{
		{"findings without --fail-on", []string{"scan", "testdata/app"}, 0, ""},
		{"--fail-on P2 with P2 findings", []string{"scan", "--fail-on", "P2", "testdata/app"}, 1, "findings at P2 or above"},
		{"--fail-on P1 without P1 findings", []string{"scan", "--fail-on", "p1", "testdata/app"}, 0, ""},
		{"bad --fail-on", []string{"scan", "--fail-on", "P7", "testdata/app"}, 2, `--fail-on: priority "P7": want P1, P2, P3 or P4`},
		{"bad -o", []string{"scan", "-o", "xml", "testdata/app"}, 2, `-o "xml": want one of table, json, sarif, cyclonedx`},
		{"nothing to scan", []string{"scan"}, 2, "nothing to scan"},
		{"missing path", []string{"scan", "testdata/nope"}, 2, "testdata/nope"},
		{"skips are listed, not fatal", []string{"scan", "testdata/app", "testdata/bad"}, 0, ""},
		{"--strict makes a skip fatal", []string{"scan", "--strict", "testdata/app", "testdata/bad"}, 2, "--strict: 2 inputs skipped"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, errs := run(t, dir, c.args...)
			if code != c.code || !strings.Contains(errs, c.err) {
				t.Errorf("exit %d stderr %q; want %d containing %q", code, errs, c.code, c.err)
			}
		})
	}
}

func TestScanNamesBadInputs(t *testing.T) {
	dir := withFeeds(t)
	doc := scanJSON(t, dir, "testdata/app", "testdata/bad")
	want := map[string]string{
		filepath.Join("testdata/bad", "package-lock.json"): "unexpected end of JSON input",
		filepath.Join("testdata/bad", "Cargo.lock"):        "toml: line 1",
	}
	if len(doc.Skipped) != len(want) {
		t.Fatalf("skipped %+v", doc.Skipped)
	}
	for _, s := range doc.Skipped {
		if w, ok := want[s.Path]; !ok || !strings.Contains(s.Reason, w) {
			t.Errorf("skip %+v; want reason containing %q", s, w)
		}
	}
	if doc.Summary.Findings == 0 {
		t.Error("the good inputs were not scanned")
	}
}

func TestScanSARIF(t *testing.T) {
	dir := withFeeds(t)
	out := filepath.Join(t.TempDir(), "out.sarif")
	if code, _, errs := run(t, dir, "scan", "-o", "sarif", "--output-file", out, "testdata/app"); code != 0 {
		t.Fatal(errs)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var log struct {
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Name  string `json:"name"`
					Rules []struct {
						ID         string         `json:"id"`
						Properties map[string]any `json:"properties"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID    string `json:"ruleId"`
				Level     string `json:"level"`
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct{ URI string }     `json:"artifactLocation"`
						Region           *struct{ StartLine int } `json:"region"`
					} `json:"physicalLocation"`
				} `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(data, &log); err != nil {
		t.Fatal(err)
	}
	if log.Version != "2.1.0" || len(log.Runs) != 1 || log.Runs[0].Tool.Driver.Name != "patchbay" {
		t.Fatalf("not a patchbay SARIF 2.1.0 log: %s", data[:200])
	}
	rules := map[string]map[string]any{}
	for _, r := range log.Runs[0].Tool.Driver.Rules {
		if _, dup := rules[r.ID]; dup {
			t.Errorf("rule %s twice", r.ID)
		}
		rules[r.ID] = r.Properties
	}
	found := false
	for _, r := range log.Runs[0].Results {
		if _, ok := rules[r.RuleID]; !ok {
			t.Errorf("result for unknown rule %s", r.RuleID)
		}
		loc := r.Locations[0].PhysicalLocation
		if r.RuleID == "CVE-2023-49083" {
			found = true
			if r.Level != "error" || loc.ArtifactLocation.URI != "testdata/app/requirements.txt" || loc.Region == nil || loc.Region.StartLine != 8 {
				t.Errorf("cryptography result: level %s location %+v region %+v", r.Level, loc.ArtifactLocation, loc.Region)
			}
			if rules[r.RuleID]["security-severity"] != "7.5" {
				t.Errorf("security-severity %v", rules[r.RuleID]["security-severity"])
			}
		}
	}
	if !found {
		t.Error("no result for CVE-2023-49083")
	}
}

func TestScanCycloneDX(t *testing.T) {
	dir := withFeeds(t)
	code, out, errs := run(t, dir, "scan", "-o", "cyclonedx", "testdata/app")
	if code != 0 {
		t.Fatal(errs)
	}
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(strings.NewReader(out), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatal(err)
	}
	if bom.SpecVersion != cdx.SpecVersion1_5 || bom.BOMFormat != "CycloneDX" {
		t.Fatalf("spec %v format %s", bom.SpecVersion, bom.BOMFormat)
	}
	refs := map[string]bool{}
	for _, c := range *bom.Components {
		refs[c.BOMRef] = true
	}
	doc := scanJSON(t, dir, "testdata/app")
	if bom.Vulnerabilities == nil || len(*bom.Vulnerabilities) != len(doc.Findings) {
		t.Fatalf("vulnerabilities: %d, findings %d", len(*bom.Vulnerabilities), len(doc.Findings))
	}
	for _, v := range *bom.Vulnerabilities {
		if v.Affects == nil || len(*v.Affects) == 0 {
			t.Errorf("%s affects nothing", v.ID)
			continue
		}
		for _, a := range *v.Affects {
			if !refs[a.Ref] {
				t.Errorf("%s affects unknown component %s", v.ID, a.Ref)
			}
		}
		if v.ID == "CVE-2023-49083" {
			if v.Ratings == nil || (*v.Ratings)[0].Method != cdx.ScoringMethodCVSSv31 || *(*v.Ratings)[0].Score != 7.5 || v.Recommendation != "Upgrade cryptography to 41.0.6 or later." {
				t.Errorf("CVE-2023-49083: %+v", v)
			}
		}
	}
}

func TestScanTable(t *testing.T) {
	dir := withFeeds(t)
	code, out, errs := run(t, dir, "scan", "testdata/app")
	if code != 0 {
		t.Fatal(errs)
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("colour codes written to a non-terminal")
	}
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[0], "PRIORITY") {
		t.Fatalf("header %q", lines[0])
	}
	// Most urgent patch first; a row per package, installed → fixed.
	if f := strings.Fields(lines[1]); f[0] != "P2" {
		t.Errorf("first row %q is not a P2 patch", lines[1])
	}
	var salt string
	for _, l := range lines {
		if strings.Contains(l, " salt ") {
			salt = l
		}
	}
	for _, want := range []string{"P2", "PyPI", "3000", "3005.2", "CVE-2020-11651", "known exploited"} {
		if !strings.Contains(salt, want) {
			t.Errorf("salt row %q lacks %q", salt, want)
		}
	}
	if !strings.Contains(out, "findings (P1 0, P2 4,") {
		t.Errorf("summary line missing: %s", out[len(out)-300:])
	}
}

// TestOutputFlags: -o is the format everywhere and --output-file the path;
// a path given to -o is refused with the flag it was meant for, and
// scan's old --format goes on working with a note on standard error.
func TestOutputFlags(t *testing.T) {
	dir := withFeeds(t)
	tmp := t.TempDir()
	file := filepath.Join(tmp, "out.json")
	code, out, errs := run(t, dir, "scan", "-o", "json", "--output-file", file, "testdata/app")
	var doc report.Document
	if b, err := os.ReadFile(file); code != 0 || out != "" || err != nil || json.Unmarshal(b, &doc) != nil || len(doc.Findings) == 0 {
		t.Fatalf("--output-file: %d %q %s %v", code, out, errs, err)
	}
	// -o with a path: refused, nothing written.
	path := filepath.Join(tmp, "report.sarif")
	for _, args := range [][]string{
		{"scan", "-o", path, "testdata/app"},
		{"hosts", "list", "-o", path},
		{"feeds", "status", "-o", path},
		{"patches", "-o", path, "testdata/app"},
		{"audit", "export", "-o", path},
	} {
		code, out, errs := run(t, dir, args...)
		// The hint fits the command: --output-file where it has one.
		hint := "to write a file, redirect: -o json > " + path
		if args[0] == "scan" || args[0] == "audit" {
			hint = "did you mean --output-file " + path + "?"
		}
		if want := "-o is the format"; code != ExitError || out != "" || !strings.Contains(errs, want) || !strings.Contains(errs, hint) {
			t.Errorf("%v: %d %q %q (want the hint %q)", args, code, out, errs, hint)
		}
		if _, err := os.Stat(path); err == nil {
			t.Fatalf("%v wrote %s", args, path)
		}
	}
	if code, _, errs := run(t, dir, "hosts", "list", "-o", "xml"); code != ExitError || !strings.Contains(errs, `-o "xml": want one of table, json, yaml`) {
		t.Errorf("-o xml: %d %s", code, errs)
	}
	// --format, deprecated: the report on standard output, a note beside it.
	code, out, errs = run(t, dir, "scan", "--format", "json", "testdata/app")
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || !strings.Contains(errs, "Flag --format has been deprecated, use -o/--output") {
		t.Errorf("--format json: %d %.100q %s", code, out, errs)
	}
	// --format with -o FILE, as pipelines wrote it: the file, and a note.
	code, out, errs = run(t, dir, "scan", "--format", "sarif", "-o", path, "testdata/app")
	if b, err := os.ReadFile(path); code != 0 || out != "" || err != nil || !strings.Contains(string(b), `"version": "2.1.0"`) ||
		!strings.Contains(errs, "-o FILE with --format is deprecated: write -o sarif --output-file "+path) {
		t.Errorf("--format sarif -o FILE: %d %q %s %v", code, out, errs, err)
	}
	// --format beside -o json: once a file named json, now refused.
	code, _, errs = run(t, dir, "scan", "--format", "sarif", "-o", "json", "testdata/app")
	if code != ExitError || !strings.Contains(errs, "--format sarif with -o json: -o is the format now") {
		t.Errorf("--format sarif -o json: %d %s", code, errs)
	}
	// audit export: --output-file.
	export := filepath.Join(tmp, "audit.jsonl")
	if code, out, errs := run(t, dir, "audit", "export", "--output-file", export); code != 0 || out != "" {
		t.Errorf("audit export --output-file: %d %q %s", code, out, errs)
	} else if _, err := os.Stat(export); err != nil {
		t.Errorf("audit export --output-file: %v", err)
	}
}

// TestScanTableFileColumn: a directory of two lockfiles that both pin
// werkzeug (at different versions): the table says which file each row
// is from, the colour-free table fits a given width with the files' ends
// kept, and the JSON report has no zero time.
func TestScanTableFileColumn(t *testing.T) {
	dir := withFeeds(t)
	corpus := sharedtest.Dir(t, "corpus/lockfiles")
	app := t.TempDir()
	for _, f := range []string{"flask/requirements/tests-pallets-min.txt", "pipenv/Pipfile.lock"} {
		b, err := os.ReadFile(filepath.Join(corpus, f))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(filepath.Join(app, f)), 0o755)
		if err := os.WriteFile(filepath.Join(app, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errs := run(t, dir, "scan", app)
	if code != 0 {
		t.Fatalf("scan: %d %s", code, errs)
	}
	lines := strings.Split(out, "\n")
	header := strings.Fields(lines[0])
	if !slices.Contains(header, "FILE") {
		t.Fatalf("no FILE column: %q", lines[0])
	}
	file := strings.Index(lines[0], "FILE")
	rows := map[string]string{}
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > 2 && f[1] == "werkzeug" {
			rows[f[3]] = strings.Fields(l[file:])[0]
		}
	}
	// The directory both are under is said once, below the table.
	if len(rows) != 2 || rows["2.0.0"] != "flask/requirements/tests-pallets-min.txt" || rows["2.2.2"] != "pipenv/Pipfile.lock" ||
		!strings.Contains(out, "\n(files under "+app+"/)\n") {
		t.Errorf("werkzeug rows by installed version → file: %v\n%s", rows, out)
	}
	code, out, _ = runWidth(t, dir, 100, "scan", app)
	for _, l := range strings.Split(out, "\n") {
		if table.Width(l) > 100 {
			t.Errorf("%d wide at 100 columns: %q", table.Width(l), l)
		}
	}
	if code != 0 || !strings.Contains(out, "  …sts-pallets-min.txt  ") {
		t.Errorf("at 100 columns the file column does not keep the files' ends:\n%s", out)
	}
	code, out, _ = run(t, dir, "scan", "-o", "json", app)
	if code != 0 {
		t.Fatal(code)
	}
	jsontest.NoZeroTime(t, "scan -o json", []byte(out))
}

func TestFeedsStatus(t *testing.T) {
	dir := withFeeds(t)
	code, out, errs := run(t, dir, "feeds", "status", "-o", "json")
	if code != 0 {
		t.Fatal(errs)
	}
	var st struct {
		Sources []struct {
			Source  string `json:"source"`
			Records int    `json:"records"`
		} `json:"sources"`
		Ecosystems map[string]int `json:"ecosystems"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, s := range st.Sources {
		got[s.Source] = s.Records
	}
	want := map[string]int{"osv/Go": 4274, "osv/PyPI": 2651, "kev": 1404, "epss": 5}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %d records, want %d", k, got[k], v)
		}
	}
	if st.Ecosystems["Go"] != 4274 || st.Ecosystems["PyPI"] != 2651 {
		t.Errorf("ecosystems %v", st.Ecosystems)
	}
	code, out, _ = run(t, dir, "feeds", "status")
	if code != 0 || !strings.Contains(out, "osv/Go") || !strings.Contains(out, "DATA AS OF") {
		t.Errorf("table status: %s", out)
	}
}

// TestScanWithoutFeedsWarns: a scan with no local database says so and
// scans without creating one; with an empty database it says no feeds
// are imported.
func TestScanWithoutFeedsWarns(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	code, _, errs := run(t, dir, "scan", "testdata/app")
	if code != 0 || !strings.Contains(errs, "no advisory database at "+filepath.Join(dir, "patchbay.db")+": nothing to match against") {
		t.Errorf("exit %d stderr %q", code, errs)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("scan made its data dir: %v", err)
	}
	empty := emptyDB(t)
	if code, _, errs := run(t, empty, "scan", "testdata/app"); code != 0 || !strings.Contains(errs, "no advisory feeds imported in "+filepath.Join(empty, "patchbay.db")) {
		t.Errorf("empty database: exit %d stderr %q", code, errs)
	}
}

// emptyDB is a data dir with a database in it, as a first server start
// leaves it.
func emptyDB(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(context.Background(), filepath.Join(dir, "patchbay.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	return dir
}

// TestScanFreshDebianRootListsSecurityUpdates: on a real bookworm root with
// no feeds imported, scan --root lists the pending security updates with
// the CVEs their changelogs name, and patches lists them by cycle and type.
func TestScanFreshDebianRootListsSecurityUpdates(t *testing.T) {
	root := debroot.Bookworm(t)
	dir := t.TempDir()
	doc := scanJSON(t, dir, "--root", root)
	f := find(doc, "pcre2", "CVE-2026-103111")
	if f == nil || f.Source != "apt" || f.Ecosystem != "Debian:12" || !strings.HasPrefix(f.Reasons[0], "fixed by the bookworm-security update to 10.42-1+deb12u") {
		t.Errorf("pcre2 finding %+v", f)
	}
	var lzma *patch.Update
	for i, u := range doc.Updates {
		if u.Name == "liblzma5" {
			lzma = &doc.Updates[i]
		}
	}
	if lzma == nil || lzma.Pocket != "security" || lzma.Cycle != "system" || len(lzma.Types) == 0 || lzma.Types[0] != "security" {
		t.Errorf("liblzma5 update %+v", lzma)
	}
	code, out, errs := run(t, dir, "patches", "--root", root, "-o", "json")
	if code != 0 {
		t.Fatal(errs)
	}
	var pl struct {
		Patches []PatchRow
		Reboot  *struct {
			Required bool
			Stale    []any
		}
	}
	if err := json.Unmarshal([]byte(out), &pl); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range pl.Patches {
		if r.Binary == "liblzma5" && r.Cycle == "system" && r.Origin == "bookworm-security" && r.Package == "xz-utils" {
			found = true
		}
	}
	if !found {
		t.Errorf("patches lacks liblzma5: %s", out)
	}
	if pl.Reboot == nil || pl.Reboot.Required || pl.Reboot.Stale == nil {
		t.Errorf("reboot status of a fresh root: %+v", pl.Reboot)
	}
}

func TestAuditCommands(t *testing.T) {
	kev := filepath.Join(sharedtest.Dir(t, "feeds"), "kev")
	dir := t.TempDir()
	for i := 0; i < 2; i++ {
		if code, _, errs := run(t, dir, "feeds", "import", kev); code != 0 {
			t.Fatal(errs)
		}
	}
	if code, out, errs := run(t, dir, "audit", "verify"); code != 0 || !strings.Contains(out, "audit chain intact: 2 entries") {
		t.Fatalf("verify: %d %s %s", code, out, errs)
	}
	cp := filepath.Join(t.TempDir(), "checkpoint.json")
	if code, _, errs := run(t, dir, "audit", "checkpoint", "--out", cp); code != 0 {
		t.Fatal(errs)
	}
	code, out, _ := run(t, dir, "audit", "export")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var first struct {
		Seq           int64
		Actor, Action string
	}
	if code != 0 || len(lines) != 2 || json.Unmarshal([]byte(lines[0]), &first) != nil || first.Seq != 1 || first.Action != "feeds.import" || !strings.HasPrefix(first.Actor, "cli") {
		t.Fatalf("export: %d %q", code, out)
	}
	// Truncate the tail behind patchbay's back: the checkpoint catches it.
	db, err := sql.Open("sqlite", filepath.Join(dir, "patchbay.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("DELETE FROM audit_log WHERE seq = 2"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if code, _, errs := run(t, dir, "audit", "verify"); code != 0 {
		t.Errorf("without a checkpoint the shortened chain is consistent: %s", errs)
	}
	if code, _, errs := run(t, dir, "audit", "verify", "--checkpoint", cp); code != 2 || !strings.Contains(errs, "audit chain broken at entry 2: the chain ends at 1 but the checkpoint") {
		t.Errorf("verify --checkpoint: %d %s", code, errs)
	}
	// A forged checkpoint is refused.
	b, _ := os.ReadFile(cp)
	os.WriteFile(cp, []byte(strings.Replace(string(b), `"seq": 2`, `"seq": 1`, 1)), 0o644)
	if code, _, errs := run(t, dir, "audit", "verify", "--checkpoint", cp); code != 2 || !strings.Contains(errs, "signature does not verify") {
		t.Errorf("forged checkpoint: %d %s", code, errs)
	}
}

func TestAdminTokens(t *testing.T) {
	dir := emptyDB(t)
	code, secret, errs := run(t, dir, "admin", "token", "create", "--role", "operator", "--name", "ci")
	secret = strings.TrimSpace(secret)
	if code != 0 || !strings.HasPrefix(secret, "pb_") || !strings.Contains(errs, "not be shown again") {
		t.Fatalf("create: %d %q %s", code, secret, errs)
	}
	if code, _, errs := run(t, dir, "admin", "token", "create", "--role", "root"); code != 2 || !strings.Contains(errs, `role "root"`) {
		t.Errorf("bad role: %d %s", code, errs)
	}
	if code, _, _ := run(t, dir, "admin", "token", "create", "--enrollment", "--uses", "3"); code != 0 {
		t.Error("enrollment token")
	}
	code, out, _ := run(t, dir, "admin", "token", "list")
	if code != 0 || !strings.Contains(out, "operator") || !strings.Contains(out, "enrollment") || strings.Contains(out, secret) {
		t.Errorf("list: %s", out)
	}
	// JSON and YAML: the operator token never expires, so says no expiry.
	code, out, _ = run(t, dir, "admin", "token", "list", "-o", "json")
	var tl struct {
		Tokens []map[string]any `json:"tokens"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &tl) != nil || len(tl.Tokens) != 2 {
		t.Fatalf("list -o json: %d %s", code, out)
	}
	jsontest.NoZeroTime(t, "admin token list -o json", []byte(out))
	for _, tk := range tl.Tokens {
		if _, has := tk["expires"]; has != (tk["kind"] == "enrollment") {
			t.Errorf("token %v: an expiry only on the enrollment token", tk)
		}
	}
	if code, out, _ = run(t, dir, "admin", "token", "list", "-o", "yaml"); code != 0 || !strings.Contains(out, "tokens:\n  - id: ") || !strings.Contains(out, "    role: operator\n") {
		t.Errorf("list -o yaml: %d %s", code, out)
	}
	id := auth.IDOf(secret)
	if code, _, errs := run(t, dir, "admin", "token", "revoke", id); code != 0 {
		t.Fatal(errs)
	}
	if _, out, _ := run(t, dir, "admin", "token", "list"); !strings.Contains(out, "credential revoked") {
		t.Errorf("after revoke: %s", out)
	}
	if _, out, _ := run(t, dir, "audit", "export"); strings.Count(out, `"action":"token.`) != 3 || strings.Contains(out, secret) {
		t.Errorf("audit: %s", out)
	}
}
