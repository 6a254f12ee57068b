// Package api holds the wire types of patchbay's HTTP API (/api/v1) and a
// client for it, shared by the server, the agent and the CLI.
package api

import (
	"encoding/json"
	"time"

	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/policy"
	"github.com/patchbay/patchbay/rollout"
	"github.com/patchbay/patchbay/scan"
)

// Prefix is the API's path prefix.
const Prefix = "/api/v1"

// Error is every error response: a message naming the problem, a stable
// code, and the request field at fault when there is one.
type Error struct {
	Error string `json:"error"`
	Code  string `json:"code"`
	Field string `json:"field,omitempty"`
	// Problems are every problem of invalid policy documents, each with
	// its file, line, column and field path.
	Problems []*policy.FieldError `json:"problems,omitempty"`
}

// Error codes.
const (
	CodeBadRequest        = "bad_request"
	CodeUnauthorized      = "unauthorized"
	CodeForbidden         = "forbidden"
	CodeNotFound          = "not_found"
	CodeTooLarge          = "too_large"
	CodeInventoryRequired = "inventory_required" // send the full inventory
	CodeUpdatesRequired   = "updates_required"   // send the full update list
	CodeMachineMismatch   = "machine_mismatch"   // a credential used by another machine
	CodeInvalidPolicy     = "invalid_policy"     // see problems
	CodeConflict          = "conflict"
	CodeStale             = "stale" // a job report of an attempt that is not the current one
	CodeInternal          = "internal"
	CodeUnavailable       = "unavailable"
)

// EnrollRequest is sent with an enrollment token.
type EnrollRequest struct {
	Facts fleet.Facts `json:"facts"`
}

// EnrollResponse carries the host's credential, shown once.
type EnrollResponse struct {
	HostID     string `json:"host_id"`
	Credential string `json:"credential"`
	// CloneOf names another host with the same machine-id: this host is
	// flagged as a clone.
	CloneOf string `json:"clone_of,omitempty"`
	// JobKey is the server's Ed25519 public key (base64): the agent runs
	// only jobs it signed.
	JobKey string `json:"job_key"`
}

// Report is what an agent sends at a check-in. Inventory and Updates are
// nil when the agent believes the server has them (their hashes match
// what it last sent); the server answers 409 with CodeInventoryRequired or
// CodeUpdatesRequired when it does not.
type Report struct {
	// CollectedAt is when the agent looked: a report kept on disk while
	// the server was unreachable is applied at this time (never later
	// than its arrival, never earlier than the host's last report).
	CollectedAt   time.Time            `json:"collected_at"`
	Facts         fleet.Facts          `json:"facts"`
	InventoryHash string               `json:"inventory_hash"`
	Inventory     *[]inventory.Package `json:"inventory,omitempty"`
	UpdatesHash   string               `json:"updates_hash"`
	Updates       *[]scan.Update       `json:"updates,omitempty"`
}

// CheckinResponse says what the server did with a report.
type CheckinResponse struct {
	HostID string `json:"host_id"`
	// Inventory is "unchanged" or "stored"; Updates likewise.
	Inventory string `json:"inventory"`
	Updates   string `json:"updates"`
	// Open is the number of open findings; Opened and Closed what this
	// report changed.
	Open   int `json:"open"`
	Opened int `json:"opened"`
	Closed int `json:"closed"`
	// NextCheckinSeconds is the interval the server asks for.
	NextCheckinSeconds int `json:"next_checkin_seconds"`
}

// TokenRequest creates a token.
type TokenRequest struct {
	// Kind is "api" (default) or "enrollment".
	Kind auth.Kind `json:"kind"`
	Role auth.Role `json:"role"`
	Name string    `json:"name"`
	// TTLSeconds is the token's lifetime; 0 never expires (enrollment
	// tokens default to 24 hours).
	TTLSeconds int64 `json:"ttl_seconds"`
	// Uses limits an enrollment token's enrollments (-1 unlimited).
	Uses int `json:"uses"`
}

// TokenResponse carries a new token's secret, shown once.
type TokenResponse struct {
	Token  auth.Token `json:"token"`
	Secret string     `json:"secret"`
}

// Labels replaces the labels set on the server for a host.
type Labels struct {
	Labels map[string]string `json:"labels"`
}

// HostList is the hosts list.
type HostList struct {
	Hosts []fleet.HostSummary `json:"hosts"`
}

// VulnList is the vulnerabilities list.
type VulnList struct {
	Vulnerabilities []fleet.Vulnerability `json:"vulnerabilities"`
}

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
}

// ServiceInventory is an application inventory uploaded for a service
// (from CI: patchbay scan --upload --service NAME).
type ServiceInventory struct {
	Packages []inventory.Package `json:"packages"`
}

// ServiceInventoryResponse says what the upload changed.
type ServiceInventoryResponse struct {
	Service  string `json:"service"`
	HostID   string `json:"asset_id"`
	Packages int    `json:"packages"`
	Open     int    `json:"open"`
	Opened   int    `json:"opened"`
	Closed   int    `json:"closed"`
}

// Whoami describes the calling credential.
type Whoami struct {
	Token auth.Token `json:"token"`
}

// PlanStatus is a plan, its rollout once started, the rollout's progress
// per ring and, when asked for, every host's job.
type PlanStatus struct {
	Plan    *rollout.Plan        `json:"plan"`
	Rollout *rollout.Machine     `json:"rollout,omitempty"`
	Rings   []RingStatus         `json:"rings,omitempty"`
	Hosts   []rollout.HostStatus `json:"hosts,omitempty"`
}

// RingStatus counts a ring's jobs.
type RingStatus struct {
	Name     string                  `json:"name"`
	Hosts    int                     `json:"hosts"`
	Pending  int                     `json:"pending"`
	InFlight int                     `json:"in_flight"`
	Outcomes map[rollout.Outcome]int `json:"outcomes"`
}

// JobsResponse is the answer to an agent's poll for jobs.
type JobsResponse struct {
	Jobs []job.Signed `json:"jobs"`
}
