package pkgmgr

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/inventory/collect"
)

func findUpdate(us []Update, name string) *Update {
	for i := range us {
		if us[i].Name == name {
			return &us[i]
		}
	}
	return nil
}

// TestAptUpdatesInstallDowngrade: on a real bookworm root, list the
// security updates with their pocket and CVEs, simulate, install the
// candidates, verify with dpkg-query, downgrade back to the point-release
// versions, verify again, and see a repeated install do nothing.
func TestAptUpdatesInstallDowngrade(t *testing.T) {
	root := bookwormRoot(t)
	a := newApt(t, root)
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	ups, err := a.Updates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"apt", "liblzma5"} {
		u := findUpdate(ups, name)
		if u == nil {
			t.Fatalf("no update for %s in %+v", name, ups)
		}
		if u.Pocket != "security" || u.Origin != "bookworm-security" || u.Held {
			t.Errorf("%s: %+v", name, u)
		}
		if u.Installed != query(t, root, name) {
			t.Errorf("%s: installed %s, dpkg says %s", name, u.Installed, query(t, root, name))
		}
	}
	// CVEs come from the candidate's changelog entries above the installed
	// version: pcre2's 10.42-1+deb12u2 names CVE-2026-103111; xz-utils'
	// 5.4.1-1+deb12u2 names only a GHSA, and CVE-2026-34743 belongs to the
	// installed 5.4.1-1+deb12u1, so it is not counted.
	pcre := findUpdate(ups, "libpcre2-8-0")
	if pcre == nil || pcre.SourceName != "pcre2" || !slices.Contains(pcre.CVEs, "CVE-2026-103111") {
		t.Errorf("libpcre2-8-0: %+v", pcre)
	}
	lzma := findUpdate(ups, "liblzma5")
	if lzma.SourceName != "xz-utils" || slices.Contains(lzma.CVEs, "CVE-2026-34743") {
		t.Errorf("liblzma5: source %q, CVEs %v", lzma.SourceName, lzma.CVEs)
	}
	for _, u := range ups {
		for _, c := range u.CVEs {
			if !strings.HasPrefix(c, "CVE-") {
				t.Errorf("%s: not a CVE id: %q", u.Name, c)
			}
		}
	}

	var targets, back []Target
	for _, u := range ups {
		targets = append(targets, Target{u.Name, u.Candidate})
		back = append(back, Target{u.Name, u.Installed})
	}
	sim, err := a.Simulate(ctx, targets)
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		if !slices.ContainsFunc(sim, func(c Change) bool { return c.Name == tg.Name && c.Action == ActionUpgrade && c.To == tg.Version }) {
			t.Errorf("simulation lacks the upgrade of %s: %+v", tg, sim)
		}
	}
	if v := query(t, root, "liblzma5"); v != lzma.Installed {
		t.Fatalf("simulation changed liblzma5 to %s", v)
	}

	res, err := a.Install(ctx, targets, InstallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		if v := query(t, root, tg.Name); v != tg.Version {
			t.Errorf("after install %s is %s, want %s", tg.Name, v, tg.Version)
		}
		if !slices.ContainsFunc(res.Changes, func(c Change) bool { return c.Name == tg.Name && c.Action == ActionUpgrade }) {
			t.Errorf("result lacks the upgrade of %s: %+v", tg.Name, res.Changes)
		}
	}

	res, err = a.Install(ctx, back, InstallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range back {
		if v := query(t, root, tg.Name); v != tg.Version {
			t.Errorf("after downgrade %s is %s, want %s", tg.Name, v, tg.Version)
		}
		if !slices.ContainsFunc(res.Changes, func(c Change) bool { return c.Name == tg.Name && c.Action == ActionDowngrade }) {
			t.Errorf("result lacks the downgrade of %s: %+v", tg.Name, res.Changes)
		}
	}

	// Idempotent: nothing to do, no apt-get install run.
	before := len(a.R.Log())
	res, err = a.Install(ctx, back, InstallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Unchanged) != len(back) || len(res.Changes) != 0 {
		t.Errorf("repeated install: %+v", res)
	}
	for _, c := range a.R.Log()[before:] {
		if slices.Contains(c.Args, "install") {
			t.Errorf("repeated install ran %s", c)
		}
	}
	// Every command is in the log with its exit status.
	for _, c := range a.R.Log() {
		if c.Exit != 0 && !slices.Contains(c.Args, "--audit") {
			t.Errorf("command %s exited %d", c, c.Exit)
		}
	}
}

func TestAptHeldPackageIsSkipped(t *testing.T) {
	root := bookwormRoot(t)
	a := newApt(t, root)
	a.Changelogs = nil
	if out, err := exec.Command("chroot", root, "apt-mark", "hold", "liblzma5").CombinedOutput(); err != nil {
		t.Fatalf("apt-mark hold: %v %s", err, out)
	}
	ups, err := a.Updates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	u := findUpdate(ups, "liblzma5")
	if u == nil || !u.Held {
		t.Fatalf("liblzma5 update %+v, want held", u)
	}
	installed := u.Installed
	res, err := a.Install(ctx, []Target{{"liblzma5", u.Candidate}}, InstallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0].Reason, "held at "+installed) || len(res.Changes) != 0 {
		t.Errorf("result %+v", res)
	}
	if v := query(t, root, "liblzma5"); v != installed {
		t.Errorf("held package changed to %s", v)
	}
}

// holdLock takes dpkg's frontend lock in another process (python's lockf
// is the fcntl lock apt uses) for d.
func holdLock(t *testing.T, root string, d time.Duration) *exec.Cmd {
	t.Helper()
	return holdLockFile(t, filepath.Join(root, "var/lib/dpkg/lock-frontend"), d)
}

// holdLockFile takes an fcntl lock on path in another process for d.
func holdLockFile(t *testing.T, path string, d time.Duration) *exec.Cmd {
	t.Helper()
	script := "import fcntl,sys,time\nf=open(sys.argv[1],'a+')\nfcntl.lockf(f,fcntl.LOCK_EX)\nprint('locked',flush=True)\ntime.sleep(float(sys.argv[2]))\n"
	cmd := exec.Command("/usr/bin/python3", "-c", script, path, strconv.FormatFloat(d.Seconds(), 'f', -1, 64))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		sharedtest.System(t, "python3: "+err.Error())
	}
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "locked\n" {
		t.Fatalf("lock holder did not start: %q %v", line, err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

func TestAptWaitsForTheDpkgLock(t *testing.T) {
	root := bookwormRoot(t)
	a := newApt(t, root)
	a.Changelogs = nil
	ups, err := a.Updates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	u := findUpdate(ups, "liblzma5")
	target := []Target{{u.Name, u.Candidate}}

	// Held longer than the timeout: a clear error naming the holder.
	holder := holdLock(t, root, 60*time.Second)
	a.LockTimeout = 2 * time.Second
	start := time.Now()
	_, err = a.Install(ctx, target, InstallOptions{})
	var le *LockError
	if !errors.As(err, &le) || le.PID != holder.Process.Pid || !strings.Contains(le.Holder, "python3") || time.Since(start) < 2*time.Second {
		t.Fatalf("err = %v (after %s)", err, time.Since(start))
	}
	if !strings.Contains(err.Error(), "lock /") || !strings.Contains(err.Error(), "lock-frontend is held by pid") {
		t.Errorf("message %q", err)
	}
	holder.Process.Kill()
	holder.Wait()

	// Released within the timeout: the install waits and goes ahead.
	holdLock(t, root, 1500*time.Millisecond)
	a.LockTimeout = 30 * time.Second
	if _, err := a.Install(ctx, target, InstallOptions{}); err != nil {
		t.Fatal(err)
	}
	if v := query(t, root, "liblzma5"); v != u.Candidate {
		t.Errorf("liblzma5 at %s after waiting for the lock", v)
	}
}

// TestAptRecoversAnInterruptedRun kills apt-get in the middle of dpkg's
// work and sees the next install finish the interrupted run first.
func TestAptRecoversAnInterruptedRun(t *testing.T) {
	root := bookwormRoot(t)
	a := newApt(t, root)
	a.Changelogs = nil
	ups, err := a.Updates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var targets []Target
	for _, u := range ups {
		targets = append(targets, Target{u.Name, u.Candidate})
	}
	// Download first, so that the killed run is busy in dpkg, not the network.
	args := []string{root, "apt-get", "install", "-y", "-q", "--download-only"}
	for _, tg := range targets {
		args = append(args, tg.String())
	}
	if out, err := exec.Command("chroot", args...).CombinedOutput(); err != nil {
		t.Fatalf("download: %v %s", err, out)
	}
	args[5] = "--no-install-recommends"
	cmd := exec.Command("chroot", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill the whole process group as soon as dpkg has journalled a change.
	updates := filepath.Join(root, "var/lib/dpkg/updates")
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if es, _ := os.ReadDir(updates); len(es) > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	cmd.Wait()
	audit, _ := exec.Command("chroot", root, "dpkg", "--audit").CombinedOutput()
	journal, _ := os.ReadDir(updates)
	if len(strings.TrimSpace(string(audit))) == 0 && len(journal) == 0 {
		t.Skip("apt-get finished before it could be killed; nothing was interrupted")
	}
	res, err := a.Install(ctx, targets, InstallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Recovered {
		t.Error("the interrupted run was not reported as recovered")
	}
	if out, _ := exec.Command("chroot", root, "dpkg", "--audit").CombinedOutput(); len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("dpkg --audit after recovery: %s", out)
	}
	for _, tg := range targets {
		if v := query(t, root, tg.Name); v != tg.Version {
			t.Errorf("%s at %s, want %s", tg.Name, v, tg.Version)
		}
	}
}

func TestRefusesBadNamesBeforeRunningAnything(t *testing.T) {
	a := &Apt{R: &Runner{Root: t.TempDir()}}
	for _, tg := range []Target{{"foo;rm -rf /", "1.0"}, {"Foo", "1.0"}, {"foo", "1.0; reboot"}, {"foo", "-1"}, {"-foo", "1"}} {
		if _, err := a.Install(ctx, []Target{tg}, InstallOptions{}); err == nil || !strings.Contains(err.Error(), "not a valid Debian") {
			t.Errorf("%v: %v", tg, err)
		}
	}
	if len(a.R.Log()) != 0 {
		t.Errorf("commands ran: %v", a.R.Log())
	}
}

// TestAptInstalledAgreesWithInventory: the driver and the inventory
// collector (osv-scalibr's dpkg extractor) see the same packages.
func TestAptInstalledAgreesWithInventory(t *testing.T) {
	root := bookwormRoot(t)
	a := newApt(t, root)
	inst, err := a.Installed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := collect.Collect(ctx, collect.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, p := range inv.Packages {
		want[p.Name] = p.Version + " " + p.SourceName + " " + p.SourceVersion
	}
	if len(inst) != len(want) || len(inst) < 80 {
		t.Errorf("driver sees %d packages, inventory %d", len(inst), len(want))
	}
	for _, p := range inst {
		if got := p.Version + " " + p.SourceName + " " + p.SourceVersion; want[p.Name] != got {
			t.Errorf("%s: driver %q, inventory %q", p.Name, got, want[p.Name])
		}
	}
}

func TestRunnerLimitsOutputAndRecordsEveryCommand(t *testing.T) {
	r := &Runner{MaxOutput: 100}
	c, err := r.Run(ctx, "sh", "-c", "seq 1 1000; exit 3")
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Cmd.Exit != 3 || !strings.Contains(err.Error(), "sh -c seq 1 1000; exit 3: exit status 3: 998 / 999 / 1000") {
		t.Fatalf("err = %v", err)
	}
	if !strings.HasSuffix(strings.TrimSpace(c.Output), "1000") {
		t.Errorf("the caller sees the whole output")
	}
	log := r.Log()
	if len(log) != 1 || !log[0].Truncated || len(log[0].Output) > 140 || log[0].Exit != 3 || !strings.HasPrefix(log[0].Output, "1\n2\n") {
		t.Errorf("log %+v", log)
	}
}
