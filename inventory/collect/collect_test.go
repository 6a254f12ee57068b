package collect

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/patch"
)

func key(p inventory.Package) string {
	return p.Ecosystem + " " + p.Name + " " + p.Version + " " + filepath.Base(p.Location)
}

func TestCollectApplicationFiles(t *testing.T) {
	res, err := Collect(context.Background(), Options{Paths: []string{"testdata/apps", "testdata/sbom"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Skipped) > 0 {
		t.Errorf("skipped: %v", res.Skipped)
	}
	got := map[string]inventory.Package{}
	for _, p := range res.Packages {
		got[key(p)] = p
	}
	want := []string{
		"npm lodash 4.17.20 package-lock.json",
		"npm @babel/traverse 7.23.0 package-lock.json",
		"npm minimist 1.2.5 yarn.lock",
		"npm semver 7.5.1 pnpm-lock.yaml",
		"crates.io smallvec 1.6.0 Cargo.lock",
		"RubyGems rack 2.2.3 Gemfile.lock",
		"Packagist guzzlehttp/guzzle 7.4.0 composer.lock",
		"Maven org.apache.logging.log4j:log4j-core 2.14.1 pom.xml",
		"Maven com.fasterxml.jackson.core:jackson-databind 2.9.10 gradle.lockfile",
		"NuGet Newtonsoft.Json 12.0.1 packages.lock.json",
		"PyPI requests 2.25.0 poetry.lock",
		"PyPI django 3.2.0 Pipfile.lock",
		"PyPI idna 3.6 uv.lock",
		"PyPI Jinja2 3.1.2 METADATA",
		"PyPI Flask 0.12 requirements-prod.txt",
		"PyPI pyyaml 5.3 requirements-prod.txt",
		"Go golang.org/x/text 0.3.7 go.mod",
		"Go stdlib 1.21.0 go.mod",
		"PyPI flask 0.12 app.cdx.json",
		"Go golang.org/x/net 0.7.0 app.cdx.json",
		"npm lodash 4.17.20 app.cdx.json",
		"RubyGems rack 2.2.3 app.spdx.json",
	}
	for _, w := range want {
		p, ok := got[w]
		if !ok {
			t.Errorf("missing %q", w)
			continue
		}
		if !strings.HasPrefix(p.Location, "testdata/") {
			t.Errorf("%s: location %q is not the file's path", w, p.Location)
		}
	}
	if len(got) != len(want) {
		for k := range got {
			t.Logf("got %q", k)
		}
		t.Errorf("%d packages, want %d", len(got), len(want))
	}
	// Line numbers where the extractor knows them.
	if p := got["PyPI pyyaml 5.3 requirements-prod.txt"]; p.Line != 2 {
		t.Errorf("pyyaml line %d, want 2", p.Line)
	}
	for _, p := range res.Packages {
		if p.Cycle() != patch.CycleApplication {
			t.Errorf("%s: cycle %s", p, p.Cycle())
		}
	}
}

func TestCollectGoBinary(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go toolchain to build a binary with")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/hello\n\ngo 1.21\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() { println(\"hi\") }\n"), 0o644)
	bin := filepath.Join(dir, "bin", "hello")
	cmd := exec.Command(gobin, "build", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "CGO_ENABLED=0", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	res, err := Collect(context.Background(), Options{Paths: []string{filepath.Join(dir, "bin")}})
	if err != nil {
		t.Fatal(err)
	}
	want := "Go stdlib " + strings.TrimPrefix(runtime.Version(), "go") + " hello"
	found := false
	for _, p := range res.Packages {
		if key(p) == want {
			found = true
		}
	}
	if !found {
		t.Errorf("no %q in %+v", want, res.Packages)
	}
}

func TestCollectDpkgRootWithSourcePackages(t *testing.T) {
	status := filepath.Join(sharedtest.Dir(t, "fixtures/dpkg"), "status-bookworm-web-db")
	root := sharedtest.DebianRoot(t, "status-bookworm-web-db")
	data, err := os.ReadFile(status)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Collect(context.Background(), Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if res.Distro == nil || res.Distro.Ecosystem != "Debian:12" {
		t.Fatalf("distro %+v", res.Distro)
	}
	if n := strings.Count(string(data), "Status: install ok installed"); len(res.Packages) != n {
		t.Errorf("%d packages, the status file has %d installed", len(res.Packages), n)
	}
	byName := map[string]inventory.Package{}
	for _, p := range res.Packages {
		byName[p.Name] = p
		if p.Ecosystem != "Debian:12" || p.Cycle() != patch.CycleSystem || p.Location != filepath.Join(root, "var/lib/dpkg/status") {
			t.Errorf("%s: ecosystem %s cycle %s location %s", p.Name, p.Ecosystem, p.Cycle(), p.Location)
		}
	}
	// libssl3 is built from openssl: advisories name the source.
	if p := byName["libssl3"]; p.SourceName != "openssl" || p.MatchName() != "openssl" || p.MatchVersion() != p.Version {
		t.Errorf("libssl3: %+v", p)
	}
	// A binary whose Source: field carries its own version.
	for _, p := range res.Packages {
		if p.SourceVersion != p.Version {
			if p.MatchVersion() != p.SourceVersion {
				t.Errorf("%s: match version %s, source version %s", p.Name, p.MatchVersion(), p.SourceVersion)
			}
			return
		}
	}
	t.Error("no package with a source version of its own in the fixture")
}

func TestCollectAlpineRoot(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "lib/apk/db"), 0o755)
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME=\"Alpine Linux v3.20\"\n"), 0o644)
	// Real entries of an Alpine 3.20 installed database.
	installed := `C:Q1Ek3ZL0hNH0nRdm3AqgdjqOIqmwo=
P:libcrypto3
V:3.3.2-r0
A:x86_64
S:1696234
I:4796416
T:Crypto library from openssl
U:https://www.openssl.org/
L:Apache-2.0
o:openssl
m:Ariadne Conill <ariadne@dereferenced.org>
t:1725458389
c:7d3b5bde5f9f8d0c10a7a4b8e1d3b8c4ea1d8e9b

C:Q1hQ3n5X8o5u3y5o1h5m8n0u2b6kF0E=
P:musl
V:1.2.5-r0
A:x86_64
o:musl
`
	os.WriteFile(filepath.Join(root, "lib/apk/db/installed"), []byte(installed), 0o644)
	res, err := Collect(context.Background(), Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]inventory.Package{}
	for _, p := range res.Packages {
		got[p.Name] = p
	}
	if p := got["libcrypto3"]; p.Ecosystem != "Alpine:v3.20" || p.Version != "3.3.2-r0" || p.MatchName() != "openssl" {
		t.Errorf("libcrypto3: %+v", p)
	}
	if p := got["musl"]; p.Version != "1.2.5-r0" {
		t.Errorf("musl: %+v", p)
	}
}

func TestCollectErrors(t *testing.T) {
	if _, err := Collect(context.Background(), Options{Paths: []string{"testdata/does-not-exist"}}); err == nil || !strings.Contains(err.Error(), "testdata/does-not-exist") {
		t.Errorf("missing path: %v", err)
	}
	if _, err := Collect(context.Background(), Options{Root: "testdata/apps/go.mod"}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("root is a file: %v", err)
	}
	// An explicitly named file nobody can read is reported, not ignored.
	res, err := Collect(context.Background(), Options{Paths: []string{"collect.go"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Skipped) != 1 || res.Skipped[0].Path != "collect.go" || !strings.Contains(res.Skipped[0].Reason, "not a recognised") {
		t.Errorf("skipped %+v", res.Skipped)
	}
	// An explicitly named *.txt is read as a requirements file.
	dir := t.TempDir()
	p := filepath.Join(dir, "dev.txt")
	os.WriteFile(p, []byte("pytest==7.0.0\n"), 0o644)
	res, err = Collect(context.Background(), Options{Paths: []string{p}})
	if err != nil || len(res.Packages) != 1 || res.Packages[0].Name != "pytest" {
		t.Errorf("dev.txt: %+v %v", res, err)
	}
}

// TestCollectRPMRoot builds a real noarch RPM with rpmbuild, records it in
// a fresh rpm database under a root (rpm --justdb) and reads it back.
func TestCollectRPMRoot(t *testing.T) {
	rpm := sharedtest.Tool(t, "rpm", "apt-get install rpm: builds the RPM database of the test root")
	rpmbuild := sharedtest.Tool(t, "rpmbuild", "apt-get install rpm")
	top, root := t.TempDir(), t.TempDir()
	spec := filepath.Join(top, "hello.spec")
	os.WriteFile(spec, []byte("Name: patchbay-hello\nVersion: 1.2.3\nRelease: 4\nEpoch: 1\nSummary: test\nLicense: MIT\nBuildArch: noarch\n%description\ntest\n%files\n"), 0o644)
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), "HOME="+top)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	run(rpmbuild, "--define", "_topdir "+top, "-bb", spec)
	pkgs, _ := filepath.Glob(filepath.Join(top, "RPMS/noarch/*.rpm"))
	if len(pkgs) != 1 {
		t.Fatalf("rpmbuild made %v", pkgs)
	}
	run(rpm, "--root", root, "--dbpath", "/var/lib/rpm", "--initdb")
	run(rpm, "--root", root, "--dbpath", "/var/lib/rpm", "-i", "--nodeps", "--justdb", pkgs[0])
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("ID=\"rocky\"\nVERSION_ID=\"9.3\"\nPRETTY_NAME=\"Rocky Linux 9.3 (Blue Onyx)\"\n"), 0o644)
	res, err := Collect(context.Background(), Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Skipped) > 0 || len(res.Packages) != 1 {
		t.Fatalf("packages %+v skipped %v", res.Packages, res.Skipped)
	}
	p := res.Packages[0]
	if p.Ecosystem != "Rocky Linux:9" || p.Name != "patchbay-hello" || p.Version != "1:1.2.3-4" || p.SourceName != "patchbay-hello-1.2.3-4" || p.Cycle() != patch.CycleSystem {
		t.Errorf("%+v", p)
	}
}
