package pkgmgr

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/internal/sharedtest"
)

const updateinfo = `<?xml version="1.0" encoding="UTF-8"?>
<updates>
  <update from="security@example.com" status="stable" type="security" version="1.0">
    <id>PBSA-2026:0001</id>
    <title>Important: patchbay-demo security update</title>
    <severity>Important</severity>
    <issued date="2026-11-01 00:00:00"/>
    <references>
      <reference href="https://www.cve.org/CVERecord?id=CVE-2026-12345" id="CVE-2026-12345" type="cve" title="CVE-2026-12345"/>
      <reference href="https://www.cve.org/CVERecord?id=CVE-2026-12346" id="CVE-2026-12346" type="cve" title="CVE-2026-12346"/>
    </references>
    <description>Fixes two CVEs.</description>
    <pkglist>
      <collection short="pb">
        <name>patchbay</name>
        <package name="patchbay-demo" version="1.1" release="1" epoch="0" arch="noarch">
          <filename>noarch/patchbay-demo-1.1-1.noarch.rpm</filename>
        </package>
      </collection>
    </pkglist>
  </update>
</updates>
`

// dnfRepo builds two versions of a real noarch RPM with rpmbuild, publishes
// them with createrepo_c and an updateinfo.xml naming CVEs, and returns a
// dnf driver for a fresh installroot that uses only that repository.
func dnfRepo(t *testing.T) (*Dnf, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		sharedtest.System(t, "the dnf tests need root (installroot)")
	}
	for _, tool := range []string{"dnf", "rpmbuild", "createrepo_c", "modifyrepo_c"} {
		if _, err := exec.LookPath(tool); err != nil {
			sharedtest.System(t, tool+" is not installed (apt-get install dnf rpm createrepo-c)")
		}
	}
	dir := t.TempDir()
	repo, root := filepath.Join(dir, "repo"), filepath.Join(dir, "root")
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), "HOME="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	for _, v := range []string{"1.0", "1.1"} {
		spec := filepath.Join(dir, "demo-"+v+".spec")
		os.WriteFile(spec, []byte("Name: patchbay-demo\nVersion: "+v+"\nRelease: 1\nSummary: demo\nLicense: MIT\nBuildArch: noarch\n%description\ndemo\n%files\n"), 0o644)
		run("rpmbuild", "--define", "_topdir "+filepath.Join(dir, "build"), "--define", "_rpmdir "+repo, "-bb", spec)
	}
	run("createrepo_c", "-q", repo)
	ui := filepath.Join(dir, "updateinfo.xml")
	os.WriteFile(ui, []byte(updateinfo), 0o644)
	run("modifyrepo_c", "--mdtype=updateinfo", ui, filepath.Join(repo, "repodata"))
	os.MkdirAll(root, 0o755)
	d := &Dnf{R: &Runner{}, InstallRoot: root, Options: []string{
		"--releasever=9", "--nogpgcheck", "--setopt=reposdir=/dev/null", "--setopt=cachedir=" + filepath.Join(dir, "cache"),
		"--repofrompath=pb,file://" + repo, "--repo=pb",
	}}
	return d, root
}

func rpmQuery(t *testing.T, d *Dnf, name string) string {
	t.Helper()
	inst, err := d.Installed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range inst {
		if p.Name == name {
			return p.Version
		}
	}
	return ""
}

func TestDnfUpdatesWithAdvisoryInstallDowngrade(t *testing.T) {
	d, _ := dnfRepo(t)
	if _, err := d.Install(ctx, []Target{{"patchbay-demo", "1.0-1"}}, InstallOptions{}); err != nil {
		t.Fatal(err)
	}
	ups, err := d.Updates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ups) != 1 {
		t.Fatalf("updates %+v", ups)
	}
	u := ups[0]
	if u.Name != "patchbay-demo" || u.Installed != "1.0-1" || u.Candidate != "1.1-1" || u.Origin != "pb" || u.Pocket != "security" {
		t.Errorf("update %+v", u)
	}
	if u.Advisory == nil || u.Advisory.ID != "PBSA-2026:0001" || u.Advisory.Type != "security" || u.Advisory.Severity != "Important" ||
		!slices.Equal(u.CVEs, []string{"CVE-2026-12345", "CVE-2026-12346"}) {
		t.Errorf("advisory %+v, CVEs %v", u.Advisory, u.CVEs)
	}
	sim, err := d.Simulate(ctx, []Target{{u.Name, u.Candidate}})
	if err != nil || !slices.Equal(sim, []Change{{Action: ActionUpgrade, Name: "patchbay-demo", To: "1.1-1"}}) {
		t.Errorf("simulation %+v %v", sim, err)
	}
	res, err := d.Install(ctx, []Target{{u.Name, u.Candidate}}, InstallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v := rpmQuery(t, d, "patchbay-demo"); v != "1.1-1" || len(res.Changes) != 1 || res.Changes[0].Action != ActionUpgrade {
		t.Errorf("after install: %s %+v", v, res)
	}
	res, err = d.Install(ctx, []Target{{"patchbay-demo", "1.0-1"}}, InstallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v := rpmQuery(t, d, "patchbay-demo"); v != "1.0-1" || len(res.Changes) != 1 || res.Changes[0].Action != ActionDowngrade {
		t.Errorf("after downgrade: %s %+v", v, res)
	}
	res, err = d.Install(ctx, []Target{{"patchbay-demo", "1.0-1"}}, InstallOptions{})
	if err != nil || len(res.Unchanged) != 1 {
		t.Errorf("repeat: %+v %v", res, err)
	}
	if _, err := d.Install(ctx, []Target{{"patchbay-demo", "1.0;reboot"}}, InstallOptions{}); err == nil {
		t.Error("a bad version was accepted")
	}

	// A dnf versionlock entry: the locked package is skipped with the reason.
	os.MkdirAll(filepath.Join(d.InstallRoot, "etc/dnf/plugins"), 0o755)
	os.WriteFile(filepath.Join(d.InstallRoot, "etc/dnf/plugins/versionlock.list"), []byte("# locked\npatchbay-demo-0:1.0-1.*\n"), 0o644)
	res, err = d.Install(ctx, []Target{{"patchbay-demo", "1.1-1"}}, InstallOptions{})
	if err != nil || len(res.Skipped) != 1 || res.Skipped[0].Reason != "locked by dnf versionlock (patchbay-demo-0:1.0-1.*)" || rpmQuery(t, d, "patchbay-demo") != "1.0-1" {
		t.Errorf("locked: %+v %v", res, err)
	}
	os.Remove(filepath.Join(d.InstallRoot, "etc/dnf/plugins/versionlock.list"))

	// Another process holds the rpm database lock: a clear timeout error.
	dbpath, err := exec.Command("rpm", "--eval", "%{_dbpath}").Output()
	if err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(d.InstallRoot, strings.TrimSpace(string(dbpath)), ".rpm.lock")
	holder := holdLockFile(t, lock, time.Minute)
	d.LockTimeout = time.Second
	_, err = d.Install(ctx, []Target{{"patchbay-demo", "1.1-1"}}, InstallOptions{})
	var le *LockError
	if !errors.As(err, &le) || le.PID != holder.Process.Pid || le.Path != lock {
		t.Errorf("err = %v", err)
	}
}
