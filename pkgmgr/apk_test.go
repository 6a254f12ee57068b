package pkgmgr

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Real entries of an Alpine 3.20 installed database.
const apkInstalled = `C:Q1Ek3ZL0hNH0nRdm3AqgdjqOIqmwo=
P:libcrypto3
V:3.3.2-r0
A:x86_64
S:1696234
I:4796416
T:Crypto library from openssl
o:openssl
m:Ariadne Conill <ariadne@dereferenced.org>

C:Q1hQ3n5X8o5u3y5o1h5m8n0u2b6kF0E=
P:musl
V:1.2.5-r0
A:x86_64
o:musl
`

// fakeApk answers like apk does (formats from apk-tools 2.14) and records
// every command.
func fakeApk(t *testing.T) (*Apk, *[][]string) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "lib/apk/db"), 0o755)
	os.WriteFile(filepath.Join(root, "lib/apk/db/installed"), []byte(apkInstalled), 0o644)
	var calls [][]string
	r := &Runner{Exec: func(_ context.Context, args []string) (string, int, error) {
		calls = append(calls, args)
		switch {
		case slices.Contains(args, "version"):
			return "Installed:                                Available:\nlibcrypto3-3.3.2-r0                     < 3.3.3-r0\n", 0, nil
		case slices.Contains(args, "policy"):
			return "libcrypto3 policy:\n  3.3.3-r0:\n    https://dl-cdn.alpinelinux.org/alpine/v3.20/main\n  3.3.2-r0:\n    lib/apk/db/installed\n    https://dl-cdn.alpinelinux.org/alpine/v3.20/main\n", 0, nil
		case slices.Contains(args, "--simulate"):
			return "(1/2) Upgrading libcrypto3 (3.3.2-r0 -> 3.3.3-r0)\n(2/2) Installing ca-certificates-bundle (20240705-r0)\nOK: 8 MiB in 15 packages\n", 0, nil
		}
		return "", 0, nil
	}}
	return &Apk{R: r, Root: root}, &calls
}

func TestApkDriver(t *testing.T) {
	a, calls := fakeApk(t)
	inst, err := a.Installed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(inst) != 2 || inst[0].Name != "libcrypto3" || inst[0].Version != "3.3.2-r0" || inst[0].SourceName != "openssl" || inst[1].SourceName != "musl" {
		t.Errorf("installed %+v", inst)
	}
	ups, err := a.Updates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ups) != 1 || ups[0].Name != "libcrypto3" || ups[0].Installed != "3.3.2-r0" || ups[0].Candidate != "3.3.3-r0" ||
		ups[0].SourceName != "openssl" || ups[0].Origin != "https://dl-cdn.alpinelinux.org/alpine/v3.20/main" {
		t.Errorf("updates %+v", ups)
	}
	sim, err := a.Simulate(ctx, []Target{{"libcrypto3", "3.3.3-r0"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{{Action: ActionUpgrade, Name: "libcrypto3", From: "3.3.2-r0", To: "3.3.3-r0"}, {Action: ActionInstall, Name: "ca-certificates-bundle", To: "20240705-r0"}}
	if !slices.Equal(sim, want) {
		t.Errorf("simulation %+v", sim)
	}
	args, err := a.InstallArgs([]Target{{"libcrypto3", "3.3.3-r0"}, {"musl", "1.2.4-r2"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(args, " "); got != "apk --root "+a.Root+" add --no-interactive libcrypto3=3.3.3-r0 musl=1.2.4-r2" {
		t.Errorf("install command %q", got)
	}
	for _, c := range *calls {
		if c[0] != "apk" || c[1] != "--root" || c[2] != a.Root {
			t.Errorf("command %v does not target the root", c)
		}
	}
	n := len(*calls)
	for _, bad := range []Target{{"libcrypto3", "3.3.3-r0;reboot"}, {"-libcrypto3", "1.0-r0"}, {"a b", "1"}} {
		if _, err := a.Install(ctx, []Target{bad}, InstallOptions{}); err == nil || !strings.Contains(err.Error(), "not a valid apk") {
			t.Errorf("%v: %v", bad, err)
		}
	}
	if len(*calls) != n {
		t.Error("a command ran for an invalid target")
	}
	if _, err := ParseAPKInstalled(strings.NewReader("P:x\nbroken line\n"), "installed"); err == nil || !strings.Contains(err.Error(), "installed:2") {
		t.Errorf("bad database: %v", err)
	}
}
