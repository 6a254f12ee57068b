package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/fixapi"
	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/internal/gittest"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/inventory/collect"
	"github.com/patchbay/patchbay/remedy"
)

// TestServiceFixCycle: a Service names its repository; the server fixes
// its real go.mod and requirements in a clone and pushes the fix branch to
// a bare repository over git daemon; the proposal lists the findings as
// fix proposed; a second request updates the same proposal; the upload of
// the fixed files (scan --upload from CI) marks it deployed.
func TestServiceFixCycle(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "sqlite", nil)
	shared := sharedtest.Dir(t, "feeds")
	if _, err := (&feeds.Importer{Store: f.db}).ImportPaths(context.Background(), []string{filepath.Join(shared, "osv/Go/all.zip"), filepath.Join(shared, "osv/PyPI/all.zip")}); err != nil {
		t.Fatal(err)
	}
	corpus := sharedtest.Dir(t, "corpus/lockfiles")
	files := map[string][]byte{}
	for dst, src := range map[string]string{"go.mod": "loki/tools/lambda-promtail/go.mod", "go.sum": "loki/tools/lambda-promtail/go.sum", "requirements.txt": "flask/requirements/docs.txt"} {
		b, err := os.ReadFile(filepath.Join(corpus, src))
		if err != nil {
			t.Fatal(err)
		}
		files[dst] = b
	}
	repo := gittest.NewRepo(t, "shop", files, 18317, 18333)
	bare, work, url := repo.Bare, repo.Work, repo.URL
	git := gittest.Git

	admin, operator, viewer := f.api(auth.Admin), f.api(auth.Operator), f.api(auth.Viewer)
	docs := "apiVersion: patchbay/v1\nkind: Team\nmetadata: {name: shop-team}\nspec: {contact: '#shop'}\n---\n" +
		"apiVersion: patchbay/v1\nkind: Service\nmetadata: {name: shop}\nspec:\n  owner: shop-team\n  tier: 2\n  exposure: internet\n  repo:\n    url: " + url + "\n    base: main\n"
	f.apply(admin, policyapi.ApplyRequest{Files: []policyapi.PolicyFile{{Name: "shop.yaml", Content: docs}}})

	// CI uploads the service's inventory first: its findings are decided.
	inv, err := collect.Collect(context.Background(), collect.Options{Paths: []string{work}})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := f.do("PUT", api.Prefix+"/services/shop/inventory", operator, api.ServiceInventory{Packages: inv.Packages}); code != 200 {
		t.Fatalf("upload: %d %s", code, body)
	}

	code, body := f.do("POST", api.Prefix+"/services/shop/fixes", operator, fixapi.Request{})
	if code != 200 {
		t.Fatalf("fix: %d %s", code, body)
	}
	var d fixapi.Delivery
	f.decode(body, &d)
	p := d.Proposal
	if p.Branch != "patchbay/fix/shop/weekly" || p.State != remedy.StateProposed || p.Forge != "none" || len(p.Fixes) < 10 || p.Commit == "" {
		t.Fatalf("proposal %+v", p)
	}
	if head := git(t, bare, "rev-parse", "refs/heads/"+p.Branch); head != p.Commit {
		t.Errorf("branch at %s, proposal says %s", head, p.Commit)
	}
	if mod := git(t, bare, "show", p.Branch+":go.mod"); !strings.Contains(mod, "golang.org/x/text v0.39.0 // indirect") {
		t.Errorf("go.mod on the branch:\n%s", mod)
	}
	for _, fx := range p.Fixes {
		if fx.Due.IsZero() || fx.Priority == 0 {
			t.Errorf("%s %s: no decided priority or due date", fx.Package, fx.Vulnerability)
		}
	}
	if msg := git(t, bare, "log", "-1", "--format=%B", p.Branch); !strings.Contains(msg, "finding") || !strings.Contains(msg, "(due 20") {
		t.Errorf("commit message (the merge request body):\n%s", msg)
	}
	if code, _ := f.do("POST", api.Prefix+"/services/shop/fixes", viewer, fixapi.Request{}); code != 403 {
		t.Errorf("a viewer proposed a fix: %d", code)
	}

	// Again: the same proposal, updated.
	code, body = f.do("POST", api.Prefix+"/services/shop/fixes", operator, fixapi.Request{})
	if code != 200 {
		t.Fatalf("fix again: %d %s", code, body)
	}
	var again fixapi.Delivery
	f.decode(body, &again)
	var list fixapi.List
	code, body = f.do("GET", api.Prefix+"/fixes?service=shop", viewer, nil)
	f.decode(body, &list)
	if code != 200 || again.Proposal.ID != p.ID || len(list.Proposals) != 1 {
		t.Fatalf("second proposal %d beside %d; %d listed", again.Proposal.ID, p.ID, len(list.Proposals))
	}

	// The branch is merged and deployed: CI uploads the fixed files.
	git(t, work, "pull", "--quiet", url, p.Branch)
	inv, err = collect.Collect(context.Background(), collect.Options{Paths: []string{work}})
	if err != nil {
		t.Fatal(err)
	}
	code, body = f.do("PUT", api.Prefix+"/services/shop/inventory", operator, api.ServiceInventory{Packages: inv.Packages})
	if code != 200 {
		t.Fatalf("upload: %d %s", code, body)
	}
	var up api.ServiceInventoryResponse
	f.decode(body, &up)
	if up.Closed < len(p.Fixes) {
		t.Errorf("the upload closed %d findings, the fix %d", up.Closed, len(p.Fixes))
	}
	code, body = f.do("GET", api.Prefix+"/fixes", viewer, nil)
	f.decode(body, &list)
	if code != 200 || len(list.Proposals) != 1 {
		t.Fatalf("fixes: %d %s", code, body)
	}
	got := list.Proposals[0]
	if got.State != remedy.StateDeployed || got.DeployedAt.IsZero() {
		t.Fatalf("after the upload: %s", got.State)
	}
	for _, fx := range got.Fixes {
		if fx.DeployedAt.IsZero() {
			t.Errorf("%s %s not deployed", fx.Package, fx.Vulnerability)
		}
	}
	// The release-age gate with no release dates known holds every
	// version back (no KEV finding here to bypass it): nothing is pushed.
	code, body = f.do("POST", api.Prefix+"/services/shop/fixes", operator, fixapi.Request{MinAge: "7d", Group: "gated"})
	var gated fixapi.Delivery
	f.decode(body, &gated)
	if code != 200 || gated.Nothing == "" || len(gated.Unfixed) == 0 || !strings.Contains(gated.Unfixed[0].Reason, "release-age gate") {
		t.Errorf("gated: %d %s", code, body)
	}
	if code, body := f.do("POST", api.Prefix+"/services/shop/fixes", operator, fixapi.Request{MinAge: "soon"}); code != 400 || errOf(body).Field != "min_age" {
		t.Errorf("min_age soon: %d %s", code, body)
	}

	// Urgent: one branch and proposal for the most urgent patch alone.
	code, body = f.do("POST", api.Prefix+"/services/shop/fixes", operator, fixapi.Request{Urgent: true})
	var urgent fixapi.Delivery
	f.decode(body, &urgent)
	up0 := urgent.Proposal
	if code != 200 || up0.ID == p.ID || up0.Branch != "patchbay/fix/shop/idna-3.7" || len(up0.Fixes) != 1 || up0.Fixes[0].Package != "idna" {
		t.Errorf("urgent: %d %+v", code, up0)
	}

	ents, err := f.db.Audit.Entries(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if strings.HasPrefix(e.Action, "fix.") {
			n++
		}
	}
	if n != 4 {
		t.Errorf("%d fix audit entries, want 4 (proposed twice, deployed, urgent)", n)
	}
}
