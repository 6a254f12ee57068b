// Package debroot makes real Debian 12 roots for tests: a minimal
// bookworm (debootstrap --variant=minbase) with bookworm-security in its
// sources and current package lists, built once and unpacked per test.
package debroot

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/patchbay/patchbay/internal/sharedtest"
)

const mirror = "http://deb.debian.org/debian"

var (
	tarOnce sync.Once
	tarPath string
	tarErr  error
)

// Bookworm returns a fresh copy of a minimal Debian 12 root
// (debootstrap --variant=minbase) with bookworm-security in its sources and
// current package lists. The root is built once and kept as a tarball in
// the cache directory ($PATCHBAY_TEST_CACHE, or the user cache dir).
func Bookworm(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		sharedtest.System(t, "the Debian root tests need root (chroot, dpkg)")
	}
	for _, tool := range []string{"debootstrap", "chroot", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			sharedtest.System(t, tool+" is not installed (apt-get install debootstrap)")
		}
	}
	client := http.Client{Timeout: 10 * time.Second}
	if resp, err := client.Head(mirror + "/dists/bookworm/Release"); err != nil {
		sharedtest.System(t, "the Debian mirror is not reachable: "+err.Error())
	} else {
		resp.Body.Close()
	}
	tarOnce.Do(func() { tarPath, tarErr = buildTarball() })
	if tarErr != nil {
		t.Fatal(tarErr)
	}
	root := filepath.Join(t.TempDir(), "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("tar", "-xpf", tarPath, "-C", root).CombinedOutput(); err != nil {
		t.Fatalf("unpack root: %v\n%s", err, out)
	}
	return root
}

func buildTarball() (string, error) {
	dir := os.Getenv("PATCHBAY_TEST_CACHE")
	if dir == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(c, "patchbay-test")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tarball := filepath.Join(dir, "bookworm-minbase.tar")
	// Test binaries of several packages run at once: one builds, the others
	// wait for it.
	lock, err := os.OpenFile(filepath.Join(dir, "bookworm-minbase.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if st, err := os.Stat(tarball); err == nil && time.Since(st.ModTime()) < 24*time.Hour {
		return tarball, nil
	}
	root, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(root)
	run := func(name string, args ...string) error {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := run("debootstrap", "--variant=minbase", "bookworm", root, mirror); err != nil {
		return "", err
	}
	sources := "deb " + mirror + " bookworm main\ndeb http://deb.debian.org/debian-security bookworm-security main\ndeb " + mirror + " bookworm-updates main\n"
	if err := os.WriteFile(filepath.Join(root, "etc/apt/sources.list"), []byte(sources), 0o644); err != nil {
		return "", err
	}
	if b, err := os.ReadFile("/etc/resolv.conf"); err == nil {
		os.WriteFile(filepath.Join(root, "etc/resolv.conf"), b, 0o644)
	}
	if err := run("chroot", root, "apt-get", "update", "-q"); err != nil {
		return "", err
	}
	tmp := tarball + ".tmp"
	if err := run("tar", "-cpf", tmp, "-C", root, "."); err != nil {
		return "", err
	}
	return tarball, os.Rename(tmp, tarball)
}

// Query asks dpkg in the root, independently of the driver, for a
// package's version.
func Query(t *testing.T, root, name string) string {
	t.Helper()
	out, err := exec.Command("chroot", root, "dpkg-query", "-W", "-f", "${Version}", name).Output()
	if err != nil {
		t.Fatalf("dpkg-query %s: %v", name, err)
	}
	return string(out)
}
