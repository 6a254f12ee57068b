package depcheck

import (
	"slices"
	"strings"
	"testing"
)

// TestLeafPackages keeps the value-type packages leaves: everything may
// import them, and they import nothing of patchbay's but each other.
func TestLeafPackages(t *testing.T) {
	const mod = "github.com/patchbay/patchbay/"
	leaves := map[string][]string{ // package → the patchbay packages it may reach
		"patch":     nil,
		"duration":  nil,
		"inventory": {"patch"},
	}
	for pkg, allowed := range leaves {
		for _, dep := range goList(t, "{{if not .Standard}}{{.ImportPath}}{{end}}", mod+pkg, true) {
			if dep == mod+pkg {
				continue
			}
			name, ours := strings.CutPrefix(dep, mod)
			if !ours || !slices.Contains(allowed, name) {
				t.Errorf("%s reaches %s: a leaf of value types reaches only the standard library and %v", pkg, dep, allowed)
			}
		}
	}
}

// TestForbiddenReach holds what a package may not reach, directly or
// through others (as tailscale's cmd/tailscaled/deps_test.go does): the
// job package — what an agent verifies and runs — and the agent stay clear
// of the planner, the policy documents, cron and YAML; the job package of
// osv-scalibr's extractors too. The agent collects inventories, so it
// reaches the extractors (and the YAML and SBOM libraries they bring)
// through inventory/collect and nothing else.
func TestForbiddenReach(t *testing.T) {
	const mod = "github.com/patchbay/patchbay/"
	planner := []string{mod + "rollout", mod + "policy", mod + "api/policyapi", mod + "api/rolloutapi", "github.com/robfig/cron"}
	yaml := []string{"go.yaml.in/yaml", "gopkg.in/yaml", "sigs.k8s.io/yaml", "github.com/CycloneDX/"}
	extractors := []string{"github.com/google/osv-scalibr/extractor/", mod + "inventory/collect"}
	rules := []struct {
		pkg       string
		forbidden []string
		// through is a package whose own dependencies are allowed.
		through string
	}{
		{"job", slices.Concat(planner, yaml, extractors), ""},
		{"api", slices.Concat(planner, yaml, extractors), ""},
		{"agent", slices.Concat(planner, yaml, extractors), "inventory/collect"},
	}
	for _, r := range rules {
		allowed := map[string]bool{}
		if r.through != "" {
			for _, dep := range goList(t, "{{.ImportPath}}", mod+r.through, true) {
				allowed[dep] = true
			}
		}
		deps := goList(t, "{{.ImportPath}}", mod+r.pkg, true)
		for _, dep := range deps {
			if allowed[dep] {
				continue
			}
			for _, f := range r.forbidden {
				if dep == f || strings.HasPrefix(dep, strings.TrimSuffix(f, "/")+"/") || (strings.HasSuffix(f, "/") && strings.HasPrefix(dep, f)) {
					t.Errorf("%s reaches %s (forbidden: %s)", r.pkg, dep, f)
				}
			}
		}
		if len(deps) < 10 {
			t.Errorf("%s: go list found %d dependencies; the check saw nothing", r.pkg, len(deps))
		}
	}
}
