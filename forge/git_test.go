package forge_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/forge"
	"github.com/patchbay/patchbay/internal/gittest"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/inventory/collect"
	"github.com/patchbay/patchbay/remedy"
	"github.com/patchbay/patchbay/remedy/edit"
	"github.com/patchbay/patchbay/scan"
	"github.com/patchbay/patchbay/store/sqlite"
)

func feedDB(t *testing.T) *sqlite.DB {
	t.Helper()
	d := sharedtest.Dir(t, "feeds")
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "feeds.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	im := &feeds.Importer{Store: db}
	if _, err := im.ImportPaths(context.Background(), []string{filepath.Join(d, "osv/Go/all.zip"), filepath.Join(d, "osv/PyPI/all.zip")}); err != nil {
		t.Fatal(err)
	}
	return db
}

// countingForge is the forge at the edge for the push test: it keeps the
// merge requests by head branch, as a forge does.
type countingForge struct {
	byHead  map[string]forge.MergeRequest
	upserts int
}

func (f *countingForge) Upsert(_ context.Context, r forge.Request) (forge.MergeRequest, bool, error) {
	f.upserts++
	if mr, ok := f.byHead[r.Head]; ok {
		return mr, false, nil
	}
	mr := forge.MergeRequest{Number: len(f.byHead) + 1, URL: "https://forge.example/mr/" + fmt.Sprint(len(f.byHead)+1), State: "open"}
	f.byHead[r.Head] = mr
	return mr, true, nil
}

func (f *countingForge) Get(context.Context, int) (forge.MergeRequest, error) {
	return forge.MergeRequest{}, nil
}

// TestDeliverToGitDaemon: the fix of a real go.mod and requirements file
// is committed on the fix branch of a bare repository served by git
// daemon on loopback; the base branch is untouched; a second fix after
// the base moved replaces the branch and updates the same merge request.
func TestDeliverToGitDaemon(t *testing.T) {
	t.Parallel()
	db := feedDB(t)
	corpus := sharedtest.Dir(t, "corpus/lockfiles")
	files := map[string][]byte{}
	for dst, src := range map[string]string{"go.mod": "loki/tools/lambda-promtail/go.mod", "go.sum": "loki/tools/lambda-promtail/go.sum", "requirements.txt": "flask/requirements/docs.txt"} {
		files[dst] = mustRead(t, filepath.Join(corpus, src))
	}
	repo := gittest.NewRepo(t, "shop", files, 18300, 18316)
	bare, work, url := repo.Bare, repo.Work, repo.URL
	gitIn := gittest.Git

	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var closed int
	change := func(ctx context.Context, dir string) (forge.Proposed, error) {
		inv, err := collect.Collect(ctx, collect.Options{Paths: []string{dir}})
		if err != nil {
			return forge.Proposed{}, err
		}
		before, err := scan.Run(ctx, db, inv, now)
		if err != nil {
			return forge.Proposed{}, err
		}
		plan, err := remedy.Propose(ctx, db, before, remedy.Options{Now: now})
		if err != nil {
			return forge.Proposed{}, err
		}
		rw, err := edit.Rewrite(ctx, plan, edit.Options{})
		if err != nil {
			return forge.Proposed{}, err
		}
		chk, err := edit.Verify(ctx, db, before, rw, now)
		if err != nil {
			return forge.Proposed{}, err
		}
		closed = len(chk.Closed)
		if err := edit.Apply(rw.Changes); err != nil {
			return forge.Proposed{}, err
		}
		return forge.Proposed{Title: forge.Title("shop", plan.Upgrades), Body: forge.Body("shop", plan.Upgrades, plan.Unfixed)}, nil
	}
	f := &countingForge{byHead: map[string]forge.MergeRequest{}}
	branch := forge.BranchName("shop", "weekly")
	d := forge.Delivery{URL: url, Base: "main", Branch: branch}
	ctx := context.Background()
	got, err := forge.Deliver(ctx, forge.Git{}, f, d, change)
	if err != nil {
		t.Fatal(err)
	}
	if got.Commit == "" || !got.Created || got.MergeRequest.Number != 1 || closed == 0 {
		t.Fatalf("delivered %+v, closed %d", got, closed)
	}
	if head := gitIn(t, bare, "rev-parse", "refs/heads/"+branch); head != got.Commit {
		t.Errorf("branch at %s, pushed %s", head, got.Commit)
	}
	if mod := gitIn(t, bare, "show", branch+":go.mod"); !strings.Contains(mod, "golang.org/x/text v0.39.0 // indirect") {
		t.Errorf("go.mod on the branch:\n%s", mod)
	}
	if req := gitIn(t, bare, "show", branch+":requirements.txt"); !strings.Contains(req, "\nidna==3.7\n") {
		t.Errorf("requirements.txt on the branch:\n%s", req)
	}
	if mod := gitIn(t, bare, "show", "main:go.mod"); !strings.Contains(mod, "golang.org/x/text v0.3.7 // indirect") {
		t.Error("the base branch changed")
	}
	if msg := gitIn(t, bare, "log", "-1", "--format=%an <%ae>%n%B", branch); !strings.HasPrefix(msg, "patchbay <patchbay@localhost>\npatchbay: shop: upgrade ") || !strings.Contains(msg, "closed") {
		t.Errorf("commit:\n%s", msg)
	}

	// The base moves on (a new vulnerable pin); the next fix replaces the
	// branch, on top of the new base, and updates the same merge request.
	if err := os.WriteFile(filepath.Join(work, "requirements.txt"), append(mustRead(t, filepath.Join(work, "requirements.txt")), []byte("pyyaml==5.3\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	gitIn(t, work, "commit", "--quiet", "-am", "pyyaml")
	gitIn(t, work, "push", "--quiet", bare, "main")
	again, err := forge.Deliver(ctx, forge.Git{}, f, d, change)
	if err != nil {
		t.Fatal(err)
	}
	if again.Created || again.MergeRequest.Number != 1 || len(f.byHead) != 1 {
		t.Fatalf("second delivery %+v, %d merge requests", again, len(f.byHead))
	}
	if parent := gitIn(t, bare, "rev-parse", branch+"^"); parent != gitIn(t, bare, "rev-parse", "main") {
		t.Error("the fix branch is not one commit on the new base")
	}
	if req := gitIn(t, bare, "show", branch+":requirements.txt"); !strings.HasSuffix(req, "\npyyaml==5.4") {
		t.Errorf("requirements.txt on the branch:\n%s", req)
	}
	// Nothing to fix: no push, no merge request call.
	n := f.upserts
	none, err := forge.Deliver(ctx, forge.Git{}, f, forge.Delivery{URL: url, Base: branch, Branch: branch + "-again"}, func(context.Context, string) (forge.Proposed, error) {
		return forge.Proposed{Title: "t", Body: "b"}, nil
	})
	if err != nil || none.Commit != "" || f.upserts != n {
		t.Errorf("no change: %+v %v, %d upserts", none, err, f.upserts-n)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
