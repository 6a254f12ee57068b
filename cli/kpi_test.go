package cli

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/kpi"
	"github.com/patchbay/patchbay/server"
)

// TestKPIRoundTrip runs quickstart (one real host with the shared feeds)
// and the KPI commands against it: their figures agree with the live
// findings, the as-of listing with the live listing, and the monthly
// report comes out whole.
func TestKPIRoundTrip(t *testing.T) {
	feeds := debianAndKEV(t)
	data := t.TempDir()
	root := fixtureHost(t, "status-bookworm-web-db", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "kpi-1")
	summary, stop := startQuickstart(t, "--data-dir", data, "quickstart", "--feeds", feeds, "--listen", "127.0.0.1:0", "--root", root,
		"--no-package-manager", "--log-level", "warn", "--label", "team=web")
	defer stop()
	url := regexp.MustCompile(`API:\s+(https://127\.0\.0\.1:\d+)/api/v1`).FindStringSubmatch(summary)
	pin := regexp.MustCompile(`pin (sha256:[0-9a-f]{64})`).FindStringSubmatch(summary)
	admin := regexp.MustCompile(`admin token \(shown once\): (pb_\S+)`).FindStringSubmatch(summary)
	if url == nil || pin == nil || admin == nil {
		t.Fatalf("no URL, pin or admin token in:\n%s", summary)
	}
	t.Setenv("PATCHBAY_SERVER", url[1])
	t.Setenv("PATCHBAY_PIN", pin[1])
	t.Setenv("PATCHBAY_TOKEN", admin[1])

	code, stdout, stderr := run(t, data, "findings", "list", "--all", "-o", "json")
	var live fleet.FindingPage
	if code != 0 || json.Unmarshal([]byte(stdout), &live) != nil || len(live.Findings) == 0 {
		t.Fatalf("findings list: %d %s %s", code, stdout, stderr)
	}
	code, stdout, stderr = run(t, data, "kpi", "-o", "json")
	var rep kpi.Report
	if code != 0 || json.Unmarshal([]byte(stdout), &rep) != nil {
		t.Fatalf("kpi -o json: %d %s %s", code, stdout, stderr)
	}
	if rep.Total.Open.Count != len(live.Findings) || rep.Total.Open.Assets != 1 || rep.Total.Coverage == nil || rep.Total.Coverage.Hosts != 1 ||
		rep.Total.Coverage.Reporting != 1 || rep.Total.Open.Buckets.D0to7 != len(live.Findings) {
		t.Errorf("kpi: %d open on %d assets (want %d on 1, all 0-7 days old), coverage %+v", rep.Total.Open.Count, rep.Total.Open.Assets, len(live.Findings), rep.Total.Coverage)
	}
	code, stdout, _ = run(t, data, "kpi", "--by", "priority", "-o", "json")
	var byPrio kpi.Report
	if code != 0 || json.Unmarshal([]byte(stdout), &byPrio) != nil || len(byPrio.Groups) == 0 {
		t.Fatalf("kpi --by priority: %d %s", code, stdout)
	}
	sum := 0
	for _, g := range byPrio.Groups {
		sum += g.Open.Count
	}
	if sum != len(live.Findings) {
		t.Errorf("kpi --by priority: %d open across the groups, want %d", sum, len(live.Findings))
	}
	code, stdout, _ = run(t, data, "kpi", "--by", "team", "-o", "csv")
	rows, err := csv.NewReader(strings.NewReader(stdout)).ReadAll()
	if code != 0 || err != nil || len(rows) != 3 || rows[0][3] != "group" || rows[1][3] != "web" || rows[2][3] != "all" {
		t.Errorf("kpi --by team -o csv: %d %v\n%s", code, err, stdout)
	}
	code, stdout, _ = runWidth(t, data, 120, "kpi", "--by", "team")
	if code != 0 || !strings.Contains(stdout, "GROUP") || !strings.Contains(stdout, "web") || !strings.Contains(stdout, "open by age: 0-7d") {
		t.Errorf("kpi table: %d\n%s", code, stdout)
	}
	code, stdout, _ = run(t, data, "kpi", "history", "--metric", "open", "--interval", "day", "--since", "3d", "-o", "json")
	var s kpi.Series
	if code != 0 || json.Unmarshal([]byte(stdout), &s) != nil || len(s.Points) < 3 || s.Points[len(s.Points)-1].Values[kpi.All] != float64(len(live.Findings)) {
		t.Errorf("kpi history: %d %s", code, stdout)
	}
	// As of now: what the live listing has; as of 2000: nothing.
	now := time.Now().UTC().Add(time.Minute).Format(time.RFC3339)
	code, stdout, _ = run(t, data, "findings", "list", "--as-of", now, "--all", "-o", "json")
	var asOf server.FindingsAsOf
	if code != 0 || json.Unmarshal([]byte(stdout), &asOf) != nil || len(asOf.Findings) != len(live.Findings) || asOf.Total != len(live.Findings) {
		t.Errorf("findings list --as-of now --all: %d, %d findings of %d, want %d", code, len(asOf.Findings), asOf.Total, len(live.Findings))
	}
	// A page: the first of the whole list, and how many there are.
	all := asOf.Findings
	code, stdout, stderr = run(t, data, "findings", "list", "--as-of", now, "--limit", "7", "-o", "json")
	asOf = server.FindingsAsOf{}
	if code != 0 || json.Unmarshal([]byte(stdout), &asOf) != nil || len(all) <= 7 || asOf.Total != len(all) || len(asOf.Findings) != 7 || asOf.Findings[6].ID != all[6].ID {
		t.Errorf("findings list --as-of now --limit 7: %d, %d of %d\n%s", code, len(asOf.Findings), asOf.Total, stderr)
	}
	code, _, stderr = run(t, data, "findings", "list", "--as-of", now, "--limit", "7")
	if want := fmt.Sprintf("7 of %d findings", len(all)); code != 0 || !strings.Contains(stderr, want) {
		t.Errorf("findings list --as-of now --limit 7 (table): %d, stderr %q, want %q", code, stderr, want)
	}
	code, stdout, _ = run(t, data, "findings", "list", "--as-of", "2000-01-01", "-o", "json")
	if code != 0 || json.Unmarshal([]byte(stdout), &asOf) != nil || len(asOf.Findings) != 0 {
		t.Errorf("findings list --as-of 2000-01-01: %d %s", code, stdout)
	}
	// Bad usage is said before any request.
	for _, args := range [][]string{{"kpi", "--by", "colour"}, {"kpi", "--since", "ninety"}, {"kpi", "history", "--metric", "speed"},
		{"findings", "list", "--as-of", "yesterday"}, {"findings", "list", "--as-of", "2026-01-01", "--sort", "due"}, {"findings", "list", "--as-of", "2026-01-01", "--limit", "0"}, {"report", "monthly", "-o", "report.html"}} {
		code, _, stderr := run(t, data, args...)
		if code != ExitError || !strings.Contains(stderr, "patchbay:") {
			t.Errorf("%v: %d %s", args, code, stderr)
		}
	}
	out := filepath.Join(t.TempDir(), "report.html")
	code, _, stderr = run(t, data, "report", "monthly", "--month", time.Now().UTC().Format("2006-01"), "--team", "web", "--output-file", out)
	b, err := os.ReadFile(out)
	if code != 0 || err != nil || !strings.Contains(string(b), "Patching report, "+time.Now().UTC().Format("January 2006")+" — team web") ||
		strings.Count(string(b), "<svg") != 4 {
		t.Errorf("report monthly: %d %v %s", code, err, stderr)
	}
}
