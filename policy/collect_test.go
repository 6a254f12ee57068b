package policy

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCollectFilesSkipsHidden: a directory's hidden files and directories
// (a repository's .gitlab-ci.yml, .github/workflows) are not policy
// documents; a hidden file named explicitly is read.
func TestCollectFilesSkipsHidden(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"teams.yaml", ".gitlab-ci.yml", ".github/workflows/ci.yml", "sub/hosts.yml"} {
		p := filepath.Join(dir, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("x: 1\n"), 0o644)
	}
	files, err := CollectFiles([]string{dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Name != filepath.Join(dir, "sub/hosts.yml") || files[1].Name != filepath.Join(dir, "teams.yaml") {
		t.Errorf("files: %v", files)
	}
	files, err = CollectFiles([]string{filepath.Join(dir, ".gitlab-ci.yml")}, nil)
	if err != nil || len(files) != 1 {
		t.Errorf("a hidden file named: %v %v", files, err)
	}
}
