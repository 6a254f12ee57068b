// Package policyapi holds the wire types of the policy endpoints
// (/api/v1/policy…) and of a finding's explanation (/api/v1/findings/{id}).
package policyapi

import (
	"encoding/json"
	"time"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/policy"
)

// PolicyFile is one file of policy documents, sent as it is on disk: the
// server parses it, so every error names the file, line and column.
type PolicyFile struct {
	Name    string `json:"name"`
	Content string `json:"content"`
}

// ApplyRequest applies documents and deletes others ("Kind/name"), all
// or nothing.
type ApplyRequest struct {
	Files  []PolicyFile `json:"files"`
	Delete []string     `json:"delete,omitempty"`
	DryRun bool         `json:"dry_run,omitempty"`
}

// ApplyResponse says what an apply changed (or would, in a dry run).
type ApplyResponse struct {
	DryRun        bool                      `json:"dry_run"`
	Changes       []policy.Change           `json:"changes"`
	Reprioritized *fleet.ReprioritizeResult `json:"reprioritized,omitempty"`
	// Pending says the findings were not all decided again within the
	// request: the leader finishes within its reconcile interval.
	Pending bool `json:"pending,omitempty"`
}

// PolicyDocument is an applied document: Document is its canonical JSON
// (kind, metadata, spec).
type PolicyDocument struct {
	Kind      string          `json:"kind"`
	Name      string          `json:"name"`
	Version   int             `json:"version"`
	AppliedAt time.Time       `json:"applied_at"`
	AppliedBy string          `json:"applied_by"`
	Document  json.RawMessage `json:"document"`
}

// PolicyList lists applied documents. Revision moves with every change;
// Decided is the revision every finding was last decided with (behind
// Revision while the leader is still deciding them again).
type PolicyList struct {
	Documents []PolicyDocument `json:"documents"`
	Revision  int64            `json:"revision"`
	Decided   int64            `json:"decided"`
}

// PolicyVersion is one version in a document's history.
type PolicyVersion struct {
	Kind      string          `json:"kind"`
	Name      string          `json:"name"`
	Version   int             `json:"version"`
	Action    string          `json:"action"`
	AppliedAt time.Time       `json:"applied_at"`
	AppliedBy string          `json:"applied_by"`
	Document  json.RawMessage `json:"document,omitempty"`
}

// PolicyHistory is the history of documents.
type PolicyHistory struct {
	Versions []PolicyVersion `json:"versions"`
}

// FindingDetail explains a finding: its asset's context, the decision the
// current policy makes and why, the vulnerability's own evidence, and every
// change of its priority or state with the cause.
type FindingDetail struct {
	Finding  fleet.Finding        `json:"finding"`
	Hostname string               `json:"hostname"`
	Context  policy.Context       `json:"context"`
	Decision policy.Decision      `json:"decision"`
	Evidence []string             `json:"evidence"`
	Aliases  []string             `json:"aliases,omitempty"`
	Summary  string               `json:"summary,omitempty"`
	History  []fleet.FindingEvent `json:"history"`
	// Fix is the state of the fix proposed for a service's finding (nil:
	// none proposed).
	Fix *FindingFix `json:"fix,omitempty"`
	// Claim is the service a host's package belongs to, by the path the
	// service claims (nil: no service claims it).
	Claim *FindingClaim `json:"claim,omitempty"`
}

// FindingClaim is the service claiming a host package's location.
type FindingClaim struct {
	Service  string `json:"service"`
	Path     string `json:"path"`
	Location string `json:"location"`
}

// FindingFix is where a finding's fix is: proposed (the merge request
// open), merged, deployed (the service's inventory shows the fixed
// version), or closed (the merge request closed unmerged).
type FindingFix struct {
	ProposalID   int64     `json:"proposal_id"`
	State        string    `json:"state"`
	Branch       string    `json:"branch"`
	To           string    `json:"to"`
	MergeRequest string    `json:"merge_request,omitempty"`
	DeployedAt   time.Time `json:"deployed_at,omitzero"`
}
