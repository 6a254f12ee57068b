package nvd_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/advisory"
	"github.com/patchbay/patchbay/feeds/nvd"
	"github.com/patchbay/patchbay/feeds/nvd/nvdtest"
	"github.com/patchbay/patchbay/internal/sharedtest"
)

func sample(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(sharedtest.Dir(t, "feeds/nvd"), "nvdcve-sample.json"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func byID(recs []advisory.CVERecord) map[string]advisory.CVERecord {
	out := map[string]advisory.CVERecord{}
	for _, r := range recs {
		out[r.ID] = r
	}
	return out
}

// TestParseSample reads the shared sample of real NVD records: the counts
// its README states, and the scores, roles, CWEs and times of records
// checked by hand against the JSON.
func TestParseSample(t *testing.T) {
	p, err := nvd.Parse(strings.NewReader(string(sample(t))))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Records) != 64 || p.TotalResults != 64 {
		t.Fatalf("%d records, totalResults %d; want 64", len(p.Records), p.TotalResults)
	}
	versions := map[string]int{}
	nvdScored, none := 0, 0
	for _, r := range p.Records {
		seen := map[string]bool{}
		for _, s := range r.Scores {
			if !seen[s.Version] {
				seen[s.Version] = true
				versions[s.Version]++
			}
		}
		if len(r.Scores) == 0 {
			none++
		}
		for _, s := range r.Scores {
			if s.Role == advisory.RoleNVD && s.Type == "Primary" {
				nvdScored++
				break
			}
		}
	}
	// The README's table: 51 with v3.1, 9 with v4.0, 10 with a v2 metric,
	// 8 without CVSS, 27 with an NVD Primary score.
	if versions["3.1"] != 51 || versions["4.0"] != 9 || versions["2.0"] != 10 || versions["3.0"] != 0 || none != 8 || nvdScored != 27 {
		t.Errorf("versions %v, %d without CVSS, %d NVD-scored; want 3.1:51 4.0:9 2.0:10, 8, 27", versions, none, nvdScored)
	}
	recs := byID(p.Records)
	r := recs["CVE-2020-0601"]
	if r.Assigner != "secure@microsoft.com" || r.Status != "Modified" || len(r.CWEs) != 1 || r.CWEs[0] != "CWE-295" ||
		r.Published != time.Date(2020, 1, 14, 23, 15, 30, 207e6, time.UTC) || r.LastModified != time.Date(2025, 10, 21, 20, 17, 41, 713e6, time.UTC) {
		t.Errorf("CVE-2020-0601: %+v", r)
	}
	want := []advisory.Score{
		{Source: "nvd@nist.gov", Type: "Primary", Role: advisory.RoleNVD, Version: "3.1", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:N", Base: 8.1},
		{Source: advisory.CISAADPSource, Type: "Secondary", Role: advisory.RoleADP, Version: "3.1", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:N", Base: 8.1},
		{Source: "nvd@nist.gov", Type: "Primary", Role: advisory.RoleNVD, Version: "2.0", Vector: "AV:N/AC:M/Au:N/C:P/I:P/A:N", Base: 5.8},
	}
	if len(r.Scores) != len(want) {
		t.Fatalf("CVE-2020-0601 scores %+v", r.Scores)
	}
	for i := range want {
		if r.Scores[i] != want[i] {
			t.Errorf("CVE-2020-0601 score %d: %+v, want %+v", i, r.Scores[i], want[i])
		}
	}
	// Oracle scores its own CVEs as Primary: still the CNA's.
	for _, s := range recs["CVE-2024-20918"].Scores {
		if strings.HasPrefix(s.Source, "secalert_us@oracle.com") && s.Role != advisory.RoleCNA {
			t.Errorf("CVE-2024-20918: Oracle's score has role %s, want cna", s.Role)
		}
	}
	// CVSS v4.0 only, from the CNA.
	if s := recs["CVE-2025-31115"].Scores; len(s) == 0 || s[0].Version != "4.0" || s[0].Role != advisory.RoleCNA {
		t.Errorf("CVE-2025-31115 scores %+v", s)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ name, doc, want string }{
		{"osv", `{"id": "GHSA-1", "modified": "2024-01-01T00:00:00Z"}`, "not an NVD CVE API 2.0 document"},
		{"other format", `{"format": "NVD_CPE", "vulnerabilities": []}`, `format "NVD_CPE"`},
		{"bad id", `{"format": "NVD_CVE", "vulnerabilities": [{"cve": {"id": "CVE-24-1", "lastModified": "2024-01-01T00:00:00.000"}}]}`,
			`vulnerabilities[0] (CVE-24-1): id "CVE-24-1" is not a CVE id`},
		{"bad time", `{"format": "NVD_CVE", "vulnerabilities": [{"cve": {"id": "CVE-2024-0001", "lastModified": "yesterday"}}]}`,
			`vulnerabilities[0] (CVE-2024-0001): lastModified: "yesterday" is not an NVD time`},
		{"no vector", `{"format": "NVD_CVE", "vulnerabilities": [{"cve": {"id": "CVE-2024-0001", "lastModified": "2024-01-01T00:00:00.000",
			"metrics": {"cvssMetricV31": [{"source": "nvd@nist.gov", "type": "Primary", "cvssData": {"baseScore": 9.8}}]}}}]}`,
			`metrics.cvssMetricV31[0] (nvd@nist.gov): no vectorString`},
		{"truncated", `{"format": "NVD_CVE", "vulnerabilities": [{"cve": {"id": "CVE-2024-0001"`, "vulnerabilities[0]"},
	} {
		_, err := nvd.Parse(strings.NewReader(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := nvd.Parse(strings.NewReader(`{"id": "x"}`)); !errors.Is(err, nvd.ErrNotNVD) {
		t.Errorf("OSV record: %v, want ErrNotNVD", err)
	}
}

// TestFetchPaged fetches the sample from a loopback server that pages it
// as the API does: every record once, in pages of PageSize; then only
// what changed since a time, in windows of at most 120 days.
func TestFetchPaged(t *testing.T) {
	api, err := nvdtest.NewAPIServer(sample(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	defer srv.Close()
	c := &nvd.Client{URL: srv.URL, HTTP: srv.Client(), PageSize: 10}
	ctx := context.Background()
	all, err := c.Fetch(ctx, time.Time{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 64 || len(byID(all)) != 64 || api.Requests != 7 {
		t.Fatalf("%d records (%d distinct) in %d requests; want 64 in 7 pages of 10", len(all), len(byID(all)), api.Requests)
	}
	// Since 2026-06-01: the records the sample has modified in June 2026
	// (the README's newest is 2026-06-17T10:59:56.720).
	since := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	until := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC) // 183 days: two windows
	api.Requests, api.Queries = 0, nil
	recent, err := c.Fetch(ctx, since, until)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, r := range all {
		if !r.LastModified.Before(since) {
			want++
		}
	}
	if len(recent) != want || want == 0 {
		t.Errorf("since %s: %d records, want %d", since, len(recent), want)
	}
	for _, r := range recent {
		if r.LastModified.Before(since) {
			t.Errorf("%s modified %s, before %s", r.ID, r.LastModified, since)
		}
	}
	if len(api.Queries) < 2 || !strings.Contains(api.Queries[0], "lastModStartDate=2026-06-01T00%3A00%3A00.000Z") {
		t.Errorf("queries %q: want two windows from lastModStartDate=2026-06-01", api.Queries)
	}
	// An empty range asks nothing.
	api.Requests = 0
	if recs, err := c.Fetch(ctx, since, since.Add(-time.Hour)); err != nil || len(recs) != 0 || api.Requests != 0 {
		t.Errorf("empty range: %d records, %d requests, %v", len(recs), api.Requests, err)
	}
}

// TestFetchRefused: an API refusal is an error naming the status and the
// message NVD sends with it.
func TestFetchRefused(t *testing.T) {
	api, err := nvdtest.NewAPIServer([]byte(`{"vulnerabilities": []}`))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	defer srv.Close()
	c := &nvd.Client{URL: srv.URL + "?lastModStartDate=2024-01-01T00:00:00.000Z&x=", HTTP: srv.Client()}
	_, err = c.Fetch(context.Background(), time.Time{}, time.Now())
	if err == nil || !strings.Contains(err.Error(), "404 Not Found: Both lastModStartDate and lastModEndDate are required") {
		t.Errorf("refused request: %v", err)
	}
}

// TestFetchRetriesWhenBusy: a 503 (NVD under load) is tried again after a
// pause; the fetch then completes.
func TestFetchRetriesWhenBusy(t *testing.T) {
	api, err := nvdtest.NewAPIServer(sample(t))
	if err != nil {
		t.Fatal(err)
	}
	failures := 1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failures > 0 {
			failures--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		api.ServeHTTP(w, r)
	}))
	defer srv.Close()
	c := &nvd.Client{URL: srv.URL, HTTP: srv.Client()}
	recs, err := c.Fetch(context.Background(), time.Time{}, time.Now())
	if err != nil || len(recs) != 64 || api.Requests != 1 {
		t.Errorf("after a 503: %d records, %d requests served, %v", len(recs), api.Requests, err)
	}
}
