package scan_test

import (
	"context"
	"testing"
	"time"

	"github.com/patchbay/patchbay/advisory"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/risk"
	"github.com/patchbay/patchbay/scan"
)

func TestAddUpdatesMergesWithFeedFindings(t *testing.T) {
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	res := scan.Result{Findings: []scan.Finding{{
		Source: "osv", Ecosystem: "Debian:12", Package: "openssl", Version: "3.0.19-1~deb12u2",
		Binaries: []string{"openssl"}, Vulnerability: "CVE-2026-34180", Aliases: []string{"DEBCL-CVE-2026-34180-openssl"},
		Fixed: "3.0.22-1~deb12u2", Priority: risk.P4,
	}}}
	src := memSource{kev: map[string]advisory.KEVEntry{"CVE-2026-9076": {CVE: "CVE-2026-9076", DateAdded: now}}}
	ups := []patch.Update{{
		Ecosystem: "Debian:12", Name: "libssl3", SourceName: "openssl", SourceVersion: "3.0.19-1~deb12u2",
		Installed: "3.0.19-1~deb12u2", Candidate: "3.0.22-1~deb12u2", Origin: "bookworm-security", Pocket: "security",
		CVEs: []string{"CVE-2026-34180", "CVE-2026-9076"}, Cycle: "system",
	}}
	if err := scan.AddUpdates(context.Background(), src, &res, "apt", ups, now); err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 2 || len(res.Updates) != 1 {
		t.Fatalf("findings %+v updates %d", res.Findings, len(res.Updates))
	}
	// The KEV one is new, from apt, and first.
	kev, merged := res.Findings[0], res.Findings[1]
	if kev.Source != "apt" || kev.Vulnerability != "CVE-2026-9076" || kev.Package != "openssl" || kev.Priority != risk.P2 ||
		kev.Fixed != "3.0.22-1~deb12u2" || kev.Reasons[0] != "fixed by the bookworm-security update to 3.0.22-1~deb12u2" {
		t.Errorf("apt finding %+v", kev)
	}
	// The one the feed found too is the same finding, now from both.
	if merged.Source != "osv+apt" || merged.Vulnerability != "CVE-2026-34180" || len(merged.Binaries) != 2 {
		t.Errorf("merged finding %+v", merged)
	}
	// A second merge does not add the source twice.
	if err := scan.AddUpdates(context.Background(), src, &res, "apt", ups, now); err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Findings {
		if f.Source == "osv+apt+apt" {
			t.Errorf("source %q", f.Source)
		}
	}
}
