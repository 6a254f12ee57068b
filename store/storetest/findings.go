package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/risk"
)

// FindingStore keeps host findings and their history.
type FindingStore interface {
	Sync(ctx context.Context, hostID string, current []fleet.Finding, now time.Time, cause string) (opened, closed int, err error)
	List(ctx context.Context, hostID string) ([]fleet.Finding, error)
	Vulnerability(ctx context.Context, id string) (fleet.Vulnerability, bool, error)
	Query(ctx context.Context, f fleet.FindingFilter, hostIDs []string) (fleet.FindingPage, error)
}

// Findings runs the host findings contract: open, keep, remediate, reopen.
// open returns a store holding host "h1".
func Findings(t *testing.T, open func(t *testing.T) FindingStore) {
	ctx := context.Background()
	s := open(t)
	t1 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	t2, t3, t4 := t1.Add(24*time.Hour), t1.Add(48*time.Hour), t1.Add(72*time.Hour)
	f := func(pkg, version, vuln, prio string) fleet.Finding {
		p, err := risk.ParsePriority(prio)
		if err != nil {
			t.Fatal(err)
		}
		return fleet.Finding{Ecosystem: "Debian:12", Package: pkg, Version: version, Vulnerability: vuln, Priority: p, Fixed: "9"}
	}
	sync := func(at time.Time, fs ...fleet.Finding) (int, int) {
		t.Helper()
		o, c, err := s.Sync(ctx, "h1", fs, at, "test")
		if err != nil {
			t.Fatal(err)
		}
		return o, c
	}
	if o, c := sync(t1, f("openssl", "3.0.11-1", "CVE-A", "P2"), f("curl", "7.88.1-10", "CVE-B", "P3")); o != 2 || c != 0 {
		t.Fatalf("first sync opened %d closed %d", o, c)
	}
	// openssl upgraded to a version still affected by CVE-A: the same
	// finding, updated; curl fixed; a new one appears.
	if o, c := sync(t2, f("openssl", "3.0.13-1", "CVE-A", "P1"), f("zlib", "1.2.13", "CVE-C", "P4")); o != 1 || c != 1 {
		t.Fatalf("second sync opened %d closed %d", o, c)
	}
	if o, c := sync(t3); o != 0 || c != 2 {
		t.Fatalf("third sync opened %d closed %d", o, c)
	}
	// CVE-B comes back (a downgrade): a new finding; the closed one stays.
	if o, c := sync(t4, f("curl", "7.88.1-10", "CVE-B", "P3")); o != 1 || c != 0 {
		t.Fatalf("fourth sync opened %d closed %d", o, c)
	}
	got, err := s.List(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		vuln, version, prio string
		first, rem          time.Time
	}
	want := []row{
		{"CVE-A", "3.0.13-1", "P1", t1, t3},
		{"CVE-B", "7.88.1-10", "P3", t1, t2},
		{"CVE-C", "1.2.13", "P4", t2, t3},
		{"CVE-B", "7.88.1-10", "P3", t4, time.Time{}},
	}
	if len(got) != len(want) {
		t.Fatalf("history %+v", got)
	}
	for i, w := range want {
		g := got[i]
		if g.Vulnerability != w.vuln || g.Version != w.version || g.Priority.String() != w.prio || !g.FirstSeen.Equal(w.first) || !g.RemediatedAt.Equal(w.rem) {
			t.Errorf("row %d: %+v, want %+v", i, g, w)
		}
	}
	if _, _, err := s.Sync(ctx, "nope", nil, t4, "test"); !errors.Is(err, fleet.ErrNotFound) {
		t.Errorf("unknown host: %v", err)
	}

	t.Run("vulnerability ids without regard to case", func(t *testing.T) {
		s := open(t)
		if _, _, err := s.Sync(ctx, "h1", []fleet.Finding{f("openssl", "3.0.11-1", "CVE-2026-35189", "P2"), f("curl", "7.88.1-10", "GHSA-abcd-ef12-3456", "P3")}, t1, "test"); err != nil {
			t.Fatal(err)
		}
		for ask, want := range map[string]string{"cve-2026-35189": "CVE-2026-35189", "Cve-2026-35189": "CVE-2026-35189", "CVE-2026-35189": "CVE-2026-35189",
			"ghsa-ABCD-EF12-3456": "GHSA-abcd-ef12-3456", "GHSA-abcd-ef12-3456": "GHSA-abcd-ef12-3456"} {
			v, ok, err := s.Vulnerability(ctx, ask)
			if err != nil || !ok || v.ID != want || v.Open != 1 || v.Hosts != 1 {
				t.Errorf("Vulnerability(%q): %+v %v %v; want %s, open on h1", ask, v, ok, err, want)
			}
			page, err := s.Query(ctx, fleet.FindingFilter{Vulnerability: ask, Status: fleet.StatusAll}, nil)
			if err != nil || len(page.Findings) != 1 || page.Findings[0].Vulnerability != want {
				t.Errorf("Query(vuln %q): %+v %v; want the one finding of %s", ask, page.Findings, err, want)
			}
		}
		if _, ok, err := s.Vulnerability(ctx, "CVE-2026-3518"); ok || err != nil {
			t.Errorf("a prefix of an id matched: %v %v", ok, err)
		}
	})
}
