package edit_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/inventory/collect"
	"github.com/patchbay/patchbay/remedy"
	"github.com/patchbay/patchbay/remedy/edit"
	"github.com/patchbay/patchbay/scan"
	"github.com/patchbay/patchbay/store/sqlite"
)

var (
	feedOnce sync.Once
	feedDB   *sqlite.DB
	feedErr  error
)

// feedStore is one database of the Go, PyPI and npm feeds and KEV, shared
// by the package's tests (read only).
func feedStore(t testing.TB) *sqlite.DB {
	t.Helper()
	d := sharedtest.Dir(t, "feeds")
	feedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "patchbay-edit-test-")
		if err != nil {
			feedErr = err
			return
		}
		if feedDB, feedErr = sqlite.Open(context.Background(), filepath.Join(dir, "feeds.db")); feedErr != nil {
			return
		}
		im := &feeds.Importer{Store: feedDB}
		_, feedErr = im.ImportPaths(context.Background(), []string{
			filepath.Join(d, "osv/Go/all.zip"), filepath.Join(d, "osv/PyPI/all.zip"), filepath.Join(d, "osv/npm/all.zip"),
			filepath.Join(d, "kev/known_exploited_vulnerabilities.json"),
		})
	})
	if feedErr != nil {
		t.Fatal(feedErr)
	}
	return feedDB
}

var now = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func scanPaths(t testing.TB, paths ...string) scan.Result {
	t.Helper()
	inv, err := collect.Collect(context.Background(), collect.Options{Paths: paths})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Skipped) > 0 {
		t.Fatalf("skipped: %v", inv.Skipped)
	}
	res, err := scan.Run(context.Background(), feedStore(t), inv, now)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// copyFiles copies files of the shared data (relative to it) into a
// temporary directory, keeping their relative paths.
func copyFiles(t *testing.T, rels ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, rel := range rels {
		b, err := os.ReadFile(filepath.Join(sharedtest.Dir(t, "."), rel))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// fixCycle plans, rewrites, verifies and applies under dir, then re-scans
// the files on disk and checks that exactly what Verify said closed is
// gone and nothing is new.
func fixCycle(t *testing.T, dir string, opts edit.Options, strat remedy.Strategy) (remedy.Plan, edit.Result, edit.Check) {
	t.Helper()
	ctx := context.Background()
	db := feedStore(t)
	before := scanPaths(t, dir)
	plan, err := remedy.Propose(ctx, db, before, remedy.Options{Strategy: strat, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	rw, err := edit.Rewrite(ctx, plan, opts)
	if err != nil {
		t.Fatal(err)
	}
	chk, err := edit.Verify(ctx, db, before, rw, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(chk.Opened) > 0 {
		t.Errorf("the rewrite opens %v", chk.Opened)
	}
	if err := edit.Apply(rw.Changes); err != nil {
		t.Fatal(err)
	}
	after := scanPaths(t, dir)
	is := map[string]bool{}
	for _, f := range after.Findings {
		is[f.Package+" "+f.Vulnerability+" "+f.Locations[0]] = true
	}
	was := map[string]bool{}
	for _, f := range before.Findings {
		was[f.Package+" "+f.Vulnerability+" "+f.Locations[0]] = true
	}
	for k := range is {
		if !was[k] {
			t.Errorf("after --apply a new finding: %s", k)
		}
	}
	for _, f := range chk.Closed {
		if is[f.Package+" "+f.Vulnerability+" "+f.Locations[0]] {
			t.Errorf("Verify says %s %s closes, but the applied file still has it", f.Package, f.Vulnerability)
		}
	}
	if want := len(before.Findings) - len(after.Findings); len(chk.Closed) != want {
		t.Errorf("Verify closes %d findings, the applied files %d", len(chk.Closed), want)
	}
	return plan, rw, chk
}

// TestGoModOffline rewrites real go.mod files with modfile alone: every
// upgrade proposed is written, the re-scan closes what the plan says, and
// the note says go.sum was left.
func TestGoModOffline(t *testing.T) {
	t.Parallel()
	dir := copyFiles(t, "corpus/lockfiles/loki/tools/lambda-promtail/go.mod", "corpus/lockfiles/loki/tools/lambda-promtail/go.sum", "corpus/lockfiles/minio/go.mod", "corpus/lockfiles/minio/go.sum")
	plan, rw, chk := fixCycle(t, dir, edit.Options{}, remedy.InPlace)
	if len(plan.Upgrades) < 10 || len(rw.Changes) != 2 {
		t.Fatalf("%d upgrades, %d changes", len(plan.Upgrades), len(rw.Changes))
	}
	promised := 0
	for _, u := range plan.Upgrades {
		promised += len(u.Closes)
	}
	if len(chk.Closed) != promised {
		t.Errorf("the plan promises %d closed findings, the re-scan closes %d", promised, len(chk.Closed))
	}
	if len(rw.Notes) != 2 || !strings.Contains(rw.Notes[0], "go mod tidy") {
		t.Errorf("notes: %q", rw.Notes)
	}
	for _, c := range rw.Changes {
		if c.Tool != "modfile" {
			t.Errorf("%s: tool %s", c.Path, c.Tool)
		}
	}
	d := edit.Diff(rw.Changes)
	if !strings.Contains(d, "--- a/") || !strings.Contains(d, "\n-\tgolang.org/x/text v0.3.7 // indirect\n") || !strings.Contains(d, "\n+\tgolang.org/x/text v0.39.0 // indirect\n") {
		t.Errorf("diff:\n%s", d)
	}
}

// TestRequirementsPins rewrites real requirements files (pip-compile
// output with comments) and re-parses them with the extractor.
func TestRequirementsPins(t *testing.T) {
	t.Parallel()
	var files []string
	for _, f := range []string{"dev", "docs", "tests-pallets-min", "tests", "typing"} {
		files = append(files, "corpus/lockfiles/flask/requirements/"+f+".txt")
	}
	dir := copyFiles(t, append(files, "corpus/lockfiles/netbox/requirements.txt")...)
	plan, rw, chk := fixCycle(t, dir, edit.Options{}, remedy.Relax)
	if len(rw.Changes) < 3 || len(chk.Closed) == 0 {
		t.Fatalf("%d changes, %d closed", len(rw.Changes), len(chk.Closed))
	}
	b, err := os.ReadFile(filepath.Join(dir, "corpus/lockfiles/flask/requirements/docs.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\nidna==3.7\n    # via requests\n") {
		t.Errorf("docs.txt:\n%s", b)
	}
	for _, u := range plan.Upgrades {
		if u.Ecosystem != "PyPI" {
			t.Errorf("upgrade %v", u)
		}
	}
}

// TestHashPinsLeft: a pin with --hash is not rewritten (the hash would be
// wrong); the skip says why and where.
func TestHashPinsLeft(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "requirements.txt")
	if err := os.WriteFile(p, []byte("requests==2.28.1 \\\n    --hash=sha256:8fefa2a1a1365bf5520aac41836fbee479da67864514bdb821f31ce07ce65349\nidna==3.4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := scanPaths(t, dir)
	plan, err := remedy.Propose(context.Background(), feedStore(t), before, remedy.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	rw, err := edit.Rewrite(context.Background(), plan, edit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rw.Skipped) != 1 || rw.Skipped[0].Upgrade.Package != "requests" || !strings.Contains(rw.Skipped[0].Reason, "requirements.txt:1 pins requests with --hash") {
		t.Fatalf("skipped %+v", rw.Skipped)
	}
	if len(rw.Changes) != 1 || !strings.HasSuffix(string(rw.Changes[0].New), "\nidna==3.7\n") {
		t.Fatalf("changes %+v", rw.Changes)
	}
}

// TestGoGetBuilds fixes a small module with the real go command: go.sum
// comes from go get, and the module still verifies and builds.
func TestGoGetBuilds(t *testing.T) {
	t.Parallel()
	goCmd := sharedtest.Tool(t, "go", "go get rewrites go.sum")
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/small\n\ngo 1.26.0\n\nrequire golang.org/x/text v0.3.7\n")
	write("main.go", "package main\n\nimport (\n\t\"fmt\"\n\n\t\"golang.org/x/text/language\"\n)\n\nfunc main() { fmt.Println(language.English) }\n")
	env := []string{"GOFLAGS=-mod=mod", "GOTOOLCHAIN=local", "GOWORK=off"}
	run := func(args ...string) string {
		cmd := exec.Command(goCmd, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			sharedtest.System(t, "go "+strings.Join(args, " ")+" (module proxy reachable?): "+err.Error()+": "+string(out))
		}
		return string(out)
	}
	run("mod", "tidy")
	_, rw, chk := fixCycle(t, dir, edit.Options{Go: goCmd}, remedy.InPlace)
	tools := map[string]string{}
	for _, c := range rw.Changes {
		tools[filepath.Base(c.Path)] = c.Tool
	}
	if tools["go.mod"] != "go get" || tools["go.sum"] != "go get" {
		t.Fatalf("changes %v, notes %q", tools, rw.Notes)
	}
	if len(chk.Closed) == 0 {
		t.Fatal("nothing closed")
	}
	run("mod", "verify")
	run("build", "-o", os.DevNull, ".")
}

// TestNpmRelock fixes a real package-lock.json (nodejs-goof) with the real
// npm client: the re-scan closes what npm moved, and npm ci accepts the
// result.
func TestNpmRelock(t *testing.T) {
	t.Parallel()
	npm := sharedtest.Tool(t, "npm", "npm relocks package-lock.json")
	dir := copyFiles(t, "corpus-npm/lockfiles/nodejs-goof/package.json", "corpus-npm/lockfiles/nodejs-goof/package-lock.json")
	project := filepath.Join(dir, "corpus-npm/lockfiles/nodejs-goof")
	ctx := context.Background()
	before := scanPaths(t, project)
	plan, err := remedy.Propose(ctx, feedStore(t), before, remedy.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	rw, err := edit.Rewrite(ctx, plan, edit.Options{Npm: npm})
	if err != nil {
		sharedtest.System(t, "npm (registry reachable?): "+err.Error())
	}
	chk, err := edit.Verify(ctx, feedStore(t), before, rw, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(chk.Closed) == 0 || len(chk.Opened) > 0 {
		t.Fatalf("closed %d, opened %v", len(chk.Closed), chk.Opened)
	}
	if err := edit.Apply(rw.Changes); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(npm, "ci", "--dry-run", "--ignore-scripts", "--no-audit", "--no-fund")
	cmd.Dir = project
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci --dry-run: %v\n%s", err, out)
	}
}

// TestApplyAtomic: when one file cannot be written, none is.
func TestApplyAtomic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := filepath.Join(dir, "a.txt")
	if err := os.WriteFile(a, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := edit.Apply([]edit.Change{
		{Path: a, New: []byte("new\n")},
		{Path: filepath.Join(dir, "missing", "b.txt"), New: []byte("new\n")},
	})
	if err == nil || !strings.Contains(err.Error(), "missing/b.txt") {
		t.Fatalf("err %v", err)
	}
	if b, _ := os.ReadFile(a); string(b) != "old\n" {
		t.Errorf("a.txt is %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}
}
