// Package sharedtest finds the project's shared real-data directory
// (../shared beside the repository: advisory feeds, dpkg fixtures, the
// lockfile corpus) for tests. A test that needs it skips with a clear
// message when it is absent, and fails instead when PATCHBAY_REQUIRE_SHARED=1
// (as in CI).
package sharedtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Dir returns the absolute path of shared/<rel>, or skips (fails when
// required) the test when it does not exist.
func Dir(tb testing.TB, rel string) string {
	tb.Helper()
	root := os.Getenv("PATCHBAY_SHARED")
	if root == "" {
		wd, err := os.Getwd()
		if err != nil {
			tb.Fatal(err)
		}
		// Walk up to the module root (the directory holding go.mod).
		for dir := wd; ; dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				root = filepath.Join(filepath.Dir(dir), "shared")
				break
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	p := filepath.Join(root, rel)
	if _, err := os.Stat(p); err != nil {
		Missing(tb, "shared data "+p+" is absent ("+err.Error()+"); set PATCHBAY_SHARED or check out shared/ beside the repository")
	}
	return p
}

// Missing skips the test with msg, or fails it when PATCHBAY_REQUIRE_SHARED=1.
func Missing(tb testing.TB, msg string) {
	tb.Helper()
	if os.Getenv("PATCHBAY_REQUIRE_SHARED") == "1" {
		tb.Fatal("PATCHBAY_REQUIRE_SHARED=1: " + msg)
	}
	tb.Skip(msg)
}

// Tool returns the path of an external oracle program, or skips (fails
// when PATCHBAY_REQUIRE_SHARED=1) when it is not installed.
func Tool(tb testing.TB, name, why string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(tb, name+" is not installed ("+why+")")
	}
	return p
}

// System skips the test with msg (a missing privilege, program or network
// access), or fails it when PATCHBAY_REQUIRE_SYSTEM=1, as in CI, where the
// real-system tests must run.
func System(tb testing.TB, msg string) {
	tb.Helper()
	if os.Getenv("PATCHBAY_REQUIRE_SYSTEM") == "1" {
		tb.Fatal("PATCHBAY_REQUIRE_SYSTEM=1: " + msg)
	}
	tb.Skip(msg)
}

// DebianRoot makes a Debian 12 (bookworm) root for tests: the shared dpkg
// status fixture (fixtures/dpkg/<fixture>) as var/lib/dpkg/status, and a
// bookworm os-release.
func DebianRoot(tb testing.TB, fixture string) string {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(Dir(tb, "fixtures/dpkg"), fixture))
	if err != nil {
		tb.Fatal(err)
	}
	root := tb.TempDir()
	osRelease := "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n"
	for path, content := range map[string]string{"var/lib/dpkg/status": string(data), "etc/os-release": osRelease} {
		p := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return root
}
