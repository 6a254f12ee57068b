// Package depcheck holds the test that keeps the domain packages free of
// storage and HTTP: they may not import database/sql or net/http
// themselves, nor depend on patchbay's adapters (store, cli), which depend on
// them instead. (osv-scalibr's extractors, used by inventory, bring their
// own dependencies; those are theirs, not patchbay's domain code.) It also
// keeps the leaves leaves, what job, api and the agent reach in check, and
// the package table of docs/architecture.md true.
package depcheck

import (
	"os/exec"
	"strings"
	"testing"
)

func goList(t *testing.T, format, pkg string, deps bool) []string {
	t.Helper()
	args := []string{"list", "-f", format}
	if deps {
		args = append(args, "-deps")
	}
	out, err := exec.Command("go", append(args, pkg)...).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	return strings.Fields(strings.NewReplacer("[", " ", "]", " ").Replace(string(out)))
}

func TestDomainPackagesStayPure(t *testing.T) {
	const mod = "github.com/patchbay/patchbay/"
	for _, pkg := range []string{"inventory", "advisory", "match", "risk", "scan", "report", "patch", "audit", "auth", "leader", "fleet", "policy", "rollout", "job", "duration", "kpi", "report/monthly"} {
		for _, imp := range goList(t, "{{.Imports}}", mod+pkg, false) {
			if imp == "database/sql" || imp == "net/http" || strings.HasPrefix(imp, "modernc.org/") || strings.HasPrefix(imp, "github.com/jackc/") {
				t.Errorf("%s imports %s: domain packages hold no SQL and no HTTP", pkg, imp)
			}
		}
		for _, dep := range goList(t, "{{.ImportPath}}", mod+pkg, true) {
			for _, adapter := range []string{mod + "store", mod + "cli", mod + "feeds", mod + "server", mod + "api", mod + "agent"} {
				if dep == adapter || strings.HasPrefix(dep, adapter+"/") {
					t.Errorf("%s depends on the adapter %s", pkg, dep)
				}
			}
		}
	}
}
