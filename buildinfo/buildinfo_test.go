package buildinfo

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestReadSettings(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "4a33067d34493935fd568cd11a3c56efc69974b8"},
		{Key: "vcs.time", Value: "2026-12-01T11:12:20Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	in := read(func() (*debug.BuildInfo, bool) { return bi, true })
	if in.Version != "dev" || in.Revision != "4a33067d34493935fd568cd11a3c56efc69974b8" || !in.Modified || !in.TimeIsCommit {
		t.Fatalf("read = %+v", in)
	}
	if got, want := in.Short(), "dev+4a33067d3449.dirty"; got != want {
		t.Errorf("Short = %q, want %q", got, want)
	}
	if got, want := in.String(), "dev (revision 4a33067d3449, modified; commit time 2026-12-01T11:12:20Z; go1.26.8)"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	// A module version from go install wins over "dev"; ldflags win over both.
	bi.Main.Version = "v1.4.0"
	if in := read(func() (*debug.BuildInfo, bool) { return bi, true }); in.Version != "v1.4.0" {
		t.Errorf("module version: %+v", in)
	}
	version, built = "v2.0.0", "2026-12-02T00:00:00Z"
	defer func() { version, built = "", "" }()
	in = read(func() (*debug.BuildInfo, bool) { return bi, true })
	if in.Version != "v2.0.0" || in.Time != "2026-12-02T00:00:00Z" || in.TimeIsCommit {
		t.Errorf("ldflags: %+v", in)
	}
	if !strings.Contains(in.String(), "built 2026-12-02T00:00:00Z") {
		t.Errorf("String = %q", in.String())
	}
	none := read(func() (*debug.BuildInfo, bool) { return nil, false })
	if none.Version != "v2.0.0" || none.Revision != "" {
		t.Errorf("no build info: %+v", none)
	}
}

// TestBuiltBinaryCarriesRevision builds a small program from this module
// with VCS stamping on and checks Get reports the checkout's revision.
func TestBuiltBinaryCarriesRevision(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(strings.TrimSpace(string(top)), ".git")); err != nil || !st.IsDir() {
		// The go command does not stamp builds in a linked worktree (.git is a file there).
		t.Skip("a git worktree: the go command records no VCS information here")
	}
	dir := t.TempDir()
	main := filepath.Join("testdata", "printinfo")
	bin := filepath.Join(dir, "printinfo")
	cmd := exec.Command("go", "build", "-buildvcs=true", "-o", bin, "./"+main)
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	if rev := strings.TrimSpace(string(head)); !strings.Contains(string(out), rev[:12]) {
		t.Errorf("binary says %q, want revision %s", out, rev[:12])
	}
}
