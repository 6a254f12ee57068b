package rollouttest_test

import (
	"fmt"
	"testing"

	"github.com/patchbay/patchbay/internal/rollouttest"
	"github.com/patchbay/patchbay/policy"
	_ "github.com/patchbay/patchbay/rollout" // registers the rollout kinds
)

func TestPolicyParses(t *testing.T) {
	docs, err := policy.Parse("rollout.yaml", []byte(rollouttest.Policy))
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, d := range docs {
		refs = append(refs, d.Ref())
	}
	want := "HostGroup/staging HostGroup/production MaintenanceWindow/nightly ApprovalRule/production-two-people RolloutStrategy/standard"
	if got := fmt.Sprint(refs); got != "["+want+"]" {
		t.Errorf("documents: %s, want [%s]", got, want)
	}
}

func TestDocuments(t *testing.T) {
	docs, err := policy.Parse("one.yaml", []byte(rollouttest.Documents("RolloutStrategy/standard", "HostGroup/production")))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || docs[0].Kind != "RolloutStrategy" || docs[0].Metadata.Name != "standard" || docs[1].Metadata.Name != "production" {
		t.Errorf("documents: %+v", docs)
	}
	defer func() {
		if recover() == nil {
			t.Error("an unknown document did not panic")
		}
	}()
	rollouttest.Documents("HostGroup/nope")
}
