package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/risk"
)

// IngestStore stores an inventory with its findings in one transaction.
type IngestStore interface {
	FleetStore
	fleet.InventoryIngester
}

// Ingest runs the contract of inventories ingested with their findings:
// both or neither stored; concurrent ingests (group-committed on SQLite)
// all stored once they return without an error, a failing one alone lost.
// fault makes the database refuse, inside the transaction, to store a
// finding of the vulnerability named.
func Ingest(t *testing.T, open func(t *testing.T) (IngestStore, FindingStore, func(vuln string))) {
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	findingsOf := func(host string, vulns ...string) []fleet.Finding {
		var out []fleet.Finding
		for _, v := range vulns {
			out = append(out, fleet.Finding{HostID: host, Ecosystem: "Debian:12", Package: "srclib000", Vulnerability: v, Version: "1.0",
				Priority: risk.P2, Severity: "HIGH", State: fleet.StateOpen})
		}
		return out
	}

	t.Run("inventory and findings together", func(t *testing.T) {
		s, fs, _ := open(t)
		if err := s.UpsertHost(ctx, fleet.Host{ID: "h1", MachineID: "m1"}); err != nil {
			t.Fatal(err)
		}
		changed, opened, closed, err := s.IngestInventory(ctx, "h1", debPkgs(0, 50, "1.0"), findingsOf("h1", "CVE-1", "CVE-2"), now, "test")
		if err != nil || !changed || opened != 2 || closed != 0 {
			t.Fatalf("first ingest: changed %v opened %d closed %d err %v", changed, opened, closed, err)
		}
		changed, opened, closed, err = s.IngestInventory(ctx, "h1", debPkgs(0, 50, "1.0"), findingsOf("h1", "CVE-1"), now, "test")
		if err != nil || changed || opened != 0 || closed != 0 {
			t.Fatalf("same inventory: changed %v opened %d closed %d err %v; want nothing done", changed, opened, closed, err)
		}
		changed, opened, closed, err = s.IngestInventory(ctx, "h1", debPkgs(0, 40, "1.1"), findingsOf("h1", "CVE-1", "CVE-3"), now.Add(time.Hour), "test")
		if err != nil || !changed || opened != 1 || closed != 1 {
			t.Fatalf("upgrade: changed %v opened %d closed %d err %v; want 1 opened, 1 closed", changed, opened, closed, err)
		}
		inv, err := s.Inventory(ctx, "h1")
		if err != nil || len(inv) != 40 || inv[0].Version != "1.1" {
			t.Fatalf("inventory: %d packages, err %v", len(inv), err)
		}
		open := openVulns(t, fs, "h1")
		if fmt.Sprint(open) != "[CVE-1 CVE-3]" {
			t.Fatalf("open findings %v, want [CVE-1 CVE-3]", open)
		}
		if _, _, _, err := s.IngestInventory(ctx, "nope", debPkgs(0, 5, "1.0"), nil, now, "test"); !errors.Is(err, fleet.ErrNotFound) {
			t.Fatalf("unknown host: %v, want ErrNotFound", err)
		}
	})

	t.Run("a failing ingest stores neither", func(t *testing.T) {
		s, fs, fault := open(t)
		if err := s.UpsertHost(ctx, fleet.Host{ID: "h1", MachineID: "m1"}); err != nil {
			t.Fatal(err)
		}
		fault("CVE-BAD")
		if _, _, _, err := s.IngestInventory(ctx, "h1", debPkgs(0, 30, "1.0"), findingsOf("h1", "CVE-1", "CVE-BAD"), now, "test"); err == nil {
			t.Fatal("ingest with a refused finding: no error")
		}
		if inv, err := s.Inventory(ctx, "h1"); err != nil || len(inv) != 0 {
			t.Fatalf("inventory after a failed ingest: %d packages, err %v; want none", len(inv), err)
		}
		if open := openVulns(t, fs, "h1"); len(open) != 0 {
			t.Fatalf("findings after a failed ingest: %v; want none", open)
		}
		// The same inventory ingests once the findings can be stored.
		if changed, _, _, err := s.IngestInventory(ctx, "h1", debPkgs(0, 30, "1.0"), findingsOf("h1", "CVE-1"), now, "test"); err != nil || !changed {
			t.Fatalf("retry: changed %v err %v", changed, err)
		}
	})

	t.Run("concurrent ingests", func(t *testing.T) {
		s, fs, fault := open(t)
		fault("CVE-BAD")
		const n = 48
		for i := 0; i < n; i++ {
			if err := s.UpsertHost(ctx, fleet.Host{ID: fmt.Sprintf("h%02d", i), MachineID: fmt.Sprintf("m%02d", i)}); err != nil {
				t.Fatal(err)
			}
		}
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("h%02d", i)
				vulns := []string{"CVE-1", fmt.Sprintf("CVE-%d", 100+i)}
				c := ctx
				switch i % 8 {
				case 3: // refused inside the transaction
					vulns = append(vulns, "CVE-BAD")
				case 5: // the caller went away
					c = cancelled
				}
				_, _, _, errs[i] = s.IngestInventory(c, id, debPkgs(0, 20+i, fmt.Sprintf("1.%d", i%4)), findingsOf(id, vulns...), now, "test")
			}()
		}
		wg.Wait()
		for i := 0; i < n; i++ {
			id := fmt.Sprintf("h%02d", i)
			inv, err := s.Inventory(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			open := openVulns(t, fs, id)
			failing := i%8 == 3 || i%8 == 5
			switch {
			case failing && errs[i] == nil:
				t.Errorf("%s: ingest meant to fail acknowledged", id)
			case !failing && errs[i] != nil:
				t.Errorf("%s: %v", id, errs[i])
			case errs[i] == nil && (len(inv) != 20+i || len(open) != 2):
				t.Errorf("%s acknowledged: %d packages and findings %v stored, want %d and 2", id, len(inv), open, 20+i)
			case errs[i] != nil && (len(inv) != 0 || len(open) != 0):
				t.Errorf("%s failed (%v): %d packages and findings %v stored, want none", id, errs[i], len(inv), open)
			}
		}
	})
}

func openVulns(t *testing.T, fs FindingStore, host string) []string {
	t.Helper()
	all, err := fs.List(context.Background(), host)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range all {
		if f.RemediatedAt.IsZero() {
			out = append(out, f.Vulnerability)
		}
	}
	return out
}
