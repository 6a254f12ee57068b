package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/fixapi"
	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/internal/gittest"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/inventory/collect"
	"github.com/patchbay/patchbay/remedy"
	"github.com/patchbay/patchbay/risk"
	"github.com/patchbay/patchbay/server"
)

// githubPulls is a loopback GitHub pull request API with state: pulls are
// created, found by head branch, updated, and merged by the test.
type githubPulls struct {
	mu     sync.Mutex
	pulls  map[int]map[string]any
	merged map[int]bool
	gets   int
}

func (g *githubPulls) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer tok" {
		http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
		return
	}
	const base = "/repos/acme/shop/pulls"
	view := func(n int) map[string]any {
		p := map[string]any{"number": n, "html_url": "https://github.example/acme/shop/pull/" + strconv.Itoa(n), "state": "open", "merged_at": nil}
		if g.merged[n] {
			p["state"], p["merged_at"] = "closed", "2026-12-01T10:00:00Z"
		}
		return p
	}
	switch {
	case r.Method == "GET" && r.URL.Path == base:
		out := []map[string]any{}
		for n, p := range g.pulls {
			if "acme:"+p["head"].(string) == r.URL.Query().Get("head") && !g.merged[n] {
				out = append(out, view(n))
			}
		}
		json.NewEncoder(w).Encode(out)
	case r.Method == "POST" && r.URL.Path == base:
		var p map[string]any
		json.NewDecoder(r.Body).Decode(&p)
		n := len(g.pulls) + 1
		g.pulls[n] = p
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(view(n))
	case strings.HasPrefix(r.URL.Path, base+"/"):
		n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, base+"/"))
		if g.pulls[n] == nil {
			http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
			return
		}
		if r.Method == "GET" {
			g.gets++
		}
		json.NewEncoder(w).Encode(view(n))
	default:
		http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
	}
}

// TestScheduledFixes: the leader's scheduled delivery proposes the weekly
// merge request of a Service with a repo, and the urgent one of its P1
// patch on its own branch; the poll reads the merge and moves the
// proposal to merged without anyone asking; a later run updates the same
// proposals.
func TestScheduledFixes(t *testing.T) {
	t.Parallel()
	gh := &githubPulls{pulls: map[int]map[string]any{}, merged: map[int]bool{}}
	forgeSrv := httptest.NewServer(gh)
	t.Cleanup(forgeSrv.Close)
	f := newFixture(t, "sqlite", func(c *server.Config) { c.Fix.Tokens = map[string]string{"github": "tok"} })
	shared := sharedtest.Dir(t, "feeds")
	if _, err := (&feeds.Importer{Store: f.db}).ImportPaths(context.Background(), []string{filepath.Join(shared, "osv/PyPI/all.zip")}); err != nil {
		t.Fatal(err)
	}
	req, err := os.ReadFile(filepath.Join(sharedtest.Dir(t, "corpus/lockfiles"), "flask/requirements/docs.txt"))
	if err != nil {
		t.Fatal(err)
	}
	repo := gittest.NewRepo(t, "shop", map[string][]byte{"requirements.txt": req}, 18334, 18349)
	admin, operator := f.api(auth.Admin), f.api(auth.Operator)
	docs := "apiVersion: patchbay/v1\nkind: Team\nmetadata: {name: shop-team}\nspec: {contact: '#shop'}\n---\n" +
		"apiVersion: patchbay/v1\nkind: Service\nmetadata: {name: shop}\nspec:\n  owner: shop-team\n  tier: 1\n  exposure: internet\n  repo:\n    url: " + repo.URL +
		"\n    forge: github\n    project: acme/shop\n    api: " + forgeSrv.URL + "\n---\n" +
		"apiVersion: patchbay/v1\nkind: Service\nmetadata: {name: norepo}\nspec: {owner: shop-team, tier: 3, exposure: internal}\n"
	f.apply(admin, policyapi.ApplyRequest{Files: []policyapi.PolicyFile{{Name: "shop.yaml", Content: docs}}})
	inv, err := collect.Collect(context.Background(), collect.Options{Paths: []string{repo.Work}})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := f.do("PUT", api.Prefix+"/services/shop/inventory", operator, api.ServiceInventory{Packages: inv.Packages}); code != 200 {
		t.Fatalf("upload: %d %s", code, body)
	}
	ctx := context.Background()

	n, err := f.srv.DeliverFixes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	list := func() map[string]remedy.Proposal {
		var l fixapi.List
		code, body := f.do("GET", api.Prefix+"/fixes?service=shop", operator, nil)
		if code != 200 {
			t.Fatalf("fixes: %d %s", code, body)
		}
		f.decode(body, &l)
		out := map[string]remedy.Proposal{}
		for _, p := range l.Proposals {
			out[p.Branch] = p
		}
		return out
	}
	ps := list()
	weekly := ps["patchbay/fix/shop/weekly"]
	p1 := false
	for _, fx := range weekly.Fixes {
		p1 = p1 || fx.Priority == risk.P1
	}
	if !p1 {
		t.Fatalf("no P1 fix in the weekly proposal %+v: the fixture should have one", weekly)
	}
	var urgent remedy.Proposal
	for b, p := range ps {
		if b != weekly.Branch {
			urgent = p
		}
	}
	if n != 2 || len(ps) != 2 || weekly.MRNumber == 0 || weekly.State != remedy.StateProposed || urgent.MRNumber == 0 || len(urgent.Fixes) == 0 || urgent.Fixes[0].Priority != risk.P1 {
		t.Fatalf("%d delivered; proposals %+v", n, ps)
	}
	if got := gittest.Git(t, repo.Bare, "rev-parse", "refs/heads/"+urgent.Branch); got != urgent.Commit {
		t.Errorf("urgent branch at %s, proposal %s", got, urgent.Commit)
	}

	// Nothing merged yet: the poll changes nothing.
	if n, err := f.srv.PollFixes(ctx); err != nil || n != 0 {
		t.Fatalf("poll before the merge: %d, %v", n, err)
	}
	gh.mu.Lock()
	gh.merged[urgent.MRNumber] = true
	gets := gh.gets
	gh.mu.Unlock()
	if n, err := f.srv.PollFixes(ctx); err != nil || n != 1 {
		t.Fatalf("poll after the merge: %d, %v", n, err)
	}
	ps = list()
	if got := ps[urgent.Branch]; got.State != remedy.StateMerged || got.MergedAt.IsZero() {
		t.Errorf("urgent after the merge: %s", got.State)
	}
	if ps[weekly.Branch].State != remedy.StateProposed {
		t.Errorf("weekly: %s", ps[weekly.Branch].State)
	}
	// The finding's own page says where its fix is.
	hs, err := f.db.Findings.List(ctx, fleet.ServiceAssetID("shop"))
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, sf := range hs {
		if sf.Package != urgent.Fixes[0].Package || sf.Vulnerability != urgent.Fixes[0].Vulnerability {
			continue
		}
		seen++
		var d policyapi.FindingDetail
		code, body := f.do("GET", api.Prefix+"/findings/"+strconv.FormatInt(sf.ID, 10), operator, nil)
		f.decode(body, &d)
		if code != 200 || d.Fix == nil || d.Fix.State != remedy.StateMerged || d.Fix.MergeRequest == "" || d.Fix.ProposalID != urgent.ID {
			t.Errorf("finding %d: %d fix %+v", sf.ID, code, d.Fix)
		}
	}
	if seen != 1 {
		t.Errorf("%d stored findings of the urgent fix, want 1", seen)
	}
	// Merged proposals are not asked about again.
	if _, err := f.srv.PollFixes(ctx); err != nil {
		t.Fatal(err)
	}
	gh.mu.Lock()
	if d := gh.gets - gets; d != 3 {
		t.Errorf("%d merge request reads after the merge, want 3 (both, then the one still open)", d)
	}
	gh.mu.Unlock()

	// The next scheduled run updates the weekly merge request in place.
	if _, err := f.srv.DeliverFixes(ctx); err != nil {
		t.Fatal(err)
	}
	if ps2 := list(); ps2[weekly.Branch].ID != weekly.ID || ps2[weekly.Branch].MRNumber != weekly.MRNumber {
		t.Errorf("weekly after the second run: %+v, was %+v", ps2[weekly.Branch], weekly)
	}
	ents, err := f.db.Audit.Entries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	merged := 0
	for _, e := range ents {
		if e.Action == "fix.merged" && e.Actor == "server:test" {
			merged++
		}
	}
	if merged != 1 {
		t.Errorf("%d fix.merged entries by the server, want 1", merged)
	}
}
