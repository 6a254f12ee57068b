package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/match"
)

// FleetStore keeps hosts and inventories.
type FleetStore interface {
	UpsertHost(ctx context.Context, h fleet.Host) error
	Host(ctx context.Context, id string) (fleet.Host, error)
	ReplaceInventory(ctx context.Context, hostID string, pkgs []inventory.Package) (bool, error)
	Inventory(ctx context.Context, hostID string) ([]inventory.Package, error)
	SoftwareCount(ctx context.Context) (int, error)
	SoftwareWith(ctx context.Context, keys []match.Key) (map[string][]inventory.Package, error)
}

func debPkgs(from, to int, version string) []inventory.Package {
	var out []inventory.Package
	for i := from; i < to; i++ {
		name := fmt.Sprintf("lib%03d", i)
		out = append(out, inventory.Package{Ecosystem: "Debian:12", Name: name, Version: version, SourceName: "src" + name, SourceVersion: version, Location: "/var/lib/dpkg/status"})
	}
	return out
}

func sorted(ps []inventory.Package) []inventory.Package {
	out := append([]inventory.Package(nil), ps...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Fleet runs the host and inventory contract.
func Fleet(t *testing.T, open func(t *testing.T) FleetStore) {
	ctx := context.Background()
	s := open(t)
	seen := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for _, h := range []fleet.Host{
		{ID: "h1", MachineID: "m1", Hostname: "web-1", Ecosystem: "Debian:12", Labels: map[string]string{"env": "prod", "role": "web"}, LastSeen: seen},
		{ID: "h2", MachineID: "m2", Hostname: "web-2", Ecosystem: "Debian:12", Labels: map[string]string{"env": "staging"}, LastSeen: seen},
	} {
		if err := s.UpsertHost(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	h, err := s.Host(ctx, "h1")
	if err != nil || h.Hostname != "web-1" || h.Labels["role"] != "web" || !h.LastSeen.Equal(seen) || h.InventoryHash != "" {
		t.Fatalf("host %+v %v", h, err)
	}
	if _, err := s.Host(ctx, "nope"); !errors.Is(err, fleet.ErrNotFound) {
		t.Errorf("unknown host: %v", err)
	}

	inv1 := debPkgs(0, 150, "1.0-1")
	inv2 := append(debPkgs(50, 150, "1.0-1"), debPkgs(150, 200, "2.0-1")...) // 100 shared
	for id, inv := range map[string][]inventory.Package{"h1": inv1, "h2": inv2} {
		changed, err := s.ReplaceInventory(ctx, id, inv)
		if err != nil || !changed {
			t.Fatalf("%s: changed %v, %v", id, changed, err)
		}
	}
	if n, err := s.SoftwareCount(ctx); err != nil || n != 200 {
		t.Errorf("distinct software %d (%v), want 200: shared versions are stored once", n, err)
	}
	got, err := s.Inventory(ctx, "h1")
	if err != nil || !reflect.DeepEqual(sorted(got), sorted(inv1)) {
		t.Fatalf("h1 inventory: %d packages %v", len(got), err)
	}
	if h, _ := s.Host(ctx, "h1"); h.InventoryHash != fleet.InventoryHash(inv1) {
		t.Errorf("hash %q", h.InventoryHash)
	}

	// Hosts by the software advisories name (Debian: the source package).
	for _, c := range []struct {
		keys []match.Key
		want string
	}{
		{[]match.Key{{Ecosystem: "Debian:12", Name: "srclib060"}}, "[h1 h2]"},
		{[]match.Key{{Ecosystem: "Debian:12", Name: "srclib010"}}, "[h1]"},
		{[]match.Key{{Ecosystem: "Debian", Name: "srclib180"}}, "[h2]"}, // a release-less record
		{[]match.Key{{Ecosystem: "Debian:11", Name: "srclib010"}}, "[]"},
		{[]match.Key{{Ecosystem: "Debian:12", Name: "lib010"}}, "[]"}, // binary names are not what advisories name
	} {
		byHost, err := s.SoftwareWith(ctx, c.keys)
		var hosts []string
		for h, pkgs := range byHost {
			hosts = append(hosts, h)
			for _, p := range pkgs {
				if p.SourceName != c.keys[0].Name {
					t.Errorf("software with %v: %s has %+v", c.keys, h, p)
				}
			}
		}
		sort.Strings(hosts)
		if err != nil || fmt.Sprint(hosts) != c.want {
			t.Errorf("hosts with %v: %v %v, want %s", c.keys, hosts, err, c.want)
		}
	}

	// The same inventory, in another order: nothing to do.
	rev := append([]inventory.Package(nil), inv1...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	if changed, err := s.ReplaceInventory(ctx, "h1", rev); err != nil || changed {
		t.Errorf("unchanged inventory: changed %v, %v", changed, err)
	}

	// A failed ingest (a bad package after 149 good ones) leaves the
	// previous inventory intact.
	bad := append(debPkgs(0, 149, "1.0-2"), inventory.Package{Ecosystem: "Debian:12", Name: "broken"})
	if _, err := s.ReplaceInventory(ctx, "h1", bad); !errors.Is(err, fleet.ErrInvalidPackage) {
		t.Fatalf("bad ingest: %v", err)
	}
	got, _ = s.Inventory(ctx, "h1")
	if !reflect.DeepEqual(sorted(got), sorted(inv1)) {
		t.Errorf("after a failed ingest h1 has %d packages, not its previous %d", len(got), len(inv1))
	}
	if h, _ := s.Host(ctx, "h1"); h.InventoryHash != fleet.InventoryHash(inv1) {
		t.Error("a failed ingest changed the inventory hash")
	}

	// An upgrade replaces the links; h2 is untouched.
	up := debPkgs(0, 150, "1.0-2")
	if changed, err := s.ReplaceInventory(ctx, "h1", up); err != nil || !changed {
		t.Fatal(err)
	}
	if got, _ := s.Inventory(ctx, "h1"); !reflect.DeepEqual(sorted(got), sorted(up)) {
		t.Error("upgrade not stored")
	}
	if got, _ := s.Inventory(ctx, "h2"); len(got) != 150 {
		t.Errorf("h2 has %d packages", len(got))
	}
	if _, err := s.ReplaceInventory(ctx, "nope", up); !errors.Is(err, fleet.ErrNotFound) {
		t.Errorf("unknown host: %v", err)
	}
}
