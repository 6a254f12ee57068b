package scan_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/advisory"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/risk"
	"github.com/patchbay/patchbay/scan"
)

// enrichedSource is memSource with CVE enrichment.
type enrichedSource struct {
	memSource
	enr map[string]advisory.Enrichment
}

func (e enrichedSource) Enrichment(_ context.Context, cves []string) (map[string]advisory.Enrichment, error) {
	out := map[string]advisory.Enrichment{}
	for _, c := range cves {
		if x, ok := e.enr[c]; ok {
			out[c] = x
		}
	}
	return out, nil
}

func osAdvisory(id, eco, name, fixed string, sev []advisory.Severity, aliases ...string) *advisory.Advisory {
	return &advisory.Advisory{ID: id, Aliases: aliases, Severity: sev, Affected: []advisory.Affected{{Ecosystem: eco, Name: name,
		Ranges: []advisory.Range{{Type: advisory.RangeEcosystem, Events: []advisory.Event{{Introduced: "0"}, {Fixed: fixed}}}}}}}
}

// TestEnrichment: an OS finding is scored by the NVD record of its CVE
// alias and its vendor's rating of that package (not another package's);
// Ubuntu's OSV priority is a vendor rating, not a vector.
func TestEnrichment(t *testing.T) {
	nvdRec := &advisory.CVERecord{ID: "CVE-2024-0001", Scores: []advisory.Score{{Source: advisory.NVDSource, Type: "Primary", Role: advisory.RoleNVD,
		Version: "3.1", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", Base: 9.8}}}
	src := enrichedSource{
		memSource: memSource{advs: []*advisory.Advisory{
			osAdvisory("DEBCL-CVE-2024-0001-openssl", "Debian:12", "openssl", "3.0.15-1~deb12u1", nil, "CVE-2024-0001"),
			osAdvisory("DEBCL-CVE-2024-0001-expat", "Debian:12", "expat", "2.5.0-1+deb12u2", nil, "CVE-2024-0001"),
			debianUrgency(osAdvisory("DEBIAN-CVE-2024-0003", "Debian:12", "zlib", "1:1.2.13.dfsg-1+deb12u1", nil, "CVE-2024-0003"), "unimportant"),
			osAdvisory("UBUNTU-CVE-2024-0002", "Ubuntu:22.04:LTS", "curl", "7.81.0-1ubuntu1.20", []advisory.Severity{{Type: advisory.SeverityUbuntu, Score: "high"}}, "CVE-2024-0002"),
		}},
		enr: map[string]advisory.Enrichment{"CVE-2024-0003": {Record: nvdRec}, "CVE-2024-0001": {Record: nvdRec, Vendors: []advisory.VendorRating{
			{CVE: "CVE-2024-0001", Vendor: "Debian", Ecosystem: "Debian:12", Package: "expat", Rating: "unimportant"}}}},
	}
	inv := inventory.Result{Packages: []inventory.Package{
		{Ecosystem: "Debian:12", Name: "libssl3", Version: "3.0.14-1~deb12u1", SourceName: "openssl", SourceVersion: "3.0.14-1~deb12u1"},
		{Ecosystem: "Debian:12", Name: "libexpat1", Version: "2.5.0-1+deb12u1", SourceName: "expat", SourceVersion: "2.5.0-1+deb12u1"},
		{Ecosystem: "Debian:12", Name: "zlib1g", Version: "1:1.2.13.dfsg-1", SourceName: "zlib", SourceVersion: "1:1.2.13.dfsg-1"},
		{Ecosystem: "Ubuntu:22.04:LTS", Name: "curl", Version: "7.81.0-1ubuntu1.15", SourceName: "curl", SourceVersion: "7.81.0-1ubuntu1.15"},
	}}
	res, err := scan.Run(context.Background(), src, inv, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]scan.Finding{}
	for _, f := range res.Findings {
		got[f.Package] = f
	}
	if f := got["openssl"]; f.Priority != risk.P2 || f.Reasons[0] != "CVSS 3.1 9.8 critical from NVD, network-reachable without privileges or user interaction" {
		t.Errorf("openssl: %s %q", f.Priority, f.Reasons)
	}
	if f := got["expat"]; f.Priority != risk.P4 || !strings.Contains(strings.Join(f.Reasons, "; "), "Debian rates it unimportant in expat") {
		t.Errorf("expat (Debian: unimportant): %s %q", f.Priority, f.Reasons)
	}
	// The urgency in Debian's own OSV records (ecosystem_specific) is
	// Debian's rating too.
	if f := got["zlib"]; f.Priority != risk.P4 || !strings.Contains(strings.Join(f.Reasons, "; "), "Debian rates it unimportant in zlib") {
		t.Errorf("zlib (DEBIAN- record, urgency unimportant): %s %q", f.Priority, f.Reasons)
	}
	if f := got["curl"]; f.Priority != risk.P3 || f.Reasons[0] != "no CVSS vector; Ubuntu priority high in curl: total impact" || len(res.Problems) != 0 {
		t.Errorf("curl (Ubuntu: high): %s %q, problems %q", f.Priority, f.Reasons, res.Problems)
	}
}

func debianUrgency(a *advisory.Advisory, urgency string) *advisory.Advisory {
	a.Affected[0].SeverityWord = urgency
	return a
}

// TestRedHatRating: Red Hat's severity (ecosystem "Red Hat", from its CSAF
// documents) rates the findings of the RPM distributions built from Red
// Hat's sources, in the package it names only, and never a Debian one.
func TestRedHatRating(t *testing.T) {
	rh := func(pkg, w string) advisory.VendorRating {
		return advisory.VendorRating{CVE: "CVE-2024-1086", Vendor: "Red Hat", Ecosystem: "Red Hat", Package: pkg, Rating: w}
	}
	src := enrichedSource{
		memSource: memSource{advs: []*advisory.Advisory{
			osAdvisory("RLSA-2024:1249", "Rocky Linux:9", "kernel", "5.14.0-362.24.1.el9_3", nil, "CVE-2024-1086"),
			osAdvisory("ALSA-2024:1249", "AlmaLinux:9", "kernel-rt", "5.14.0-362.24.1.el9_3", nil, "CVE-2024-1086"),
			osAdvisory("DEBCL-CVE-2024-1086-linux", "Debian:12", "kernel", "6.1.76-1", nil, "CVE-2024-1086"),
		}},
		enr: map[string]advisory.Enrichment{"CVE-2024-1086": {Vendors: []advisory.VendorRating{rh("kernel", "important"), rh("kernel-core", "low")}}},
	}
	inv := inventory.Result{Packages: []inventory.Package{
		{Ecosystem: "Rocky Linux:9", Name: "kernel", Version: "5.14.0-362.8.1.el9_3"},
		{Ecosystem: "AlmaLinux:9", Name: "kernel-rt", Version: "5.14.0-362.8.1.el9_3"},
		{Ecosystem: "Debian:12", Name: "kernel", Version: "6.1.66-1", SourceName: "kernel", SourceVersion: "6.1.66-1"},
	}}
	res, err := scan.Run(context.Background(), src, inv, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]scan.Finding{}
	for _, f := range res.Findings {
		got[f.Ecosystem+" "+f.Package] = f
	}
	if len(got) != 3 {
		t.Fatalf("findings %v, want the three kernels", got)
	}
	if f := got["Rocky Linux:9 kernel"]; f.Priority != risk.P3 || f.Reasons[0] != "no CVSS vector; Red Hat severity important in kernel: total impact" {
		t.Errorf("Rocky kernel (Red Hat: Important): %s %q", f.Priority, f.Reasons)
	}
	for _, k := range []string{"AlmaLinux:9 kernel-rt", "Debian:12 kernel"} {
		if f := got[k]; f.Priority != risk.P4 || strings.Contains(strings.Join(f.Reasons, "; "), "Red Hat") {
			t.Errorf("%s (no Red Hat rating of it): %s %q", k, f.Priority, f.Reasons)
		}
	}
}
