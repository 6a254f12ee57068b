package server_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/fixapi"
	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/inventory/collect"
	"github.com/patchbay/patchbay/remedy"
)

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_AUTHOR_NAME=dev", "GIT_AUTHOR_EMAIL=dev@example.com", "GIT_COMMITTER_NAME=dev", "GIT_COMMITTER_EMAIL=dev@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// serveGit serves the bare repositories under base with git daemon on a
// loopback port of 18325–18349, pushes allowed.
func serveGit(t *testing.T, base string) string {
	t.Helper()
	sharedtest.Tool(t, "git", "fix branches are pushed with git")
	for port := 18325 + os.Getpid()%12; port < 18350; port++ {
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		l.Close()
		cmd := exec.Command("git", "daemon", "--reuseaddr", "--listen=127.0.0.1", fmt.Sprintf("--port=%d", port), "--base-path="+base, "--export-all", "--enable=receive-pack", base)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		for i := 0; i < 100; i++ {
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				return "git://" + addr
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("git daemon on %s did not start", addr)
	}
	t.Fatal("no free port in 18325–18349")
	return ""
}

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
	root := t.TempDir()
	bare := filepath.Join(root, "srv", "shop.git")
	git(t, root, "init", "--quiet", "--bare", "-b", "main", bare)
	work := filepath.Join(root, "work")
	git(t, root, "init", "--quiet", "-b", "main", work)
	corpus := sharedtest.Dir(t, "corpus/lockfiles")
	for dst, src := range map[string]string{"go.mod": "loki/tools/lambda-promtail/go.mod", "go.sum": "loki/tools/lambda-promtail/go.sum", "requirements.txt": "flask/requirements/docs.txt"} {
		b, err := os.ReadFile(filepath.Join(corpus, src))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(t, work, "add", ".")
	git(t, work, "commit", "--quiet", "-m", "shop")
	git(t, work, "push", "--quiet", bare, "main")
	url := serveGit(t, filepath.Join(root, "srv")) + "/shop.git"

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
	got := list.Proposals[0]
	if got.State != remedy.StateDeployed || got.DeployedAt.IsZero() {
		t.Fatalf("after the upload: %s", got.State)
	}
	for _, fx := range got.Fixes {
		if fx.DeployedAt.IsZero() {
			t.Errorf("%s %s not deployed", fx.Package, fx.Vulnerability)
		}
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
	if n != 3 {
		t.Errorf("%d fix audit entries, want 3 (proposed twice, deployed)", n)
	}
}
