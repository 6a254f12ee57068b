package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/feeds/nvd/nvdtest"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/risk"
	"github.com/patchbay/patchbay/server"
)

// nvdRecord is one CVE's record of the shared NVD sample, as a one-record
// API 2.0 document.
func nvdRecord(t *testing.T, cve string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(sharedtest.Dir(t, "feeds/nvd"), "nvdcve-sample.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Vulnerabilities []struct {
			CVE json.RawMessage `json:"cve"`
		} `json:"vulnerabilities"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	for _, v := range doc.Vulnerabilities {
		if strings.Contains(string(v.CVE[:min(len(v.CVE), 64)]), `"`+cve+`"`) {
			out, _ := json.Marshal(map[string]any{"resultsPerPage": 1, "startIndex": 0, "totalResults": 1, "format": "NVD_CVE", "version": "2.0",
				"vulnerabilities": []map[string]json.RawMessage{{"cve": v.CVE}}})
			return out
		}
	}
	t.Fatalf("%s is not in the NVD sample", cve)
	return nil
}

// TestNVDRecordRedecidesItsFindings: an NVD record imported by a feed
// refresh re-decides the findings of its CVE — the one host with the
// package, that finding only — and the finding's evidence and the
// vulnerability name the score's source.
func TestNVDRecordRedecidesItsFindings(t *testing.T) {
	const cve = "CVE-2026-7598" // libssh2, scored 6.9 (CVSS 4.0) by its CNA, VulDB
	dir := t.TempDir()
	f := newFixture(t, "sqlite", func(c *server.Config) { c.Feeds = server.FeedSource{Paths: []string{debianFeed(t), dir}} })
	ctx := context.Background()
	if _, err := f.srv.RefreshFeeds(ctx, fleet.Fence{}); err != nil {
		t.Fatal(err)
	}
	tok := f.token(auth.KindEnrollment, auth.Agent, -1, time.Time{})
	web := f.enroll(tok, factsOf("web", "m-web"))
	if code, body := f.do("POST", api.Prefix+"/agent/checkin", web.Credential, report(factsOf("web", "m-web"), webDB(t), true)); code != 200 {
		t.Fatal(code, string(body))
	}
	viewer := f.api(auth.Viewer)
	before := map[int64]risk.Priority{}
	var target int64
	for _, r := range f.findings(viewer, url.Values{}) {
		before[r.ID] = r.Priority
		if r.Vulnerability == cve {
			target = r.ID
		}
	}
	if target == 0 || before[target] != risk.P4 {
		t.Fatalf("%s on web: finding %d, %s; want an open P4 finding", cve, target, before[target])
	}
	if err := os.WriteFile(filepath.Join(dir, "nvd.json"), nvdRecord(t, cve), 0o644); err != nil {
		t.Fatal(err)
	}
	code, body := f.do("POST", api.Prefix+"/feeds/refresh", f.api(auth.Operator), nil)
	var rr server.RefreshResult
	f.decode(body, &rr)
	if code != 200 || rr.Summary.CVERecords != 1 || rr.Rematch.Hosts != 1 {
		t.Fatalf("refresh: %d %s", code, body)
	}
	for _, r := range f.findings(viewer, url.Values{}) {
		switch {
		case r.ID == target && r.Priority != risk.P3:
			t.Errorf("%s after its NVD record: %s, want P3 (automatable, partial impact)", cve, r.Priority)
		case r.ID != target && r.Priority != before[r.ID]:
			t.Errorf("finding %d (%s) moved from %s to %s: only %s's findings should", r.ID, r.Vulnerability, before[r.ID], r.Priority, cve)
		}
	}
	d := f.explain(viewer, target)
	if len(d.Evidence) == 0 || !strings.HasPrefix(d.Evidence[0], "CVSS 4.0 6.9 medium from the CNA (cna@vuldb.com)") {
		t.Errorf("evidence %q: want the CNA's CVSS 4.0 score named", d.Evidence)
	}
	var v api.VulnDetail
	code, body = f.do("GET", api.Prefix+"/vulns/"+cve, viewer, nil)
	f.decode(body, &v)
	if code != 200 || v.Enrichment == nil || v.Enrichment.Record == nil || len(v.Enrichment.Record.Scores) != 3 || v.Enrichment.Record.Scores[0].Source != "cna@vuldb.com" {
		t.Errorf("GET /vulns/%s: %d %s", cve, code, body)
	}
}

// sampleExcept is the shared NVD sample without one CVE's record.
func sampleExcept(t *testing.T, cve string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(sharedtest.Dir(t, "feeds/nvd"), "nvdcve-sample.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]json.RawMessage
	var vulns []struct {
		CVE json.RawMessage `json:"cve"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(doc["vulnerabilities"], &vulns); err != nil {
		t.Fatal(err)
	}
	kept := vulns[:0]
	for _, v := range vulns {
		if !strings.Contains(string(v.CVE[:min(len(v.CVE), 64)]), `"`+cve+`"`) {
			kept = append(kept, v)
		}
	}
	if len(kept) == len(vulns) {
		t.Fatalf("%s is not in the NVD sample", cve)
	}
	doc["vulnerabilities"], _ = json.Marshal(kept)
	out, _ := json.Marshal(doc)
	return out
}

// TestLeaderSyncsNVD: with --feeds-sync and --nvd-sync, the leader's feed
// refresh fetches NVD incrementally from the CVE API (a loopback server
// paging the shared sample): the first refresh takes every record, the
// next asks for lastModStartDate from the newest stored record and gets
// only the record NVD changed since, which re-decides its CVE's finding
// alone.
func TestLeaderSyncsNVD(t *testing.T) {
	const cve = "CVE-2026-7598" // libssh2, scored 6.9 (CVSS 4.0) by its CNA
	api20, err := nvdtest.NewAPIServer(sampleExcept(t, cve))
	if err != nil {
		t.Fatal(err)
	}
	nvdSrv := httptest.NewServer(api20)
	defer nvdSrv.Close()
	zip := debianFeed(t)
	mirror := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/osv/Debian/all.zip" {
			http.NotFound(w, r)
			return
		}
		http.ServeFile(w, r, zip)
	}))
	defer mirror.Close()
	f := newFixture(t, "sqlite", func(c *server.Config) {
		c.Feeds = server.FeedSource{Sync: true, Mirror: mirror.URL, Ecosystems: []string{"Debian"}, TempDir: t.TempDir(),
			NVD: true, NVDURL: nvdSrv.URL, NVDDelay: time.Millisecond}
	})
	ctx := context.Background()
	rr, err := f.srv.RefreshFeeds(ctx, fleet.Fence{})
	if err != nil {
		t.Fatal(err)
	}
	if rr.Summary.CVERecords != 63 || rr.Summary.Added == 0 {
		t.Fatalf("first refresh: %d NVD records, %d advisories; want the sample's 63 others and the Debian feed", rr.Summary.CVERecords, rr.Summary.Added)
	}
	tok := f.token(auth.KindEnrollment, auth.Agent, -1, time.Time{})
	web := f.enroll(tok, factsOf("web", "m-web"))
	if code, body := f.do("POST", api.Prefix+"/agent/checkin", web.Credential, report(factsOf("web", "m-web"), webDB(t), true)); code != 200 {
		t.Fatal(code, string(body))
	}
	viewer := f.api(auth.Viewer)
	before := map[int64]risk.Priority{}
	var target int64
	for _, r := range f.findings(viewer, url.Values{}) {
		before[r.ID] = r.Priority
		if r.Vulnerability == cve {
			target = r.ID
		}
	}
	if target == 0 || before[target] != risk.P4 {
		t.Fatalf("%s on web: finding %d, %s; want an open P4 finding", cve, target, before[target])
	}
	// NVD publishes the CVE's record now (its lastModified a minute ago).
	var one struct {
		Vulnerabilities []struct {
			CVE map[string]any `json:"cve"`
		} `json:"vulnerabilities"`
	}
	if err := json.Unmarshal(nvdRecord(t, cve), &one); err != nil {
		t.Fatal(err)
	}
	rec := one.Vulnerabilities[0].CVE
	rec["lastModified"] = time.Now().UTC().Add(-time.Minute).Format("2006-01-02T15:04:05.000")
	raw, _ := json.Marshal(rec)
	if err := api20.Put(raw); err != nil {
		t.Fatal(err)
	}
	queries := len(api20.Queries)
	rr, err = f.srv.RefreshFeeds(ctx, fleet.Fence{})
	if err != nil {
		t.Fatal(err)
	}
	if rr.Summary.CVERecords != 1 || rr.Rematch.Hosts != 1 {
		t.Errorf("second refresh: %d NVD records, %d hosts rematched; want 1 and 1", rr.Summary.CVERecords, rr.Rematch.Hosts)
	}
	if len(api20.Queries) == queries || !strings.Contains(api20.Queries[queries], "lastModStartDate=") {
		t.Errorf("second refresh's NVD queries %q: want an incremental one (lastModStartDate)", api20.Queries[queries:])
	}
	for _, r := range f.findings(viewer, url.Values{}) {
		switch {
		case r.ID == target && r.Priority != risk.P3:
			t.Errorf("%s after its NVD record: %s, want P3", cve, r.Priority)
		case r.ID != target && r.Priority != before[r.ID]:
			t.Errorf("finding %d (%s) moved from %s to %s: only %s's findings should", r.ID, r.Vulnerability, before[r.ID], r.Priority, cve)
		}
	}
}
