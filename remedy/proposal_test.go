package remedy_test

import (
	"testing"
	"time"

	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/remedy"
)

// TestDeploy: a fix is deployed when an inventory shows its package at the
// fixed version or later (Go's "v" and PEP 503 names included), the
// proposal when all are; an older version or another package is not.
func TestDeploy(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	p := remedy.Proposal{State: remedy.StateProposed, Fixes: []remedy.ProposedFix{
		{Ecosystem: "Go", Package: "golang.org/x/text", To: "0.39.0", Vulnerability: "CVE-2022-32149"},
		{Ecosystem: "PyPI", Package: "PyYAML", To: "5.4", Vulnerability: "CVE-2020-14343"},
	}}
	if remedy.Deploy(&p, []inventory.Package{{Ecosystem: "Go", Name: "golang.org/x/text", Version: "v0.38.0"}, {Ecosystem: "PyPI", Name: "requests", Version: "9"}}, t0) {
		t.Fatal("an older version deployed the fix")
	}
	if !remedy.Deploy(&p, []inventory.Package{{Ecosystem: "Go", Name: "golang.org/x/text", Version: "v0.40.0"}, {Ecosystem: "PyPI", Name: "pyyaml", Version: "5.3"}}, t0) {
		t.Fatal("nothing deployed")
	}
	if p.State != remedy.StateProposed || !p.Fixes[0].DeployedAt.Equal(t0) || !p.Fixes[1].DeployedAt.IsZero() {
		t.Fatalf("after the first inventory: %+v", p)
	}
	t1 := t0.Add(time.Hour)
	if !remedy.Deploy(&p, []inventory.Package{{Ecosystem: "PyPI", Name: "pyyaml", Version: "6.0"}}, t1) {
		t.Fatal("pyyaml 6.0 not deployed")
	}
	if p.State != remedy.StateDeployed || !p.DeployedAt.Equal(t1) || !p.MergedAt.Equal(t1) || !p.Fixes[0].DeployedAt.Equal(t0) {
		t.Fatalf("after the second: %+v", p)
	}
	if remedy.Deploy(&p, nil, t1) {
		t.Error("a deployed proposal changed again")
	}
}

func TestIsMajor(t *testing.T) {
	for _, c := range []struct {
		eco, a, b string
		want      bool
	}{
		{"npm", "3.10.1", "4.17.11", true},
		{"npm", "0.4.7", "0.4.9", false},
		{"npm", "0.2.4", "0.3.0", true},
		{"Go", "v0.3.7", "0.39.0", false},
		{"Go", "v1.2.3", "2.0.0", true},
		{"PyPI", "2.0.0", "2.3.8", false},
		{"PyPI", "1!2.0", "1!3.0", true},
		{"PyPI", "5.3", "6.0b1", true},
	} {
		if got := remedy.IsMajor(c.eco, c.a, c.b); got != c.want {
			t.Errorf("IsMajor(%s, %s, %s) = %v", c.eco, c.a, c.b, got)
		}
	}
}
