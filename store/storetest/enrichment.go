package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/patchbay/patchbay/advisory"
	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/match"
	"github.com/patchbay/patchbay/scan"
)

// enrichment checks NVD records, vendor ratings and the CVE → package
// look-up of re-decisions.
func enrichment(t *testing.T, open func(t *testing.T) FeedStore) {
	ctx := context.Background()
	s := open(t)
	es, ok := s.(scan.EnrichmentSource)
	if !ok {
		t.Fatalf("%T is no scan.EnrichmentSource", s)
	}
	a := adv("DEBCL-CVE-2024-0001-expat", "2024-01-01T00:00:00Z", "Debian:12", "expat", "2.5.0-1+deb12u1")
	b := adv("GHSA-xxxx", "2024-01-01T00:00:00Z", "PyPI", "django", "4.2")
	b.Aliases = []string{"CVE-2024-0002"}
	mod := time.Date(2024, 2, 1, 10, 0, 0, 123e6, time.UTC)
	rec := advisory.CVERecord{ID: "CVE-2024-0001", Assigner: "cve@mitre.org", Status: "Analyzed", LastModified: mod, CWEs: []string{"CWE-190"},
		Scores: []advisory.Score{{Source: advisory.NVDSource, Type: "Primary", Role: advisory.RoleNVD, Version: "3.1",
			Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", Base: 9.8}}}
	batch := feeds.Batch{
		Upserts:    []feeds.Record{record(a, "osv/Debian"), record(b, "osv/PyPI")},
		CVERecords: []advisory.CVERecord{rec}, CVEState: feeds.SourceState{Source: feeds.SourceNVD, Origin: "nvd.json", ImportedAt: mod},
		Vendor:      []advisory.VendorRating{{CVE: "CVE-2024-0001", Vendor: "Debian", Ecosystem: "Debian:12", Package: "expat", Rating: "unimportant"}},
		VendorState: feeds.SourceState{Source: feeds.SourceVendorPrefix + "Debian", Origin: "tracker.json", ImportedAt: mod, Records: 1},
	}
	if err := s.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}
	times, err := s.CVERecordTimes(ctx)
	if err != nil || len(times) != 1 || !times["CVE-2024-0001"].Equal(mod) {
		t.Errorf("record times %v %v", times, err)
	}
	enr, err := es.Enrichment(ctx, []string{"CVE-2024-0001", "CVE-2024-0002"})
	if err != nil {
		t.Fatal(err)
	}
	got := enr["CVE-2024-0001"]
	if len(enr) != 1 || got.Record == nil || got.Record.Scores[0] != rec.Scores[0] || got.Record.CWEs[0] != "CWE-190" ||
		len(got.Vendors) != 1 || got.Vendors[0] != batch.Vendor[0] {
		t.Errorf("enrichment %+v", enr)
	}
	keys, err := s.KeysOfCVEs(ctx, []string{"CVE-2024-0002"})
	if err != nil || len(keys) != 1 || keys[0] != (match.Key{Ecosystem: "PyPI", Name: "django"}) {
		t.Errorf("keys of CVE-2024-0002: %v %v", keys, err)
	}
	for _, src := range []string{feeds.SourceNVD, "vendor/Debian"} {
		found := false
		srcs, _ := s.Sources(ctx)
		for _, st := range srcs {
			if st.Source == src {
				found = st.Records == 1
			}
		}
		if !found {
			t.Errorf("no %s source with 1 record in %+v", src, srcs)
		}
	}
	// Deleting the advisory drops its CVEs from the look-up; a new
	// vendor export replaces the vendor's ratings.
	if err := s.Apply(ctx, feeds.Batch{Deletes: []string{b.ID}, Vendor: []advisory.VendorRating{},
		VendorState: feeds.SourceState{Source: "vendor/Debian", Origin: "empty.json"}}); err != nil {
		t.Fatal(err)
	}
	if keys, err := s.KeysOfCVEs(ctx, []string{"CVE-2024-0002"}); err != nil || len(keys) != 0 {
		t.Errorf("keys of a deleted advisory's CVE: %v %v", keys, err)
	}
	if rs, err := s.VendorRatings(ctx, "Debian"); err != nil || len(rs) != 0 {
		t.Errorf("ratings after an empty export: %v %v", rs, err)
	}
}
