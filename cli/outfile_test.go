package cli

import (
	"os"
	"path/filepath"
	"testing"
)

// TestOutputFileWholeOrNothing: what a command writes to --output-file
// replaces the file only when committed; aborted part way, the old file
// is intact and nothing is left beside it.
func TestOutputFileWholeOrNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "report.json")
	os.WriteFile(path, []byte("old report\n"), 0o644)

	f, err := createOutput(path)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("half of a new rep")
	f.abort()
	if b, _ := os.ReadFile(path); string(b) != "old report\n" {
		t.Errorf("after an abort: %q", b)
	}
	if es, _ := os.ReadDir(dir); len(es) != 1 {
		t.Errorf("left beside it: %v", es)
	}

	f, err = createOutput(path)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("new report\n")
	if err := f.commit(); err != nil {
		t.Fatal(err)
	}
	f.abort() // as the deferred call does: a no-op after commit
	b, _ := os.ReadFile(path)
	st, _ := os.Stat(path)
	if string(b) != "new report\n" || st.Mode().Perm() != 0o644 {
		t.Errorf("after a commit: %q %v", b, st.Mode())
	}
	if es, _ := os.ReadDir(dir); len(es) != 1 {
		t.Errorf("left beside it: %v", es)
	}
	if _, err := createOutput(filepath.Join(dir, "no-such-dir", "r.json")); err == nil {
		t.Error("an output file in a missing directory was made")
	}
}
