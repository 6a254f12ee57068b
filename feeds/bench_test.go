package feeds_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/patchbay/patchbay/feeds"
)

// BenchmarkImportEPSSFullSize imports an EPSS file of the upstream size
// (about 300,000 CVEs; the file is generated in the upstream format) into
// a SQLite index that already holds a full set, as the daily refresh
// does: the target is seconds, not minutes.
//
//	nice go test ./feeds -run '^$' -bench ImportEPSSFullSize -benchtime 3x
func BenchmarkImportEPSSFullSize(b *testing.B) {
	const rows = 300_000
	path := filepath.Join(b.TempDir(), "epss_scores-current.csv")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "#model_version:v2025.03.14,score_date:2026-06-20T00:00:00+0000")
	fmt.Fprintln(w, "cve,epss,percentile")
	for i := 0; i < rows; i++ {
		year := 1999 + i%28
		fmt.Fprintf(w, "CVE-%d-%d,%.5f,%.5f\n", year, 1000+i, float64(i%1000)/1000, float64(i)/rows)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	db := newDBB(b)
	im := &feeds.Importer{Store: db}
	ctx := context.Background()
	if _, err := im.ImportPaths(ctx, []string{path}); err != nil { // the index holds a full set
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sum, err := im.ImportPaths(ctx, []string{path})
		if err != nil {
			b.Fatal(err)
		}
		if sum.EPSS != rows {
			b.Fatalf("%d EPSS scores imported, want %d", sum.EPSS, rows)
		}
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
