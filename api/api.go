// Package api holds the wire types of patchbay's HTTP API (/api/v1) that
// agents and every client share — errors, enrollment, check-ins, jobs,
// tokens, hosts and vulnerabilities — and a client for it. The wire types
// of the policy and rollout endpoints are in api/policyapi and
// api/rolloutapi, so that an agent reaches neither the policy documents
// nor the planner.
package api

import (
	"fmt"
	"time"

	"github.com/patchbay/patchbay/advisory"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/patch"
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
	Problems []Problem `json:"problems,omitempty"`
}

// Problem is one problem of a policy document sent to the server: where
// it is, the field's path in the document and what is wrong (the wire
// form of the policy decoder's positioned errors).
type Problem struct {
	Pos     Pos    `json:"pos"`
	Path    string `json:"path"`
	Message string `json:"message"`
}

// Pos is a position in a file; Line 0 names the whole file.
type Pos struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Column int    `json:"column"`
}

// Error renders the problem as "file:line:column: path: message".
func (p Problem) Error() string {
	at := p.Pos.File
	if p.Pos.Line != 0 {
		at = fmt.Sprintf("%s:%d:%d", p.Pos.File, p.Pos.Line, p.Pos.Column)
	}
	if p.Path == "" {
		return at + ": " + p.Message
	}
	return at + ": " + p.Path + ": " + p.Message
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
	CodeAmbiguous         = "ambiguous" // a hostname several hosts share; the error names their ids
	CodeStale             = "stale"     // a job report of an attempt that is not the current one
	CodeInternal          = "internal"
	CodeUnavailable       = "unavailable"
	CodeTooManyRequests   = "too_many_requests" // one large body at a time per credential
	CodeTimeout           = "timeout"           // a request body not sent in time
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
	CollectedAt   time.Time            `json:"collected_at,omitzero"`
	Facts         fleet.Facts          `json:"facts"`
	InventoryHash string               `json:"inventory_hash"`
	Inventory     *[]inventory.Package `json:"inventory,omitempty"`
	UpdatesHash   string               `json:"updates_hash"`
	Updates       *[]patch.Update      `json:"updates,omitempty"`
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

// AuditKey is the public key the server signs audit checkpoints with.
type AuditKey struct {
	Algorithm string `json:"algorithm"`  // "ed25519"
	PublicKey string `json:"public_key"` // hex
}

// Labels replaces the labels set on the server for a host.
type Labels struct {
	Labels map[string]string `json:"labels"`
}

// HostList is the hosts list.
type HostList struct {
	Hosts []fleet.HostSummary `json:"hosts"`
	// Total is how many hosts match when a page was asked for (limit or
	// offset), of which Hosts are those after Offset; nil: Hosts is all.
	Total  *int `json:"total,omitempty"`
	Offset int  `json:"offset,omitempty"`
}

// VulnDetail is one vulnerability (GET /vulns/{id}): the fleet's view of
// it and, for a CVE, its enrichment: every CVSS score with its source (NVD,
// the CNA, ADPs), CWEs, dates and the vendors' ratings.
type VulnDetail struct {
	fleet.Vulnerability
	Enrichment *advisory.Enrichment `json:"enrichment,omitempty"`
}

// VulnList is the vulnerabilities list.
type VulnList struct {
	Vulnerabilities []fleet.Vulnerability `json:"vulnerabilities"`
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

// JobsResponse is the answer to an agent's poll for jobs.
type JobsResponse struct {
	Jobs []job.Signed `json:"jobs"`
}
