package edit_test

import (
	"context"
	"testing"

	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/inventory/collect"
	"github.com/patchbay/patchbay/remedy"
	"github.com/patchbay/patchbay/remedy/edit"
	"github.com/patchbay/patchbay/scan"
)

// BenchmarkFixCorpus is `patchbay fix --offline` on the 52-file corpus
// without network resolution: collect, scan, plan, rewrite (modfile and
// pins; Pipfile.lock and poetry.lock are left with their reason) and the
// re-scan of the rewritten files. Target: < 2 s per op.
func BenchmarkFixCorpus(b *testing.B) {
	corpus := sharedtest.Dir(b, "corpus/lockfiles")
	db := feedStore(b)
	ctx := context.Background()
	var ups, changes, closed, left int
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		inv, err := collect.Collect(ctx, collect.Options{Paths: []string{corpus}})
		if err != nil {
			b.Fatal(err)
		}
		before, err := scan.Run(ctx, db, inv, now)
		if err != nil {
			b.Fatal(err)
		}
		plan, err := remedy.Propose(ctx, db, before, remedy.Options{Now: now})
		if err != nil {
			b.Fatal(err)
		}
		rw, err := edit.Rewrite(ctx, plan, edit.Options{})
		if err != nil {
			b.Fatal(err)
		}
		chk, err := edit.Verify(ctx, db, before, rw, now)
		if err != nil {
			b.Fatal(err)
		}
		_ = edit.Diff(rw.Changes)
		ups, changes, closed, left = len(plan.Upgrades), len(rw.Changes), len(chk.Closed), len(plan.Unfixed)+len(rw.Skipped)
	}
	b.ReportMetric(float64(ups), "upgrades")
	b.ReportMetric(float64(changes), "files")
	b.ReportMetric(float64(closed), "closed")
	b.ReportMetric(float64(left), "left")
}
