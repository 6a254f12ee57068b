package match

// Differential tests of version ordering against the real tools: dpkg for
// Debian, Python's packaging (Debian's python3-packaging) for PEP 440 and
// the npm semver package for SemVer. Versions are real ones, drawn from the
// shared dpkg fixtures, apt's package lists and the shared advisory feeds.

import (
	"archive/zip"
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/osv-scalibr/semantic"

	"github.com/patchbay/patchbay/advisory"
	"github.com/patchbay/patchbay/internal/sharedtest"
)

// feedVersions returns every version string named in an OSV all.zip.
func feedVersions(t *testing.T, zipPath string) []string {
	t.Helper()
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	set := map[string]bool{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		a, err := advisory.ParseOSV(data)
		if err != nil {
			continue
		}
		for _, af := range a.Affected {
			for _, v := range af.Versions {
				set[v] = true
			}
			for _, r := range af.Ranges {
				for _, e := range r.Events {
					for _, v := range []string{e.Introduced, e.Fixed, e.LastAffected} {
						if v != "" && v != "0" {
							set[v] = true
						}
					}
				}
			}
		}
	}
	return sortedKeys(set)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// pairs draws n pairs: neighbours in sorted order (same package, close
// versions: the informative cases) and random pairs, deterministically.
func pairs(vs []string, n int) [][2]string {
	r := rand.New(rand.NewSource(1))
	var out [][2]string
	for i := 0; i+1 < len(vs) && len(out) < n/2; i++ {
		out = append(out, [2]string{vs[i], vs[i+1]})
	}
	for len(out) < n {
		a, b := vs[r.Intn(len(vs))], vs[r.Intn(len(vs))]
		out = append(out, [2]string{a, b})
	}
	return out
}

// Hand-picked edge cases of each scheme, compared pairwise in addition to
// the real versions.
var (
	pep440Edges = []string{"1.0", "1.0.0", "1.0+local", "1.0+local.2", "1.0+Local.10", "1.0.post1", "1.0-1", "1.0_1",
		"1.0.dev1", "1.0a1", "1.0A1", "1.0alpha1", "1.0rc1", "1.0c1", "1.0.RC1", "1!0.5", "1.0.post1.dev1",
		"1.0a1.post1", "v1.0", "1.0a", "1.0.0.0.0.1", "0.9.99999999999999999999", "1.0.dev", "1.0-post-1"}
	semverEdges = []string{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
		"1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.0+build.1", "1.0.0+build.2", "1.0.0-0", "1.0.0-1", "1.0.0-a1",
		"1.0.0-A1", "1.0.0-10", "1.0.0-9", "1.0.0-x.7.z.92", "2.0.0", "10.0.0", "1.10.0", "1.2.3-00a"}
)

func allPairs(vs []string) [][2]string {
	var out [][2]string
	for _, a := range vs {
		for _, b := range vs {
			out = append(out, [2]string{a, b})
		}
	}
	return out
}

type disagreement struct {
	a, b      string
	got, want int
}

func compareAll(t *testing.T, eco string, ps [][2]string, oracle []int) []disagreement {
	t.Helper()
	var bad []disagreement
	rejected := 0
	defer func() { t.Logf("%d pairs skipped: the oracle rejects a version as invalid", rejected) }()
	for i, p := range ps {
		if oracle[i] == 99 {
			rejected++
			continue
		}
		got, err := Compare(eco, p[0], p[1])
		if err != nil {
			t.Errorf("Compare(%s, %q, %q): %v", eco, p[0], p[1], err)
			continue
		}
		if got != oracle[i] {
			bad = append(bad, disagreement{p[0], p[1], got, oracle[i]})
		}
	}
	return bad
}

func report(t *testing.T, tool string, bad []disagreement, total int) {
	t.Helper()
	for i, d := range bad {
		if i == 20 {
			t.Errorf("… and %d more", len(bad)-20)
			break
		}
		t.Errorf("%s says compare(%q, %q) = %d, patchbay says %d", tool, d.a, d.b, d.want, d.got)
	}
	t.Logf("%d pairs compared with %s, %d disagreements", total, tool, len(bad))
}

func TestDebianVersionsAgainstDpkg(t *testing.T) {
	dpkg := sharedtest.Tool(t, "dpkg", "the reference for Debian version ordering")
	set := map[string]bool{}
	fixtures, err := filepath.Glob(filepath.Join(sharedtest.Dir(t, "fixtures/dpkg"), "status-*"))
	if err != nil || len(fixtures) == 0 {
		t.Fatalf("no dpkg fixtures: %v", err)
	}
	for _, f := range fixtures {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "Version: "); ok {
				set[v] = true
			}
			if src, ok := strings.CutPrefix(line, "Source: "); ok {
				if _, v, ok := strings.Cut(src, " ("); ok {
					set[strings.TrimSuffix(v, ")")] = true
				}
			}
		}
	}
	for _, v := range feedVersions(t, filepath.Join(sharedtest.Dir(t, "feeds/osv/Debian"), "all.zip")) {
		set[v] = true
	}
	// apt's lists, when apt-get update has run, add tens of thousands more.
	if out, err := exec.Command("apt-cache", "dumpavail").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(line, "Version: "); ok {
				set[v] = true
			}
		}
	}
	vs := sortedKeys(set)
	t.Logf("%d distinct real Debian versions", len(vs))
	ps := pairs(vs, 12000)
	mustHave := map[string]bool{"epoch": false, "tilde": false, "debNuM": false, "binNMU": false}
	for _, p := range ps {
		for _, v := range p {
			mustHave["epoch"] = mustHave["epoch"] || strings.Contains(v, ":")
			mustHave["tilde"] = mustHave["tilde"] || strings.Contains(v, "~")
			mustHave["debNuM"] = mustHave["debNuM"] || strings.Contains(v, "+deb12u")
			mustHave["binNMU"] = mustHave["binNMU"] || strings.Contains(v, "+b")
		}
	}
	for k, ok := range mustHave {
		if !ok {
			t.Errorf("no %s version among the pairs", k)
		}
	}
	oracle := make([]int, len(ps))
	var wg sync.WaitGroup
	workers := 4
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(ps); i += workers {
				oracle[i] = dpkgCompare(t, dpkg, ps[i][0], ps[i][1])
			}
		}()
	}
	wg.Wait()
	report(t, "dpkg --compare-versions", compareAll(t, "Debian:12", ps, oracle), len(ps))
}

func dpkgCompare(t *testing.T, dpkg, a, b string) int {
	if a == b {
		return 0
	}
	run := func(op string) bool {
		err := exec.Command(dpkg, "--compare-versions", a, op, b).Run()
		if err == nil {
			return true
		}
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
			return false
		}
		t.Errorf("dpkg --compare-versions %q %s %q: %v", a, op, b, err)
		return false
	}
	switch {
	case run("lt"):
		return -1
	case run("gt"):
		return 1
	}
	return 0
}

// runOracle feeds "a\tb" lines to a program and reads one integer per line
// ("E" for a version the oracle rejects, returned as 99).
func runOracle(t *testing.T, cmd *exec.Cmd, ps [][2]string) []int {
	t.Helper()
	var in bytes.Buffer
	for _, p := range ps {
		fmt.Fprintf(&in, "%s\t%s\n", p[0], p[1])
	}
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd.Path, err, stderr.String())
	}
	var res []int
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if sc.Text() == "E" {
			res = append(res, 99)
			continue
		}
		n, err := strconv.Atoi(sc.Text())
		if err != nil {
			t.Fatalf("oracle output %q", sc.Text())
		}
		res = append(res, n)
	}
	if len(res) != len(ps) {
		t.Fatalf("oracle answered %d of %d pairs", len(res), len(ps))
	}
	return res
}

const pep440Oracle = `
import sys
from packaging.version import Version, InvalidVersion
for line in sys.stdin:
    a, b = line.rstrip("\n").split("\t")
    try:
        va, vb = Version(a), Version(b)
    except InvalidVersion:
        print("E"); continue
    print(-1 if va < vb else (1 if va > vb else 0))
`

func TestPyPIVersionsAgainstPackaging(t *testing.T) {
	py := "/usr/bin/python3" // Debian's interpreter, with Debian's python3-packaging
	if _, err := os.Stat(py); err != nil {
		sharedtest.Missing(t, "/usr/bin/python3 is not installed (apt-get install python3-packaging)")
	}
	if err := exec.Command(py, "-c", "import packaging.version").Run(); err != nil {
		sharedtest.Missing(t, "python3-packaging is not installed (apt-get install python3-packaging)")
	}
	vs := feedVersions(t, filepath.Join(sharedtest.Dir(t, "feeds/osv/PyPI"), "all.zip"))
	t.Logf("%d distinct real PyPI versions", len(vs))
	ps := append(pairs(vs, 12000), allPairs(pep440Edges)...)
	oracle := runOracle(t, exec.Command(py, "-c", pep440Oracle), ps)
	bad := compareAll(t, "PyPI", ps, oracle)
	report(t, "python packaging", bad, len(ps))
}

const semverOracle = `
const semver = require("semver");
const lines = require("fs").readFileSync(0, "utf8").split("\n");
const out = [];
for (const line of lines) {
  if (!line) continue;
  const [a, b] = line.split("\t");
  if (!semver.valid(a) || !semver.valid(b)) { out.push("E"); continue; }
  out.push(String(semver.compare(a, b)));
}
process.stdout.write(out.join("\n") + "\n");
`

func TestSemverAgainstNpm(t *testing.T) {
	node := sharedtest.Tool(t, "node", "the runtime of the npm semver oracle")
	cmd := exec.Command(node, "-e", `require("semver")`)
	cmd.Env = append(os.Environ(), "NODE_PATH="+nodePath())
	if err := cmd.Run(); err != nil {
		sharedtest.Missing(t, "the npm semver package is not installed (npm install --prefix ~/.cache/patchbay-oracles semver, or set NODE_PATH)")
	}
	set := map[string]bool{}
	for _, v := range feedVersions(t, filepath.Join(sharedtest.Dir(t, "feeds/osv/Go"), "all.zip")) {
		set[v] = true
	}
	vs := sortedKeys(set)
	t.Logf("%d distinct real SemVer versions", len(vs))
	ps := append(pairs(vs, 12000), allPairs(semverEdges)...)
	cmd = exec.Command(node, "-e", semverOracle)
	cmd.Env = append(os.Environ(), "NODE_PATH="+nodePath())
	oracle := runOracle(t, cmd, ps)
	bad := compareAll(t, "npm", ps, oracle)
	report(t, "npm semver", bad, len(ps))
}

func nodePath() string {
	if p := os.Getenv("NODE_PATH"); p != "" {
		return p
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "patchbay-oracles", "node_modules")
}

// TestDebianFastPathAgreesWithSemantic checks patchbay's allocation-free
// Debian comparison against osv-scalibr's semantic package on every
// neighbouring pair of the real versions.
func TestDebianFastPathAgreesWithSemantic(t *testing.T) {
	set := map[string]bool{}
	for _, v := range feedVersions(t, filepath.Join(sharedtest.Dir(t, "feeds/osv/Debian"), "all.zip")) {
		set[v] = true
	}
	fixtures, _ := filepath.Glob(filepath.Join(sharedtest.Dir(t, "fixtures/dpkg"), "status-*"))
	for _, f := range fixtures {
		data, _ := os.ReadFile(f)
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "Version: "); ok {
				set[v] = true
			}
		}
	}
	vs := sortedKeys(set)
	for _, p := range append(pairs(vs, 20000), allPairs([]string{"1.0", "1.0-0", "1:1.0", "01:1.0", "1.0~rc1", "1.0~~", "1.0+b1", "1.0a", "1.0-1~bpo1", "0:1.0", "1.0.", "1.0-"})...) {
		ours, err := Compare("Debian:12", p[0], p[1])
		if err != nil {
			t.Fatal(err)
		}
		a, _ := semantic.ParseDebianVersion(p[0])
		theirs, err := a.CompareStr(p[1])
		if err != nil {
			t.Fatal(err)
		}
		if ours != theirs {
			t.Errorf("compare(%q, %q): patchbay %d, osv-scalibr %d", p[0], p[1], ours, theirs)
		}
	}
}
