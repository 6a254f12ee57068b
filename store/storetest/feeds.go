// Package storetest is the contract every patchbay store passes: the same
// tests run against SQLite always and against PostgreSQL where a server is
// at hand (in CI, the machine's).
package storetest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/patchbay/patchbay/advisory"
	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/match"
	"github.com/patchbay/patchbay/scan"
)

// FeedStore is the advisory index as the importer and the scanner see it.
type FeedStore interface {
	feeds.Store
	scan.Source
}

func adv(id, modified, eco, name, fixed string) *advisory.Advisory {
	m, _ := time.Parse(time.RFC3339Nano, modified)
	return &advisory.Advisory{
		ID: id, Aliases: []string{"CVE-2024-0001"}, Modified: m, Summary: "s " + id,
		Severity: []advisory.Severity{{Type: "CVSS_V3", Score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}},
		Affected: []advisory.Affected{{Ecosystem: eco, Name: name, Versions: []string{"1.0"},
			Ranges: []advisory.Range{{Type: advisory.RangeEcosystem, Events: []advisory.Event{{Introduced: "0"}, {Fixed: fixed}}}}}},
	}
}

func record(a *advisory.Advisory, collection string) feeds.Record {
	return feeds.Record{Advisory: a, Hash: sha256.Sum256([]byte(a.ID + a.Modified.String())), Collection: collection}
}

func ids(advs []*advisory.Advisory) []string {
	out := make([]string, 0, len(advs))
	for _, a := range advs {
		out = append(out, a.ID)
	}
	sort.Strings(out)
	return out
}

// Feeds runs the advisory index contract against stores made by open (a
// fresh, empty store each call).
func Feeds(t *testing.T, open func(t *testing.T) FeedStore) {
	ctx := context.Background()

	t.Run("cve enrichment", func(t *testing.T) { enrichment(t, open) })

	t.Run("empty", func(t *testing.T) {
		s := open(t)
		if v, err := s.RecordVersions(ctx); err != nil || len(v) != 0 {
			t.Errorf("versions %v %v", v, err)
		}
		if src, err := s.Sources(ctx); err != nil || len(src) != 0 {
			t.Errorf("sources %v %v", src, err)
		}
		if a, err := s.Advisories(ctx, []match.Key{{Ecosystem: "PyPI", Name: "x"}}); err != nil || len(a) != 0 {
			t.Errorf("advisories %v %v", a, err)
		}
	})

	t.Run("osv upsert, look-up, replace, delete", func(t *testing.T) {
		s := open(t)
		a1 := adv("PYSEC-1", "2024-01-02T03:04:05.123456789Z", "PyPI", "django", "3.2.1")
		a2 := adv("GO-1", "2024-02-01T00:00:00Z", "Go", "example.com/m", "1.2.3")
		now := time.Date(2026, 11, 22, 10, 0, 0, 123000000, time.UTC)
		err := s.Apply(ctx, feeds.Batch{
			Upserts: []feeds.Record{record(a1, "osv/PyPI"), record(a2, "osv/Go")},
			Sources: []feeds.SourceState{{Source: "osv/PyPI", Origin: "all.zip", ImportedAt: now, ETag: `"e1"`}},
		})
		if err != nil {
			t.Fatal(err)
		}
		v, err := s.RecordVersions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := record(a1, "osv/PyPI")
		if got := v["PYSEC-1"]; !got.Modified.Equal(a1.Modified) || got.Hash != want.Hash || got.Collection != "osv/PyPI" || len(v) != 2 {
			t.Errorf("record versions %+v (nanoseconds must survive)", v)
		}
		got, err := s.Advisories(ctx, []match.Key{{Ecosystem: "PyPI", Name: "django"}, {Ecosystem: "Go", Name: "example.com/m"}, {Ecosystem: "PyPI", Name: "django"}})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(ids(got)) != "[GO-1 PYSEC-1]" {
			t.Fatalf("look-up %v", ids(got))
		}
		for _, g := range got {
			w := a1
			if g.ID == "GO-1" {
				w = a2
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("stored advisory differs:\n got %+v\nwant %+v", g, w)
			}
		}
		srcs, err := s.Sources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(srcs) != 1 || srcs[0].Records != 1 || !srcs[0].DataTime.Equal(a1.Modified) || !srcs[0].ImportedAt.Equal(now) || srcs[0].ETag != `"e1"` {
			t.Errorf("sources %+v", srcs)
		}
		counts, err := s.EcosystemCounts(ctx)
		if err != nil || counts["PyPI"] != 1 || counts["Go"] != 1 {
			t.Errorf("counts %v %v", counts, err)
		}
		if c, err := s.CollectionIDs(ctx, "osv/Go"); err != nil || fmt.Sprint(c) != "[GO-1]" {
			t.Errorf("collection %v %v", c, err)
		}

		// Replacing a record replaces its affected keys.
		moved := adv("PYSEC-1", "2024-03-01T00:00:00Z", "PyPI", "flask", "2.0")
		if err := s.Apply(ctx, feeds.Batch{Upserts: []feeds.Record{record(moved, "osv/PyPI")}}); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Advisories(ctx, []match.Key{{Ecosystem: "PyPI", Name: "django"}}); len(got) != 0 {
			t.Errorf("old key still finds %v", ids(got))
		}
		if got, _ := s.Advisories(ctx, []match.Key{{Ecosystem: "PyPI", Name: "flask"}}); fmt.Sprint(ids(got)) != "[PYSEC-1]" {
			t.Errorf("new key finds %v", ids(got))
		}

		if err := s.Apply(ctx, feeds.Batch{Deletes: []string{"GO-1"}}); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Advisories(ctx, []match.Key{{Ecosystem: "Go", Name: "example.com/m"}}); len(got) != 0 {
			t.Errorf("deleted advisory found: %v", ids(got))
		}
		if counts, _ := s.EcosystemCounts(ctx); counts["Go"] != 0 {
			t.Errorf("counts after delete %v", counts)
		}

		if err := s.UpdateValidators(ctx, feeds.SourceState{Source: "osv/PyPI", Origin: "http://m/osv/PyPI/all.zip", ETag: `"e2"`, LastModified: "Mon, 01 Jan 2024 00:00:00 GMT"}); err != nil {
			t.Fatal(err)
		}
		srcs, _ = s.Sources(ctx)
		if srcs[0].ETag != `"e2"` || srcs[0].LastModified == "" || srcs[0].Origin != "http://m/osv/PyPI/all.zip" || srcs[0].Records != 1 {
			t.Errorf("validators %+v", srcs[0])
		}
	})

	t.Run("kev and epss replace and look-up", func(t *testing.T) {
		s := open(t)
		day := func(d string) time.Time { t, _ := time.Parse(time.DateOnly, d); return t }
		cat := &advisory.KEVCatalog{Version: "1", Entries: []advisory.KEVEntry{
			{CVE: "CVE-2024-0001", Vendor: "v", Product: "p", Name: "n", DateAdded: day("2024-03-01"), DueDate: day("2024-03-22"), Ransomware: true},
			{CVE: "CVE-2024-0002", DateAdded: day("2024-04-01")},
		}}
		if err := s.Apply(ctx, feeds.Batch{KEV: cat, KEVState: feeds.SourceState{Source: "kev", Records: 2, ImportedAt: time.Now()}}); err != nil {
			t.Fatal(err)
		}
		var scores []advisory.EPSSScore
		var cves []string
		for i := 0; i < 1200; i++ { // more than one query chunk
			c := fmt.Sprintf("CVE-2024-%05d", i+10)
			scores = append(scores, advisory.EPSSScore{CVE: c, Probability: float64(i) / 2000, Percentile: float64(i) / 1200})
			cves = append(cves, c)
		}
		if err := s.Apply(ctx, feeds.Batch{EPSS: &advisory.EPSSFile{Scores: scores}, EPSSState: feeds.SourceState{Source: "epss", Records: len(scores), ImportedAt: time.Now()}}); err != nil {
			t.Fatal(err)
		}
		kev, epss, err := s.Exploitation(ctx, append(cves, "CVE-2024-0001", "CVE-2099-9999"))
		if err != nil {
			t.Fatal(err)
		}
		if len(kev) != 1 || !reflect.DeepEqual(kev["CVE-2024-0001"], cat.Entries[0]) {
			t.Errorf("kev %+v", kev)
		}
		if len(epss) != 1200 || epss["CVE-2024-00609"].Probability != 599.0/2000 {
			t.Errorf("epss: %d scores, %+v", len(epss), epss["CVE-2024-00609"])
		}
		// A replacement drops what the new catalog lacks.
		if err := s.Apply(ctx, feeds.Batch{KEV: &advisory.KEVCatalog{Entries: cat.Entries[1:]}, KEVState: feeds.SourceState{Source: "kev", Records: 1, ImportedAt: time.Now()}}); err != nil {
			t.Fatal(err)
		}
		kev, _, err = s.Exploitation(ctx, []string{"CVE-2024-0001", "CVE-2024-0002"})
		if err != nil || len(kev) != 1 || !kev["CVE-2024-0002"].DueDate.IsZero() {
			t.Errorf("after replace %+v %v", kev, err)
		}
		srcs, _ := s.Sources(ctx)
		if len(srcs) != 2 || srcs[0].Source != "epss" || srcs[1].Source != "kev" || srcs[1].Records != 1 {
			t.Errorf("sources %+v", srcs)
		}
	})
	t.Run("one batch holds OSV, KEV and EPSS", func(t *testing.T) {
		s := open(t)
		now := time.Now()
		err := s.Apply(ctx, feeds.Batch{
			Upserts:   []feeds.Record{record(adv("GO-9", "2024-02-01T00:00:00Z", "Go", "example.com/m", "1.2.3"), "osv/Go")},
			Sources:   []feeds.SourceState{{Source: "osv/Go", ImportedAt: now}},
			KEV:       &advisory.KEVCatalog{Entries: []advisory.KEVEntry{{CVE: "CVE-2024-0009"}}},
			KEVState:  feeds.SourceState{Source: "kev", Records: 1, ImportedAt: now},
			EPSS:      &advisory.EPSSFile{Scores: []advisory.EPSSScore{{CVE: "CVE-2024-0009", Probability: 0.5}}},
			EPSSState: feeds.SourceState{Source: "epss", Records: 1, ImportedAt: now},
		})
		if err != nil {
			t.Fatal(err)
		}
		srcs, err := s.Sources(ctx)
		if err != nil || len(srcs) != 3 || srcs[0].Source != "epss" || srcs[1].Source != "kev" || srcs[2].Source != "osv/Go" || srcs[2].Records != 1 {
			t.Errorf("sources %+v %v", srcs, err)
		}
		kev, epss, err := s.Exploitation(ctx, []string{"CVE-2024-0009"})
		if err != nil || len(kev) != 1 || epss["CVE-2024-0009"].Probability != 0.5 {
			t.Errorf("exploitation %+v %+v %v", kev, epss, err)
		}
	})
}
