package web_test

import (
	"context"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/patch"
)

// TestPatchesOfClaimedPaths: a Service claiming /srv/shop makes a host's
// /srv/shop/requirements.txt finding its own; the findings page says so,
// and the patches page shows one requests patch whose targets are the
// host and the service's uploaded inventory.
func TestPatchesOfClaimedPaths(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	if _, err := (&feeds.Importer{Store: f.db}).ImportPaths(context.Background(), []string{filepath.Join(sharedtest.Dir(t, "feeds/osv/PyPI"), "all.zip")}); err != nil {
		t.Fatal(err)
	}
	docs := "apiVersion: patchbay/v1\nkind: Team\nmetadata: {name: shop-team}\nspec: {}\n---\n" +
		"apiVersion: patchbay/v1\nkind: Service\nmetadata: {name: shop}\nspec:\n  owner: shop-team\n  tier: 2\n  exposure: internet\n  hosts: role=shop\n  paths: [/srv/shop]\n"
	f.apiDo("POST", "/policy/apply", policyapi.ApplyRequest{Files: []policyapi.PolicyFile{{Name: "shop.yaml", Content: docs}}}, nil)
	facts := fleet.Facts{Hostname: "shop-1", MachineID: "m-shop-1", OSID: "debian", OSVersion: "12", Ecosystem: "Debian:12", AgentVersion: "test", Labels: map[string]string{"role": "shop"}}
	var e api.EnrollResponse
	f.apiAs(f.enrollToken(), "POST", "/agent/enroll", api.EnrollRequest{Facts: facts}, &e)
	pkgs := []inventory.Package{{Ecosystem: "PyPI", Name: "requests", Version: "2.25.0", Location: "/srv/shop/requirements.txt"}}
	f.apiAs(e.Credential, "POST", "/agent/checkin", api.Report{CollectedAt: time.Now().UTC(), Facts: facts, InventoryHash: fleet.InventoryHash(pkgs),
		UpdatesHash: fleet.UpdatesHash(nil), Inventory: &pkgs, Updates: &[]patch.Update{}}, nil)
	f.apiDo("PUT", "/services/shop/inventory", api.ServiceInventory{Packages: []inventory.Package{{Ecosystem: "PyPI", Name: "requests", Version: "2.25.0", Location: "requirements.txt"}}}, nil)

	alice := f.person("alice")
	alice.login(password)
	code, _, page := alice.get("/findings?package=requests")
	if code != http.StatusOK || !strings.Contains(page, `(service <a href="/services/shop">shop</a>, via /srv/shop)`) {
		t.Fatalf("findings page: %d\n%s", code, page)
	}
	code, _, page = alice.get("/patches?package=requests")
	if code != http.StatusOK {
		t.Fatalf("patches page: %d\n%s", code, page)
	}
	rows := regexp.MustCompile(`(?s)<tr>\s*<td>requests</td>.*?</tr>`).FindAllString(page, -1)
	if len(rows) == 0 {
		t.Fatalf("no requests patch:\n%s", page)
	}
	// Every requests patch (one per fixed version) targets both: two
	// hosts (shop-1 and the service's inventory), service shop.
	for _, r := range rows {
		if !strings.Contains(r, `<td class="n">2</td><td><a href="/services/shop">shop</a></td>`) {
			t.Errorf("a requests patch does not target the host and the service once each:\n%s", r)
		}
	}
}
