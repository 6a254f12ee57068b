package kinds_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/kinds"
	"github.com/patchbay/patchbay/policy"
)

func TestAllKinds(t *testing.T) {
	want := []string{"ApprovalRule", "Exception", "HostGroup", "Initiative", "MaintenanceWindow", "PatchPlan", "PatchSchedule", "Policy", "RolloutStrategy", "Scorecard", "Service", "Team"}
	if got := kinds.All().Names(); !slices.Equal(got, want) {
		t.Fatalf("kinds = %v, want %v", got, want)
	}
	for in, want := range map[string]string{"services": "Service", "rolloutstrategy": "RolloutStrategy", "maintenancewindows": "MaintenanceWindow", "patchplan": "PatchPlan", "patchschedules": "PatchSchedule",
		"policies": "Policy", "Policies": "Policy", "policy": "Policy", "rolloutstrategies": "RolloutStrategy", "hostgroups": "HostGroup"} {
		if got, err := kinds.All().Canonical(in); err != nil || got != want {
			t.Errorf("Canonical(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := kinds.All().Canonical("widget"); err == nil || !strings.Contains(err.Error(), "want one of ApprovalRule, Exception") {
		t.Errorf("unknown kind: %v", err)
	}
}

// The example repository holds documents of the policy and rollout kinds;
// every one parses with the one list, and a parser of the policy kinds
// alone refuses the rollout documents by name.
func TestExampleParsesWithAllKinds(t *testing.T) {
	files, err := policy.CollectFiles([]string{filepath.Join("..", "docs", "policy-example")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := kinds.All().ParseFiles(files)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, d := range docs {
		seen[d.Kind] = true
	}
	if !seen["Team"] || !seen["Service"] || !seen["PatchSchedule"] {
		t.Fatalf("kinds parsed: %v", seen)
	}
	doc := []byte("apiVersion: patchbay/v1\nkind: MaintenanceWindow\nmetadata: {name: w}\nspec: {}\n")
	if _, err := policy.NewKinds(policy.OwnKinds()).Parse("w.yaml", doc); err == nil || !strings.Contains(err.Error(), `w.yaml:2:7: kind: unknown kind "MaintenanceWindow"`) {
		t.Errorf("policy kinds alone: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("a kind given twice did not panic")
		}
	}()
	policy.NewKinds(policy.OwnKinds(), policy.OwnKinds())
}
