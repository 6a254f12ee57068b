package server_test

import (
	"context"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/inventory"
)

func TestServiceClaimsHostPathSQLite(t *testing.T) {
	t.Parallel()
	testServiceClaimsHostPath(t, "sqlite")
}
func TestServiceClaimsHostPathPostgres(t *testing.T) {
	t.Parallel()
	testServiceClaimsHostPath(t, "postgres")
}

const claimPolicy = `apiVersion: patchbay/v1
kind: Team
metadata:
  name: shop-team
spec: {}
---
apiVersion: patchbay/v1
kind: Service
metadata:
  name: shop
spec:
  owner: shop-team
  tier: 1
  exposure: internet
  hosts: role=web
  paths: [/srv/shop]
`

// testServiceClaimsHostPath: a Service claiming /srv/shop makes a web
// host's /srv/shop/requirements.txt findings its own (the list and the
// explanation say service shop, via /srv/shop), leaves the same host's
// package elsewhere unclaimed, and the host's copy and the service's
// uploaded inventory are the same patch (ecosystem, package, fixed).
func testServiceClaimsHostPath(t *testing.T, backend string) {
	f := newFixture(t, backend, nil)
	ctx := context.Background()
	if _, err := (&feeds.Importer{Store: f.db}).ImportPaths(ctx, []string{filepath.Join(sharedtest.Dir(t, "feeds/osv/PyPI"), "all.zip")}); err != nil {
		t.Fatal(err)
	}
	viewer, operator, admin := f.api(auth.Viewer), f.api(auth.Operator), f.api(auth.Admin)
	f.apply(admin, policyapi.ApplyRequest{Files: []policyapi.PolicyFile{{Name: "shop.yaml", Content: claimPolicy}}})
	facts := factsOf("web-1", "m-web-1")
	facts.Labels = map[string]string{"role": "web"}
	e := f.enroll(f.token(auth.KindEnrollment, auth.Agent, -1, time.Time{}), facts)
	pkgs := []inventory.Package{
		{Ecosystem: "PyPI", Name: "requests", Version: "2.25.0", Location: "/srv/shop/requirements.txt"},
		{Ecosystem: "PyPI", Name: "urllib3", Version: "1.26.4", Location: "/opt/tools/requirements.txt"},
	}
	if code, body := f.do("POST", api.Prefix+"/agent/checkin", e.Credential, report(facts, pkgs, true)); code != 200 {
		t.Fatalf("check-in: %d %s", code, body)
	}
	if code, body := f.do("PUT", api.Prefix+"/services/shop/inventory", operator, api.ServiceInventory{Packages: []inventory.Package{
		{Ecosystem: "PyPI", Name: "requests", Version: "2.25.0", Location: "requirements.txt"}}}); code != 200 {
		t.Fatalf("service upload: %d %s", code, body)
	}
	rows := f.findings(viewer, url.Values{})
	byTarget := map[string][]fleet.FindingRow{}
	for _, r := range rows {
		byTarget[r.HostID+" "+r.Package] = append(byTarget[r.HostID+" "+r.Package], r)
	}
	host, svc := byTarget[e.HostID+" requests"], byTarget[fleet.ServiceAssetID("shop")+" requests"]
	if len(host) == 0 || len(host) != len(svc) || len(byTarget[e.HostID+" urllib3"]) == 0 {
		t.Fatalf("findings: host requests %d, service requests %d, host urllib3 %d", len(host), len(svc), len(byTarget[e.HostID+" urllib3"]))
	}
	fixedOf := map[string]string{}
	for _, r := range svc {
		if r.Service != "shop" || r.ServicePath != "" {
			t.Errorf("service row %s: service %q path %q", r.Vulnerability, r.Service, r.ServicePath)
		}
		fixedOf[r.Vulnerability] = r.Fixed
	}
	for _, r := range host {
		if r.Service != "shop" || r.ServicePath != "/srv/shop" || r.Location != "/srv/shop/requirements.txt" {
			t.Errorf("host row %s: service %q path %q location %q", r.Vulnerability, r.Service, r.ServicePath, r.Location)
		}
		if fx, ok := fixedOf[r.Vulnerability]; !ok || fx != r.Fixed {
			t.Errorf("host row %s: fixed %q, the service's %q (%v): not one patch", r.Vulnerability, r.Fixed, fx, ok)
		}
	}
	for _, r := range byTarget[e.HostID+" urllib3"] {
		if r.Service != "" {
			t.Errorf("urllib3 under /opt/tools is claimed by %q", r.Service)
		}
	}
	d := f.explain(viewer, host[0].ID)
	if d.Claim == nil || d.Claim.Service != "shop" || d.Claim.Path != "/srv/shop" || d.Claim.Location != "/srv/shop/requirements.txt" {
		t.Errorf("explanation's claim: %+v", d.Claim)
	}
	if d := f.explain(viewer, byTarget[e.HostID+" urllib3"][0].ID); d.Claim != nil {
		t.Errorf("urllib3's explanation claims: %+v", d.Claim)
	}
}
