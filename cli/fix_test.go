package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/internal/sharedtest"
)

// fixFixture copies real corpus files (a go.mod with its go.sum, flask's
// pip-compile requirements) into a temporary directory.
func fixFixture(t *testing.T) string {
	t.Helper()
	corpus := sharedtest.Dir(t, "corpus/lockfiles")
	dir := t.TempDir()
	for _, rel := range []string{"loki/tools/lambda-promtail/go.mod", "loki/tools/lambda-promtail/go.sum", "flask/requirements/docs.txt"} {
		b, err := os.ReadFile(filepath.Join(corpus, rel))
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

func fixJSON(t *testing.T, dataDir string, args ...string) fixReport {
	t.Helper()
	code, out, errs := run(t, dataDir, append([]string{"fix", "--stale-after", "0", "-o", "json"}, args...)...)
	if code != 0 {
		t.Fatalf("fix exit %d: %s", code, errs)
	}
	var rep fixReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("fix JSON: %v\n%s", err, out)
	}
	return rep
}

// TestFixApplyCloses: fix --apply closes exactly the findings it says
// (scan before and after), opens none, and gives every finding left a
// reason; without --apply nothing changes.
func TestFixApplyCloses(t *testing.T) {
	t.Parallel()
	data := withFeeds(t)
	dir := fixFixture(t)
	gomod := filepath.Join(dir, "loki/tools/lambda-promtail/go.mod")
	orig, _ := os.ReadFile(gomod)
	before := scanJSON(t, data, "--stale-after", "0", dir)

	dry := fixJSON(t, data, "--offline", dir)
	if now, _ := os.ReadFile(gomod); string(now) != string(orig) {
		t.Fatal("fix without --apply changed go.mod")
	}
	if len(dry.Upgrades) == 0 || len(dry.Closed) == 0 || len(dry.Opened) != 0 || dry.Applied {
		t.Fatalf("upgrades %d, closed %d, opened %d, applied %v", len(dry.Upgrades), len(dry.Closed), len(dry.Opened), dry.Applied)
	}
	if !strings.Contains(dry.Diff, "+idna==3.7\n") || !strings.Contains(dry.Diff, "+\tgolang.org/x/text v0.39.0 // indirect\n") {
		t.Errorf("diff:\n%s", dry.Diff)
	}
	for _, u := range dry.Unfixed {
		if u.Reason == "" {
			t.Errorf("%s: no reason", u.Finding)
		}
	}
	if got := len(dry.Closed) + len(dry.Unfixed); got != len(before.Findings) {
		t.Errorf("closed %d + left %d != %d findings", len(dry.Closed), len(dry.Unfixed), len(before.Findings))
	}

	applied := fixJSON(t, data, "--offline", "--apply", dir)
	if !applied.Applied || len(applied.Closed) != len(dry.Closed) {
		t.Fatalf("applied %v, closed %d (dry run %d)", applied.Applied, len(applied.Closed), len(dry.Closed))
	}
	after := scanJSON(t, data, "--stale-after", "0", dir)
	if len(after.Findings) != len(before.Findings)-len(dry.Closed) {
		t.Errorf("after --apply %d findings, want %d - %d", len(after.Findings), len(before.Findings), len(dry.Closed))
	}
	open := map[string]bool{}
	for _, f := range after.Findings {
		open[f.Package+" "+f.Vulnerability] = true
	}
	for _, f := range dry.Closed {
		if open[f.Package+" "+f.Vulnerability] {
			t.Errorf("%s %s: said closed, still found", f.Package, f.Vulnerability)
		}
	}
	// Nothing is left to do the second time but what has reasons.
	again := fixJSON(t, data, "--offline", dir)
	if len(again.Changes) != 0 {
		t.Errorf("a second fix still changes %d files", len(again.Changes))
	}
}

// TestFixGatesAndPriority: --min-age holds back every version offline
// (no release dates) but for KEV bypasses, with that reason; --priority
// leaves lower findings with theirs; the table says what was left.
func TestFixGatesAndPriority(t *testing.T) {
	t.Parallel()
	data := withFeeds(t)
	dir := fixFixture(t)
	gated := fixJSON(t, data, "--offline", "--min-age", "7d", dir)
	for _, u := range gated.Upgrades {
		if u.AgeBypass == "" {
			t.Errorf("%s %s proposed through the release-age gate without a KEV finding", u.Package, u.To)
		}
	}
	n := 0
	for _, u := range gated.Unfixed {
		if strings.Contains(u.Reason, "release date is unknown") {
			n++
		}
	}
	if n == 0 {
		t.Error("no finding held back by the release-age gate")
	}
	p2 := fixJSON(t, data, "--offline", "--priority", "P2", dir)
	for _, u := range p2.Upgrades {
		if u.Priority() > 2 {
			t.Errorf("--priority P2 proposes %s for %s findings only", u.Package, u.Priority())
		}
	}
	code, out, _ := run(t, data, "fix", "--offline", "--stale-after", "0", "--strategy", "sideways", dir)
	if code != 2 {
		t.Errorf("--strategy sideways: exit %d\n%s", code, out)
	}
	code, out, errs := run(t, data, "fix", "--offline", "--stale-after", "0", dir)
	if code != 0 || !strings.Contains(out, "re-scan of the rewritten files: closes ") || !strings.Contains(out, "left open:") || !strings.Contains(out, "nothing written: --apply rewrites 2 files") {
		t.Errorf("exit %d\n%s\n%s", code, out, errs)
	}
}
