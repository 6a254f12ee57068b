package remedy_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/inventory/collect"
	"github.com/patchbay/patchbay/remedy"
	"github.com/patchbay/patchbay/scan"
	"github.com/patchbay/patchbay/store/sqlite"
)

var (
	feedOnce sync.Once
	feedDB   *sqlite.DB
	feedErr  error
)

// feedStore is one database with the Go, PyPI and npm feeds and KEV,
// shared by the tests of the package (read only).
func feedStore(t testing.TB) *sqlite.DB {
	t.Helper()
	d := sharedtest.Dir(t, "feeds")
	feedOnce.Do(func() {
		dir, err := osMkdirTemp()
		if err != nil {
			feedErr = err
			return
		}
		db, err := sqlite.Open(context.Background(), filepath.Join(dir, "feeds.db"))
		if err != nil {
			feedErr = err
			return
		}
		im := &feeds.Importer{Store: db}
		_, feedErr = im.ImportPaths(context.Background(), []string{
			filepath.Join(d, "osv/Go/all.zip"), filepath.Join(d, "osv/PyPI/all.zip"), filepath.Join(d, "osv/npm/all.zip"),
			filepath.Join(d, "kev/known_exploited_vulnerabilities.json"),
		})
		feedDB = db
	})
	if feedErr != nil {
		t.Fatal(feedErr)
	}
	return feedDB
}

func scanPaths(t testing.TB, db scan.Source, paths ...string) scan.Result {
	t.Helper()
	inv, err := collect.Collect(context.Background(), collect.Options{Paths: paths})
	if err != nil {
		t.Fatal(err)
	}
	res, err := scan.Run(context.Background(), db, inv, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestProposeCorpus plans the whole corpus and checks every proposal
// against an independent scan of the proposed version: it closes what it
// says, opens nothing, and every finding not closed has a reason.
func TestProposeCorpus(t *testing.T) {
	db := feedStore(t)
	corpus := sharedtest.Dir(t, "corpus/lockfiles")
	res := scanPaths(t, db, corpus)
	for _, strat := range []remedy.Strategy{remedy.InPlace, remedy.Relax} {
		plan, err := remedy.Propose(context.Background(), db, res, remedy.Options{Strategy: strat})
		if err != nil {
			t.Fatal(err)
		}
		closed := map[string]bool{}
		for _, u := range plan.Upgrades {
			if u.Major && strat == remedy.InPlace {
				t.Errorf("%s: in-place proposes a major upgrade %s → %s", u.Package, u.From, u.To)
			}
			// The proposed version, scanned on its own.
			after, err := scan.Run(context.Background(), db, inventory.Result{Packages: []inventory.Package{{Ecosystem: u.Ecosystem, Name: u.Package, Version: u.To, Location: "x"}}}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			open := map[string]bool{}
			for _, f := range after.Findings {
				for _, a := range f.Advisories {
					open[a] = true
				}
			}
			for _, f := range u.Closes {
				for _, a := range f.Advisories {
					if open[a] {
						t.Errorf("%s %s claims to close %s, but %s still matches", u.Package, u.To, f.Vulnerability, a)
					}
				}
				closed[key(f)] = true
			}
			// Nothing new: every finding of the new version was a finding of the old.
			old := map[string]bool{}
			for _, f := range res.Findings {
				if f.Package == u.Package && f.Version == u.From {
					for _, a := range f.Advisories {
						old[a] = true
					}
				}
			}
			for a := range open {
				if !old[a] {
					t.Errorf("%s %s → %s opens %s", u.Package, u.From, u.To, a)
				}
			}
		}
		reasons := map[string]int{}
		for _, l := range plan.Unfixed {
			if l.Reason == "" {
				t.Errorf("%s: no reason", l.Finding)
			}
			closed[key(l.Finding)] = true
			r := l.Reason
			if i := strings.IndexAny(r, "(0123456789"); i > 0 {
				r = r[:i]
			}
			reasons[r]++
		}
		for _, f := range res.Findings {
			if f.Cycle == "application" && !closed[key(f)] {
				t.Errorf("%s: neither closed nor given a reason", f)
			}
		}
		t.Logf("%s: %d findings, %d upgrades, %d left; reasons %v", strat, len(res.Findings), len(plan.Upgrades), len(plan.Unfixed), reasons)
	}
}

func key(f scan.Finding) string {
	return f.Ecosystem + " " + f.Package + " " + f.Version + " " + f.Vulnerability
}

func osMkdirTemp() (string, error) { return os.MkdirTemp("", "patchbay-remedy-test-") }
