package web_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/internal/gittest"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/inventory/collect"
)

// fixesFixture is the web fixture with the Go and PyPI feeds and a
// Service whose repo (a real go.mod and requirements file) is served by
// git daemon on loopback.
func fixesFixture(t *testing.T) (*fixture, *gittest.Repo) {
	f := newFixture(t, nil)
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
	repo := gittest.NewRepo(t, "shop", files, 18334, 18349)
	docs := "apiVersion: patchbay/v1\nkind: Team\nmetadata: {name: shop-team}\nspec: {contact: '#shop'}\n---\n" +
		"apiVersion: patchbay/v1\nkind: Service\nmetadata: {name: shop}\nspec:\n  owner: shop-team\n  tier: 2\n  exposure: internet\n  repo:\n    url: " + repo.URL + "\n"
	f.apiDo("POST", "/policy/apply", policyapi.ApplyRequest{Files: []policyapi.PolicyFile{{Name: "shop.yaml", Content: docs}}}, nil)
	return f, repo
}

// TestFixesPage: an operator proposes a service's fix from the fixes
// page; the page then lists the branch pushed to the repository, its
// findings as fix proposed with their SLA due dates; a viewer sees the
// list but not the form.
func TestFixesPage(t *testing.T) {
	f, repo := fixesFixture(t)
	// CI uploads the service's inventory: its findings are stored.
	inv, err := collect.Collect(context.Background(), collect.Options{Paths: []string{repo.Work}})
	if err != nil {
		t.Fatal(err)
	}
	f.apiDo("PUT", "/services/shop/inventory", api.ServiceInventory{Packages: inv.Packages}, nil)
	alice := f.person("alice")
	alice.login(password)
	code, _, page := alice.get("/fixes")
	if code != http.StatusOK || !strings.Contains(page, `<option>shop</option>`) || !strings.Contains(page, "No fix proposed yet.") {
		t.Fatalf("%d\n%s", code, page)
	}
	code, loc, body := alice.post("/fixes/propose", url.Values{"csrf": {csrfOf(t, page)}, "service": {"shop"}, "strategy": {"in-place"}})
	if code != http.StatusSeeOther || loc != "/fixes?service=shop" {
		t.Fatalf("propose: %d %s\n%s", code, loc, body)
	}
	if head := gittest.Git(t, repo.Bare, "rev-parse", "refs/heads/patchbay/fix/shop/weekly"); head == "" {
		t.Fatal("no fix branch")
	}
	_, _, page = alice.get(loc)
	for _, want := range []string{"<code>patchbay/fix/shop/weekly</code>", `<span class="state proposed">proposed</span>`, "branch only", "golang.org/x/text", "fix proposed"} {
		if !strings.Contains(page, want) {
			t.Errorf("no %q in the page:\n%s", want, page)
		}
	}
	// A fixed finding's own page says fix proposed, with the branch.
	fs, err := f.db.Findings.List(context.Background(), fleet.ServiceAssetID("shop"))
	if err != nil {
		t.Fatal(err)
	}
	var idna int64
	for _, sf := range fs {
		if sf.Package == "idna" {
			idna = sf.ID
		}
	}
	_, _, page = alice.get("/findings/" + strconv.FormatInt(idna, 10))
	if !strings.Contains(page, "<dt>Fix</dt><dd>fix proposed: <span class=\"ver\">3.7</span> on patchbay/fix/shop/weekly") {
		t.Errorf("finding %d's page:\n%s", idna, page)
	}
	// The findings list says it too.
	if _, _, page = alice.get("/findings?package=idna"); !strings.Contains(page, `<span class="tag">fix proposed</span>`) {
		t.Errorf("the findings page lacks the fix state:\n%s", page)
	}
	vera := f.person("vera")
	vera.login(password)
	_, _, page = vera.get("/fixes")
	if strings.Contains(page, `id="propose"`) || !strings.Contains(page, "patchbay/fix/shop/weekly") {
		t.Errorf("viewer's page:\n%s", page)
	}
	code, _, _ = vera.post("/fixes/propose", url.Values{"csrf": {csrfOf(t, page)}, "service": {"shop"}})
	if code != http.StatusForbidden {
		t.Errorf("a viewer's proposal: %d", code)
	}
}
