package fleet_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/inventory/collect"
	"github.com/patchbay/patchbay/match"
	"github.com/patchbay/patchbay/store/sqlite"
)

// TestIngestClosesRemediatedFindings: a real web/db host's inventory opens
// its findings; upgrading openssl to the fixed version closes openssl's
// findings as remediated, and only those.
func TestIngestClosesRemediatedFindings(t *testing.T) {
	ctx := context.Background()
	feed := filepath.Join(sharedtest.Dir(t, "feeds/osv/Debian"), "all.zip")
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "patchbay.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := (&feeds.Importer{Store: db}).ImportPaths(ctx, []string{feed}); err != nil {
		t.Fatal(err)
	}
	inv, err := collect.Collect(ctx, collect.Options{Root: sharedtest.DebianRoot(t, "status-bookworm-web-db")})
	if err != nil {
		t.Fatal(err)
	}
	host := fleet.Host{ID: "web-db-1", MachineID: "m", Ecosystem: "Debian:12"}
	if err := db.Fleet.UpsertHost(ctx, host); err != nil {
		t.Fatal(err)
	}
	t1 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	r, err := matcher(db).Ingest(ctx, host, inv.Packages, t1)
	if err != nil || !r.Changed || r.Opened == 0 || r.Opened != r.Findings || r.Closed != 0 {
		t.Fatalf("first ingest %+v %v", r, err)
	}
	hist, _ := db.Findings.List(ctx, host.ID)
	openssl := 0
	for _, f := range hist {
		if f.Package == "openssl" {
			openssl++
		}
	}
	if openssl == 0 {
		t.Fatal("the fixture's openssl has no findings")
	}
	// The same inventory again: nothing to do.
	if r, err := matcher(db).Ingest(ctx, host, inv.Packages, t1.Add(time.Hour)); err != nil || r.Changed {
		t.Fatalf("unchanged ingest %+v %v", r, err)
	}
	// Upgrade every binary of openssl to a version past all its fixes.
	up := append([]inventory.Package(nil), inv.Packages...)
	for i := range up {
		if up[i].SourceName == "openssl" {
			up[i].Version, up[i].SourceVersion = "3.9.99-1", "3.9.99-1"
		}
	}
	t2 := t1.Add(48 * time.Hour)
	r, err = matcher(db).Ingest(ctx, host, up, t2)
	if err != nil || r.Closed != openssl || r.Opened != 0 || r.Findings != len(hist)-openssl {
		t.Fatalf("after the upgrade %+v %v (openssl had %d findings of %d)", r, err, openssl, len(hist))
	}
	hist, _ = db.Findings.List(ctx, host.ID)
	for _, f := range hist {
		closed := !f.RemediatedAt.IsZero()
		if closed != (f.Package == "openssl") || (closed && !f.RemediatedAt.Equal(t2)) || !f.FirstSeen.Equal(t1) {
			t.Errorf("%s %s: first seen %v, remediated %v", f.Package, f.Vulnerability, f.FirstSeen, f.RemediatedAt)
		}
	}
}

// TestRematchOnlyTheHostsANewAdvisoryNames: after importing one new
// advisory, only the host that has its package is rematched, and
// withdrawing the advisory closes the finding again.
func TestRematchOnlyTheHostsANewAdvisoryNames(t *testing.T) {
	ctx := context.Background()
	feed := filepath.Join(sharedtest.Dir(t, "feeds/osv/Debian"), "all.zip")
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "patchbay.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	im := &feeds.Importer{Store: db}
	if _, err := im.ImportPaths(ctx, []string{feed}); err != nil {
		t.Fatal(err)
	}
	t1 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for id, fixture := range map[string]string{"web": "status-bookworm-web-db", "base": "status-bookworm-minbase"} {
		inv, err := collect.Collect(ctx, collect.Options{Root: sharedtest.DebianRoot(t, fixture)})
		if err != nil {
			t.Fatal(err)
		}
		h := fleet.Host{ID: id, MachineID: id, Ecosystem: "Debian:12"}
		if err := db.Fleet.UpsertHost(ctx, h); err != nil {
			t.Fatal(err)
		}
		if _, err := matcher(db).Ingest(ctx, h, inv.Packages, t1); err != nil {
			t.Fatal(err)
		}
	}
	record := func(withdrawn string) string {
		p := filepath.Join(t.TempDir(), "PB-2026-0001.json")
		w := ""
		if withdrawn != "" {
			w = `"withdrawn": "` + withdrawn + `",`
		}
		os.WriteFile(p, []byte(`{"id": "PB-2026-0001", "modified": "`+time.Now().UTC().Format(time.RFC3339Nano)+`", `+w+`
			"aliases": ["CVE-2026-99999"],
			"affected": [{"package": {"ecosystem": "Debian:12", "name": "nginx"},
			  "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "9.9"}]}]}]}`), 0o644)
		return p
	}
	sum, err := im.ImportPaths(ctx, []string{record("")})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Changed) != 1 || sum.Changed[0] != (match.Key{Ecosystem: "Debian:12", Name: "nginx"}) {
		t.Fatalf("changed keys %v", sum.Changed)
	}
	t2 := t1.Add(24 * time.Hour)
	before, _ := db.Findings.List(ctx, "web")
	r, err := matcher(db).Rematch(ctx, sum.Changed, t2, fleet.Fence{}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if r.Hosts != 1 || r.Opened != 1 || r.Closed != 0 {
		t.Fatalf("rematch %+v: only the nginx host, one new finding", r)
	}
	after, _ := db.Findings.List(ctx, "web")
	if len(after) != len(before)+1 {
		t.Fatalf("%d findings before, %d after: the rematch touched other packages' findings", len(before), len(after))
	}
	if h, _ := db.Fleet.HostSummary(ctx, "web"); h.OpenTotal() != len(after) {
		t.Errorf("open counts %v, %d open findings", h.Open, len(after))
	}
	// Withdrawn: the record's keys are still known, the finding closes.
	sum, err = im.ImportPaths(ctx, []string{record(time.Now().UTC().Format(time.RFC3339))})
	if err != nil || sum.Removed != 1 || len(sum.Changed) != 1 {
		t.Fatalf("withdrawal %+v %v", sum, err)
	}
	t3 := t2.Add(24 * time.Hour)
	r, err = matcher(db).Rematch(ctx, sum.Changed, t3, fleet.Fence{}, "test")
	if err != nil || r.Hosts != 1 || r.Closed != 1 || r.Opened != 0 {
		t.Fatalf("after withdrawal %+v %v", r, err)
	}
	hist, _ := db.Findings.List(ctx, "web")
	found := false
	for _, f := range hist {
		if f.Vulnerability == "CVE-2026-99999" {
			found = f.Package == "nginx" && f.FirstSeen.Equal(t2) && f.RemediatedAt.Equal(t3)
		}
	}
	if !found {
		t.Error("the withdrawn advisory's finding is not closed at the withdrawal")
	}
}

// matcher matches against db's advisories and keeps findings in db,
// without a triage.
func matcher(db *sqlite.DB) fleet.Matcher {
	return fleet.Matcher{Inventories: db.Fleet, Index: db.Fleet, History: db.Findings, Source: db}
}
