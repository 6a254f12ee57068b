// Package kinds is the one list of the document kinds patchbay knows, as
// osv-scalibr's extractor/filesystem/list names its extractors: the
// composition roots (the CLI, the server, the stores) take their parser
// from here, and a new kind is added here, in one visible place.
package kinds

import (
	"github.com/patchbay/patchbay/policy"
	"github.com/patchbay/patchbay/rollout"
	"github.com/patchbay/patchbay/scorecard"
)

// All are every kind: the policy documents (Team, Service, HostGroup,
// Policy, Exception) and the rollout documents (MaintenanceWindow,
// ApprovalRule, RolloutStrategy, PatchPlan, PatchSchedule) and the scorecard
// documents (Scorecard, Initiative).
func All() policy.Kinds {
	return policy.NewKinds(
		policy.OwnKinds(),
		rollout.Kinds(),
		scorecard.Kinds(),
	)
}
