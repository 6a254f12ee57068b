package server_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/kpi"
	"github.com/patchbay/patchbay/risk"
)

// TestKPIRoutesAndGauges: 55 teams of one host each with one open P2
// finding; the API cuts by team, refuses a bad cut naming the parameter,
// and the gauges keep 50 teams by name and sum the rest as (other).
func TestKPIRoutesAndGauges(t *testing.T) {
	f := newFixture(t, "sqlite", nil)
	ctx := context.Background()
	now := time.Now()
	for i := range 55 {
		id := fmt.Sprintf("h%02d", i)
		if err := f.db.Fleet.UpsertHost(ctx, fleet.Host{ID: id, MachineID: "m" + id, Hostname: id, Ecosystem: "Debian:12",
			Labels: map[string]string{"team": fmt.Sprintf("t%02d", i)}, LastSeen: now}); err != nil {
			t.Fatal(err)
		}
		fd := fleet.Finding{Ecosystem: "Debian:12", Package: "openssl", Vulnerability: "CVE-2026-0001", Version: "1", Priority: risk.P2, Fixed: "2",
			SLA: 30 * 24 * time.Hour, State: fleet.StateOpen, Exploitation: risk.ExploitNone, Impact: "partial"}
		if _, _, err := f.db.Findings.Sync(ctx, id, []fleet.Finding{fd}, now.Add(-time.Hour), "test"); err != nil {
			t.Fatal(err)
		}
	}
	viewer := f.api(auth.Viewer)
	code, b := f.do("GET", api.Prefix+"/kpi?by=team&since=30d", viewer, nil)
	var rep kpi.Report
	f.decode(b, &rep)
	if code != 200 || len(rep.Groups) != 55 || rep.Total.Open.Count != 55 || rep.Groups[0].Group != "t00" || rep.Groups[0].Open.Count != 1 {
		t.Fatalf("kpi by team: %d %d groups, %d open\n%.300s", code, len(rep.Groups), rep.Total.Open.Count, b)
	}
	code, b = f.do("GET", api.Prefix+"/kpi?by=colour", viewer, nil)
	if code != 400 || !strings.Contains(string(b), `"field":"query.by"`) {
		t.Errorf("kpi by colour: %d %s", code, b)
	}
	code, b = f.do("GET", api.Prefix+"/kpi/findings", viewer, nil)
	if code != 400 || !strings.Contains(string(b), "as_of") {
		t.Errorf("kpi/findings without as_of: %d %s", code, b)
	}
	code, b = f.do("GET", api.Prefix+"/kpi/history?metric=open&interval=day&since=2d", viewer, nil)
	var s kpi.Series
	f.decode(b, &s)
	if code != 200 || len(s.Points) < 2 || s.Points[len(s.Points)-1].Values[kpi.All] != 55 {
		t.Errorf("kpi history: %d %s", code, b)
	}
	code, b = f.do("GET", "/metrics", "", nil)
	m := string(b)
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	teams := map[string]bool{}
	for _, g := range regexp.MustCompile(`patchbay_kpi_open_exposure\{priority="P2",team="([^"]+)"\} (\d+)`).FindAllStringSubmatch(m, -1) {
		teams[g[1]] = true
		want := "1"
		if g[1] == "(other)" {
			want = "5"
		}
		if g[2] != want {
			t.Errorf("open exposure of team %s: %s, want %s", g[1], g[2], want)
		}
	}
	if len(teams) != 51 || !teams["(other)"] || !teams["t49"] || teams["t50"] {
		t.Errorf("open exposure gauges of %d teams (want t00..t49 and (other)):\n%v", len(teams), teams)
	}
	if !strings.Contains(m, `patchbay_kpi_coverage{team="t00"} 1`) {
		t.Errorf("no coverage gauge of t00")
	}
}
