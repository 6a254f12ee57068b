package kpi_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/risk"
	"github.com/patchbay/patchbay/store"
)

// BenchmarkSyncFindings is what the ledger's triggers cost ingest: a
// host's 200 findings opened, then half of them closed, with the
// triggers (ledger) and without them (noledger), on SQLite.
func BenchmarkSyncFindings(b *testing.B) {
	for _, ledger := range []bool{true, false} {
		name := "ledger"
		if !ledger {
			name = "noledger"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			db, err := store.Open(ctx, filepath.Join(b.TempDir(), "patchbay.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			if !ledger {
				for _, tr := range []string{"exposure_open", "exposure_remediated", "exposure_changed", "exposure_state", "host_gap"} {
					if _, err := db.SQL().Exec(`DROP TRIGGER ` + tr); err != nil {
						b.Fatal(err)
					}
				}
			}
			fs := make([]fleet.Finding, 200)
			for i := range fs {
				fs[i] = fleet.Finding{Ecosystem: "Debian:12", Package: fmt.Sprintf("pkg%d", i%40), Vulnerability: fmt.Sprintf("CVE-2026-%04d", i), Version: "1",
					Priority: risk.P3, Fixed: "2", SLA: 90 * 24 * time.Hour, State: fleet.StateOpen, Exploitation: risk.ExploitNone, Impact: "partial"}
			}
			now := time.Now()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				id := fmt.Sprintf("h%d", i)
				if err := db.Fleet.UpsertHost(ctx, fleet.Host{ID: id, MachineID: id, LastSeen: now}); err != nil {
					b.Fatal(err)
				}
				if _, _, err := db.Findings.Sync(ctx, id, fs, now, "ingest"); err != nil {
					b.Fatal(err)
				}
				if _, _, err := db.Findings.Sync(ctx, id, fs[:100], now.Add(time.Hour), "ingest"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
