package feeds_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/feeds/nvd/nvdtest"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/match"
)

// TestSyncNVD syncs the shared NVD sample from a loopback server that
// pages it as the API does: the first sync fetches every record, the next
// only what changed since the newest stored one (nothing: not modified);
// when NVD rescores one CVE, the sync takes that record alone, and the
// packages to rematch are only those of the advisories naming that CVE.
func TestSyncNVD(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(sharedtest.Dir(t, "feeds/nvd"), "nvdcve-sample.json"))
	if err != nil {
		t.Fatal(err)
	}
	api, err := nvdtest.NewAPIServer(doc)
	if err != nil {
		t.Fatal(err)
	}
	api.MaxPage = 20 // the client asks for 2000: the server's cap pages it
	srv := httptest.NewServer(api)
	defer srv.Close()
	ctx := context.Background()
	db := newDB(t)
	// The Debian feed, so that the CVEs have advisories and packages.
	im := &feeds.Importer{Store: db, Now: func() time.Time { return time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC) }}
	if _, err := im.ImportPaths(ctx, []string{filepath.Join(sharedtest.Dir(t, "feeds/osv/Debian"), "all.zip")}); err != nil {
		t.Fatal(err)
	}
	opts := feeds.SyncOptions{NVD: true, NVDURL: srv.URL, Client: srv.Client(), TempDir: t.TempDir()}
	out, err := im.Sync(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Source != feeds.SourceNVD || out[0].Status != "updated" || out[0].Summary.CVERecords != 64 || api.Requests != 4 {
		t.Fatalf("first sync: %+v in %d requests; want 64 records in 4 pages", out, api.Requests)
	}
	st := source(t, db, feeds.SourceNVD)
	if st.Records != 64 || st.DataTime != time.Date(2026, 6, 17, 10, 59, 56, 720e6, time.UTC) || st.Origin != srv.URL {
		t.Errorf("nvd source after sync: %+v", st)
	}
	api.Requests, api.Queries = 0, nil
	out, err = im.Sync(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Status != "not modified" || api.Requests != 1 || !strings.Contains(api.Queries[0], "lastModStartDate=2026-06-17T09%3A59%3A56.720Z") {
		t.Errorf("second sync: %+v, queries %q; want not modified, one request from an hour before the newest record", out, api.Queries)
	}
	// NVD rescores CVE-2024-45491 (expat; no CVSS in the sample).
	rec := fmt.Sprintf(`{"id": "CVE-2024-45491", "sourceIdentifier": "cve@mitre.org", "published": "2024-08-30T03:15:03.850",
		"lastModified": "2026-06-30T12:00:00.000", "vulnStatus": "Analyzed", "metrics": {"cvssMetricV31": [{"source": "nvd@nist.gov", "type": "Primary",
		"cvssData": {"version": "3.1", "vectorString": "%s", "baseScore": 9.8}}]}}`, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
	if err := api.Put(json.RawMessage(rec)); err != nil {
		t.Fatal(err)
	}
	out, err = im.Sync(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Status != "updated" || out[0].Summary.CVERecords != 1 {
		t.Fatalf("sync after a rescore: %+v", out)
	}
	if got := out[0].Summary.Changed; len(got) != 1 || got[0] != (match.Key{Ecosystem: "Debian:12", Name: "expat"}) {
		t.Errorf("changed keys %v, want only Debian:12/expat", got)
	}
	enr, err := db.Enrichment(ctx, []string{"CVE-2024-45491", "CVE-2024-45490", "CVE-1999-0001"})
	if err != nil {
		t.Fatal(err)
	}
	if r := enr["CVE-2024-45491"].Record; r == nil || len(r.Scores) != 1 || r.Scores[0].Base != 9.8 || r.Status != "Analyzed" {
		t.Errorf("CVE-2024-45491 after the rescore: %+v", r)
	}
	if enr["CVE-2024-45490"].Record == nil || len(enr) != 2 {
		t.Errorf("enrichment of 3 CVEs: %d found, want 2", len(enr))
	}
}

func source(t *testing.T, db interface {
	Sources(context.Context) ([]feeds.SourceState, error)
}, name string) feeds.SourceState {
	t.Helper()
	srcs, err := db.Sources(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range srcs {
		if s.Source == name {
			return s
		}
	}
	t.Fatalf("no source %s in %+v", name, srcs)
	return feeds.SourceState{}
}

// TestImportDebianTracker imports a security tracker export (the shape of
// https://security-tracker.debian.org/tracker/data/json): its urgencies
// become Debian's ratings per release and source package, replacing the
// previous export's; a CVE whose urgency changed rematches its packages.
func TestImportDebianTracker(t *testing.T) {
	dir := t.TempDir()
	export := func(urgency string) string {
		return `{"expat": {"CVE-2024-45491": {"description": "libexpat integer overflow", "scope": "remote", "debianbug": 1080150,
		  "releases": {"bookworm": {"status": "resolved", "repositories": {"bookworm": "2.5.0-1+deb12u1"}, "fixed_version": "2.5.0-1+deb12u1", "urgency": "` + urgency + `"},
		               "sid": {"status": "resolved", "repositories": {"sid": "2.6.3-1"}, "fixed_version": "2.6.3-1", "urgency": "not yet assigned"}}},
		  "TEMP-0000000-1A2B3C": {"releases": {"bookworm": {"status": "open", "urgency": "unimportant"}}}},
		 "linux": {"CVE-2024-46860": {"scope": "local", "releases": {"bookworm": {"status": "open", "repositories": {"bookworm": "6.1.106-3"}, "urgency": "low**"},
		   "bullseye": {"status": "open", "urgency": "unimportant"}}}}}`
	}
	path := filepath.Join(dir, "tracker.json")
	if err := os.WriteFile(path, []byte(export("medium")), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db := newDB(t)
	im := &feeds.Importer{Store: db}
	if _, err := im.ImportPaths(ctx, []string{filepath.Join(sharedtest.Dir(t, "feeds/osv/Debian"), "all.zip")}); err != nil {
		t.Fatal(err)
	}
	sum, err := im.ImportPaths(ctx, []string{path})
	if err != nil {
		t.Fatal(err)
	}
	if sum.VendorRatings != 3 {
		t.Errorf("%d ratings imported, want 3 (expat bookworm, linux bookworm and bullseye)", sum.VendorRatings)
	}
	rs, err := db.VendorRatings(ctx, "Debian")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rs {
		got[r.CVE+" "+r.Ecosystem+" "+r.Package] = r.Rating
	}
	want := map[string]string{"CVE-2024-45491 Debian:12 expat": "medium", "CVE-2024-46860 Debian:12 linux": "low", "CVE-2024-46860 Debian:11 linux": "unimportant"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ratings %v, want %v", got, want)
	}
	if st := source(t, db, "vendor/Debian"); st.Records != 3 || st.Origin != path {
		t.Errorf("vendor/Debian source %+v", st)
	}
	if err := os.WriteFile(path, []byte(export("high")), 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err = im.ImportPaths(ctx, []string{path})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Changed) != 1 || sum.Changed[0] != (match.Key{Ecosystem: "Debian:12", Name: "expat"}) {
		t.Errorf("changed keys %v after expat's urgency changed, want only Debian:12/expat", sum.Changed)
	}
	if err := os.WriteFile(path, []byte(`{"expat": {"CVE-2024-45491": {"releases": {"bookworm": {"urgency": 3}}}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := im.ImportPaths(ctx, []string{path}); err == nil || !strings.Contains(err.Error(), "package expat") {
		t.Errorf("bad urgency: %v", err)
	}
}

// TestImportRedHatCSAF imports Red Hat's CSAF VEX documents (one per CVE;
// the fixture of feeds/rhcsaf is handmade in their shape): their ratings
// become Red Hat's per CVE and RPM package; a later import of some
// documents replaces the ratings of their CVEs only, and rematches only
// the packages of those CVEs; a bad document fails the import naming the
// file and the field, and changes nothing.
func TestImportRedHatCSAF(t *testing.T) {
	fixture, err := os.ReadFile("rhcsaf/testdata/cve-2024-1086.json")
	if err != nil {
		t.Fatal(err)
	}
	curl := func(w string) string {
		return `{"document": {"aggregate_severity": {"namespace": "https://access.redhat.com/security/updates/classification/", "text": "` + w + `"},
		 "category": "csaf_vex", "csaf_version": "2.0", "title": "curl: HTTP/2 push headers memory-leak", "tracking": {"id": "CVE-2024-2398"}},
		 "product_tree": {"branches": [{"category": "vendor", "name": "Red Hat", "branches": [
		   {"category": "product_name", "name": "Red Hat Enterprise Linux 9", "product": {"name": "Red Hat Enterprise Linux 9", "product_id": "red_hat_enterprise_linux_9"}},
		   {"category": "product_version", "name": "curl", "product": {"name": "curl", "product_id": "curl", "product_identification_helper": {"purl": "pkg:rpm/redhat/curl?arch=src"}}}]}],
		  "relationships": [{"category": "default_component_of", "full_product_name": {"name": "curl as a component of Red Hat Enterprise Linux 9", "product_id": "red_hat_enterprise_linux_9:curl"},
		    "product_reference": "curl", "relates_to_product_reference": "red_hat_enterprise_linux_9"}]},
		 "vulnerabilities": [{"cve": "CVE-2024-2398", "product_status": {"known_affected": ["red_hat_enterprise_linux_9:curl"]},
		   "threats": [{"category": "impact", "details": "` + w + `", "product_ids": ["red_hat_enterprise_linux_9:curl"]}]}]}`
	}
	osv := func(id, eco, name, cve string) string {
		return `{"schema_version": "1.6.0", "id": "` + id + `", "modified": "2024-03-20T00:00:00Z", "aliases": ["` + cve + `"],
		 "affected": [{"package": {"ecosystem": "` + eco + `", "name": "` + name + `"},
		   "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.0-1.el9"}]}]}]}`
	}
	dir, vex := t.TempDir(), t.TempDir()
	write := func(path, data string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "RLSA-2024-1249.json"), osv("RLSA-2024:1249", "Rocky Linux:9", "kernel", "CVE-2024-1086"))
	write(filepath.Join(dir, "RLSA-2024-1607.json"), osv("RLSA-2024:1607", "Rocky Linux:9", "curl", "CVE-2024-2398"))
	write(filepath.Join(vex, "cve-2024-1086.json"), string(fixture))
	write(filepath.Join(vex, "cve-2024-2398.json"), curl("Low"))
	ctx := context.Background()
	db := newDB(t)
	im := &feeds.Importer{Store: db}
	if _, err := im.ImportPaths(ctx, []string{dir}); err != nil {
		t.Fatal(err)
	}
	ratings := func() string {
		t.Helper()
		rs, err := db.VendorRatings(ctx, "Red Hat")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rs {
			out = append(out, r.CVE+" "+r.Ecosystem+" "+r.Package+" "+r.Rating)
		}
		return strings.Join(out, "; ")
	}
	sum, err := im.ImportPaths(ctx, []string{vex})
	if err != nil {
		t.Fatal(err)
	}
	if sum.VendorRatings != 4 {
		t.Errorf("%d ratings imported, want 4 (kernel, kernel-core, kernel-rt, curl)", sum.VendorRatings)
	}
	want := "CVE-2024-1086 Red Hat kernel important; CVE-2024-1086 Red Hat kernel-core important; CVE-2024-1086 Red Hat kernel-rt moderate; CVE-2024-2398 Red Hat curl low"
	if got := ratings(); got != want {
		t.Errorf("ratings\n %s\nwant\n %s", got, want)
	}
	if fmt.Sprint(sum.Changed) != "[{Rocky Linux:9 curl} {Rocky Linux:9 kernel}]" {
		t.Errorf("changed keys %v, want Rocky's curl and kernel", sum.Changed)
	}
	if st := source(t, db, "vendor/Red Hat"); st.Records != 4 || !strings.Contains(st.Origin, "and 1 more CSAF documents") ||
		!st.DataTime.Equal(time.Date(2024, 6, 5, 10, 12, 0, 0, time.UTC)) {
		t.Errorf("vendor/Red Hat source %+v", st)
	}

	// Red Hat raises curl's severity: importing that document alone keeps
	// the kernel's ratings and rematches curl only.
	one := filepath.Join(t.TempDir(), "cve-2024-2398.json")
	write(one, curl("Moderate"))
	sum, err = im.ImportPaths(ctx, []string{one})
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Replace(want, "curl low", "curl moderate", 1); ratings() != want {
		t.Errorf("after curl's document: %s\nwant %s", ratings(), want)
	}
	if fmt.Sprint(sum.Changed) != "[{Rocky Linux:9 curl}]" {
		t.Errorf("changed keys %v, want Rocky's curl only", sum.Changed)
	}

	// A bad document fails the whole import, naming file and field.
	write(one, strings.Replace(curl("Important"), `"details": "Important"`, `"details": "Severe"`, 1))
	before := ratings()
	_, err = im.ImportPaths(ctx, []string{vex, one})
	if err == nil || !strings.Contains(err.Error(), one+": vulnerabilities[0].threats[0].details: \"Severe\" is not a Red Hat severity") {
		t.Errorf("bad severity: %v", err)
	}
	if ratings() != before {
		t.Errorf("a failed import changed the ratings: %s", ratings())
	}
}
