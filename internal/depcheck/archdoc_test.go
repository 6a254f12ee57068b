package depcheck

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// archDoc is the document whose package table TestArchitectureDoc checks.
const archDoc = "../../docs/architecture.md"

// undocumented are the packages of the module the table leaves out:
// helpers of the tests and this check, not parts of patchbay.
var undocumented = []string{
	"internal/debroot",     // debootstraps Debian roots for the e2e tests
	"internal/depcheck",    // this check
	"internal/pgtest",      // a PostgreSQL database per test
	"internal/sharedtest",  // the shared test data (the doc's prose names it)
	"internal/rollouttest", // the rollout policy documents the tests and bench/rollout share
	"internal/jsontest",    // checks of JSON documents the tests of cli and server share
	"internal/gittest",     // bare repositories over git daemon for the tests of forge, server and web
	"feeds/nvd/nvdtest",    // a loopback NVD CVE API for the tests of feeds, feeds/nvd and cli
	"internal/promtest",    // real Prometheus and Alertmanager processes and exporters for the gates' tests
}

// archRow is one row of the table: the package it is about, and the
// backticked names in its "imports" column.
type archRow struct {
	line    int
	pkg     string
	imports []string
}

var backticked = regexp.MustCompile("`([^`]+)`")

// parseArchTable reads the table whose header has a "package" and an
// "imports" column. Each row names one package, in backticks, in the
// "package" column.
func parseArchTable(doc string) ([]archRow, error) {
	var rows []archRow
	pkgCol, impCol := -1, -1
	inTable := false
	for i, line := range strings.Split(doc, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break
			}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for j := range cells {
			cells[j] = strings.TrimSpace(cells[j])
		}
		if !inTable {
			if p, q := slices.Index(cells, "package"), slices.Index(cells, "imports"); p >= 0 && q >= 0 {
				pkgCol, impCol, inTable = p, q, true
			}
			continue
		}
		if strings.Trim(strings.Join(cells, ""), "-: ") == "" {
			continue // the delimiter row
		}
		if len(cells) <= max(pkgCol, impCol) {
			return nil, fmt.Errorf("line %d: %d cells, want at least %d", i+1, len(cells), max(pkgCol, impCol)+1)
		}
		m := backticked.FindAllStringSubmatch(cells[pkgCol], -1)
		if len(m) != 1 || strings.Trim(cells[pkgCol], "` ") != m[0][1] {
			return nil, fmt.Errorf("line %d: the package column %q names one package in backticks, nothing else", i+1, cells[pkgCol])
		}
		r := archRow{line: i + 1, pkg: m[0][1]}
		for _, m := range backticked.FindAllStringSubmatch(cells[impCol], -1) {
			r.imports = append(r.imports, m[1])
		}
		rows = append(rows, r)
	}
	if !inTable {
		return nil, fmt.Errorf("no table with a package and an imports column")
	}
	return rows, nil
}

// TestArchitectureDoc keeps the package table of docs/architecture.md
// true: every package of the module has a row (but the helpers in
// undocumented), and the patchbay packages a row's "imports" column names
// in backticks are exactly those its package imports (non-test files).
// Standard-library packages may be named in backticks too and are not
// checked; third-party modules are named in plain text.
func TestArchitectureDoc(t *testing.T) {
	const mod = "github.com/patchbay/patchbay/"
	b, err := os.ReadFile(archDoc)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := parseArchTable(string(b))
	if err != nil {
		t.Fatalf("%s: %v", archDoc, err)
	}
	// One go list for the module: each package's path, then its imports.
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", mod+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []string
	imports := map[string][]string{} // package → the patchbay packages it imports
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], mod)
		pkgs = append(pkgs, pkg)
		imports[pkg] = []string{}
		for _, imp := range f[1:] {
			if name, ours := strings.CutPrefix(imp, mod); ours {
				imports[pkg] = append(imports[pkg], name)
			}
		}
		slices.Sort(imports[pkg])
	}
	if len(pkgs) < 30 {
		t.Fatalf("go list found %d packages; the check saw nothing", len(pkgs))
	}
	std := map[string]bool{}
	for _, p := range goList(t, "{{.ImportPath}}", "std", false) {
		std[p] = true
	}
	seen := map[string]int{}
	for _, r := range rows {
		where := fmt.Sprintf("%s:%d: %s", archDoc, r.line, r.pkg)
		if l, dup := seen[r.pkg]; dup {
			t.Errorf("%s: a second row (the first is line %d)", where, l)
			continue
		}
		seen[r.pkg] = r.line
		var named []string
		for _, n := range r.imports {
			switch {
			case slices.Contains(pkgs, n):
				named = append(named, n)
			case !std[n]:
				t.Errorf("%s: imports names `%s`, neither a package of the module nor of the standard library (name third-party modules in plain text)", where, n)
			}
		}
		slices.Sort(named)
		if !slices.Contains(pkgs, r.pkg) {
			// A directory of the repository without Go code (deploy).
			if fi, err := os.Stat(filepath.Join("../..", r.pkg)); err != nil || !fi.IsDir() {
				t.Errorf("%s: no such package in the module", where)
			} else if len(named) > 0 {
				t.Errorf("%s: not a Go package, yet imports names %v", where, named)
			}
			continue
		}
		if !slices.Equal(named, imports[r.pkg]) {
			t.Errorf("%s: imports names %s; the package imports %s", where, list(named), list(imports[r.pkg]))
		}
	}
	for _, p := range pkgs {
		if _, ok := seen[p]; !ok && !slices.Contains(undocumented, p) {
			t.Errorf("%s: package %s has no row (or add it to undocumented, if it is a helper of the tests)", archDoc, p)
		}
	}
	for _, p := range undocumented {
		if !slices.Contains(pkgs, p) {
			t.Errorf("undocumented lists %s, which is no package of the module", p)
		}
	}
}

// list is names as the table writes them: `a`, `b` (— for none).
func list(names []string) string {
	if len(names) == 0 {
		return "—"
	}
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = "`" + n + "`"
	}
	return strings.Join(q, ", ")
}
