package fleet_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/inventory/collect"
	"github.com/patchbay/patchbay/store/sqlite"
)

// BenchmarkReplaceInventory stores full inventories of the real build host
// (~700 packages), varied per host (a tenth of the versions bumped), into
// SQLite: the fleet issue's ingest target is ≥ 100 hosts/s of ~1,500
// packages.
func BenchmarkReplaceInventory(b *testing.B) {
	ctx := context.Background()
	inv, err := collect.Collect(ctx, collect.Options{Root: sharedtest.DebianRoot(b, "status-bookworm-host")})
	if err != nil {
		b.Fatal(err)
	}
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "patchbay.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("host-%d", i)
		if err := db.Fleet.UpsertHost(ctx, fleet.Host{ID: id, MachineID: id, LastSeen: time.Now()}); err != nil {
			b.Fatal(err)
		}
		pkgs := append([]inventory.Package(nil), inv.Packages...)
		for j := i % 10; j < len(pkgs); j += 10 {
			pkgs[j].Version += fmt.Sprintf("+h%d", i%7)
		}
		if _, err := db.Fleet.ReplaceInventory(ctx, id, pkgs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hosts/s")
	b.ReportMetric(float64(len(inv.Packages)), "packages/host")
}

// BenchmarkInventoryHash hashes a real host inventory (~700 packages),
// which every full check-in does twice (the handler's check, the store's).
func BenchmarkInventoryHash(b *testing.B) {
	inv, err := collect.Collect(context.Background(), collect.Options{Root: sharedtest.DebianRoot(b, "status-bookworm-host")})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fleet.InventoryHash(inv.Packages)
	}
	b.ReportMetric(float64(len(inv.Packages)), "packages")
}
