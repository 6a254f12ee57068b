package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/internal/sharedtest"
)

// An empty KEV catalog does not replace the stored one (exit 2, naming the
// source, the counts and --force) unless --force.
func TestFeedsImportRefusesShrinkUnlessForced(t *testing.T) {
	kev := filepath.Join(sharedtest.Dir(t, "feeds/kev"), "known_exploited_vulnerabilities.json")
	dir := t.TempDir()
	if code, _, errs := run(t, dir, "feeds", "import", kev); code != 0 {
		t.Fatal(errs)
	}
	empty := filepath.Join(t.TempDir(), "known_exploited_vulnerabilities.json")
	if err := os.WriteFile(empty, []byte(`{"catalogVersion":"2026.11.30","count":0,"vulnerabilities":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := run(t, dir, "feeds", "import", empty)
	if code != 2 || !strings.Contains(errs, "kev: refusing "+empty+": it holds 0 records where the index holds 1404") || !strings.Contains(errs, "--force") {
		t.Fatalf("empty KEV catalog: %d %s", code, errs)
	}
	if code, out, _ := run(t, dir, "feeds", "status"); code != 0 || !strings.Contains(out, "1404") {
		t.Errorf("status after the refused import: %s", out)
	}
	if code, out, errs := run(t, dir, "feeds", "import", "--force", empty); code != 0 || !strings.Contains(out, "imported") {
		t.Errorf("--force: %d %s %s", code, out, errs)
	}
	if _, out, _ := run(t, dir, "feeds", "import", "--help"); !strings.Contains(out, "one transaction: OSV, KEV, EPSS, NVD and\nvendor ratings together") {
		t.Errorf("help: %s", out)
	}
}
