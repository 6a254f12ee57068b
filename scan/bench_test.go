package scan_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/inventory/collect"
	"github.com/patchbay/patchbay/match"
	"github.com/patchbay/patchbay/scan"
)

// benchInventory is the corpus lockfiles plus a real bookworm host: ~4,500
// packages across Go, PyPI and Debian.
func benchInventory(b *testing.B) inventory.Result {
	b.Helper()
	corpus := sharedtest.Dir(b, "corpus/lockfiles")
	host := sharedtest.DebianRoot(b, "status-bookworm-host")
	inv, err := collect.Collect(context.Background(), collect.Options{Root: host, Paths: []string{corpus}})
	if err != nil {
		b.Fatal(err)
	}
	return inv
}

func allFeeds(b *testing.B) []string {
	d := sharedtest.Dir(b, "feeds")
	return []string{filepath.Join(d, "osv/Go/all.zip"), filepath.Join(d, "osv/PyPI/all.zip"), filepath.Join(d, "osv/Debian/all.zip"), filepath.Join(d, "kev/known_exploited_vulnerabilities.json")}
}

// benchIndex is the bench inventory and an index of every advisory its
// packages' keys name.
func benchIndex(b *testing.B) (inventory.Result, *match.Index) {
	inv := benchInventory(b)
	db := openStore(b, allFeeds(b)...)
	var keys []match.Key
	for _, p := range inv.Packages {
		keys = append(keys, match.Keys(p)...)
	}
	advs, err := db.Advisories(context.Background(), keys)
	if err != nil {
		b.Fatal(err)
	}
	ix := match.NewIndex()
	for _, a := range advs {
		ix.Add(a)
	}
	return inv, ix
}

// BenchmarkMatch measures package look-ups in a built index: each op is one
// package matched against every advisory naming it (most packages name
// none, as in real inventories). Target: ≥ 1M look-ups/s on one core.
func BenchmarkMatch(b *testing.B) {
	inv, ix := benchIndex(b)
	pkgs := inv.Packages
	hits := 0
	for _, p := range pkgs { // rank every key once: index preparation, not look-up
		ix.Match(p)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var buf []match.Hit
	for i := 0; i < b.N; i++ {
		buf = ix.AppendMatches(buf[:0], pkgs[i%len(pkgs)])
		hits += len(buf)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
	_ = hits
}

// BenchmarkMatchPrepared is BenchmarkMatch with each package prepared once
// (match.NewQuery): the installed version is parsed at its first look-up
// only, as when an inventory is matched again (another index, a feed
// refresh). Target: ≥ 1M look-ups/s on one core.
func BenchmarkMatchPrepared(b *testing.B) {
	inv, ix := benchIndex(b)
	qs := make([]match.Query, len(inv.Packages))
	for i, p := range inv.Packages {
		qs[i] = match.NewQuery(p)
		ix.AppendQuery(nil, &qs[i]) // rank every key once and parse every version once
	}
	hits := 0
	b.ReportAllocs()
	b.ResetTimer()
	var buf []match.Hit
	for i := 0; i < b.N; i++ {
		buf = ix.AppendQuery(buf[:0], &qs[i%len(qs)])
		hits += len(buf)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
	_ = hits
}

// BenchmarkScan measures a warm scan (index in the database, inventory
// collected) of one lockfile and of a Debian host root.
func BenchmarkScan(b *testing.B) {
	db := openStore(b, allFeeds(b)...)
	host := sharedtest.DebianRoot(b, "status-bookworm-host")
	lock := filepath.Join(sharedtest.Dir(b, "corpus/lockfiles"), "saleor/poetry.lock")
	for _, c := range []struct {
		name string
		opts collect.Options
	}{
		{"lockfile", collect.Options{Paths: []string{lock}}},
		{"debian-host", collect.Options{Root: host}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				inv, err := collect.Collect(context.Background(), c.opts)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := scan.Run(context.Background(), db, inv, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
