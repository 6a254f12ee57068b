package pkgmgr

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestRebootRequired(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "boot"), 0o755)
	os.MkdirAll(filepath.Join(root, "run"), 0o755)
	for _, k := range []string{"vmlinuz-6.1.0-27-amd64", "vmlinuz-6.1.0-30-amd64", "vmlinuz-6.1.0-9-amd64", "config-6.1.0-31-amd64"} {
		os.WriteFile(filepath.Join(root, "boot", k), nil, 0o644)
	}
	// For a chroot the running kernel is the host's, so it is no reason.
	rb := &Reboot{R: &Runner{Root: root}, Uname: func() (string, error) { return "6.1.0-27-amd64", nil }}
	st, err := rb.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Required || st.NewestKernel != "6.1.0-30-amd64" || st.RunningKernel != "6.1.0-27-amd64" {
		t.Errorf("chroot: %+v (a chroot's running kernel is the host's: not a reason)", st)
	}
	os.WriteFile(filepath.Join(root, "run/reboot-required"), []byte("*** System restart required ***\n"), 0o644)
	os.WriteFile(filepath.Join(root, "run/reboot-required.pkgs"), []byte("libc6\nlinux-image-6.1.0-30-amd64\nlibc6\n"), 0o644)
	st, err = rb.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Required || len(st.Reasons) != 1 || st.Reasons[0] != "/run/reboot-required exists (libc6, linux-image-6.1.0-30-amd64)" {
		t.Errorf("%+v", st)
	}
	if r := kernelReason("6.1.0-27-amd64", "6.1.0-30-amd64"); r != "running kernel 6.1.0-27-amd64 is older than the newest installed, 6.1.0-30-amd64" {
		t.Errorf("kernel reason %q", r)
	}
	if r := kernelReason("6.1.0-30-amd64", "6.1.0-30-amd64"); r != "" {
		t.Errorf("same kernel: %q", r)
	}
	if k, _ := newestKernel(root); k != "6.1.0-30-amd64" {
		t.Errorf("newest kernel %q (6.1.0-30 > 6.1.0-27 > 6.1.0-9, numerically)", k)
	}
}

func TestStaleProcessesMapDeletedLibraries(t *testing.T) {
	lib := "/usr/lib/x86_64-linux-gnu/libz.so.1"
	if _, err := os.Stat(lib); err != nil {
		t.Skip("no libz to map")
	}
	dir := t.TempDir()
	copyLib := filepath.Join(dir, "libpatchbaytest.so.1")
	b, _ := os.ReadFile(lib)
	os.WriteFile(copyLib, b, 0o755)
	cmd := exec.Command("/usr/bin/python3", "-c", "import ctypes,sys,time\nctypes.CDLL(sys.argv[1])\nprint('ok',flush=True)\ntime.sleep(60)\n", copyLib)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Skip("python3: " + err.Error())
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ok\n" {
		t.Fatalf("helper: %q %v", line, err)
	}
	// The library is replaced on disk, as an upgrade does.
	os.Remove(copyLib)
	stale, err := StaleProcesses("/proc", "/")
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(stale, func(p StaleProcess) bool { return p.PID == cmd.Process.Pid })
	if i < 0 {
		t.Fatalf("pid %d not among %+v", cmd.Process.Pid, stale)
	}
	if !slices.Contains(stale[i].Libraries, copyLib) || !strings.HasPrefix(stale[i].Command, "python3") {
		t.Errorf("%+v", stale[i])
	}
	// A process of another root is not this root's.
	other, err := StaleProcesses("/proc", dir)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(other, func(p StaleProcess) bool { return p.PID == cmd.Process.Pid }) {
		t.Error("a process of / reported for another root")
	}
}

func TestUnitOf(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]string{
		"0::/system.slice/nginx.service\n":              "nginx.service",
		"12:pids:/system.slice/ssh.service\n0::/\n":     "ssh.service",
		"0::/user.slice/user-0.slice/session-3.scope\n": "session-3.scope",
		"0::/\n": "",
	} {
		p := filepath.Join(dir, "cgroup")
		os.WriteFile(p, []byte(content), 0o644)
		if got := unitOf(p); got != want {
			t.Errorf("%q → %q, want %q", content, got, want)
		}
	}
}
