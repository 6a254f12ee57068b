// Package fixapi holds the wire types of the fix endpoints: a service's
// fix delivered to its repository, and the proposals with their states.
package fixapi

import "github.com/patchbay/patchbay/remedy"

// Request asks for a service's fix (POST /services/{name}/fixes).
type Request struct {
	// Group names the branch of a scheduled fix (one merge request per
	// service per group, updated by later fixes): "weekly" when empty.
	Group string `json:"group,omitempty"`
	// Urgent makes one branch and merge request per patch instead (the
	// most urgent upgrade's package and version).
	Urgent bool `json:"urgent,omitempty"`
	// Priority limits the fix to findings at or above it (P1..P4).
	Priority string `json:"priority,omitempty"`
	// Strategy is in-place (the default) or relax.
	Strategy string `json:"strategy,omitempty"`
	// MinAge is the release-age gate ("7d"): versions younger are not
	// proposed unless a finding they close is known exploited (KEV); each
	// bypass is in the audit entry.
	MinAge string `json:"min_age,omitempty"`
}

// Delivery is the answer: the proposal as stored, whether its merge
// request was opened now (or updated), and what was left open.
type Delivery struct {
	Proposal remedy.Proposal  `json:"proposal"`
	Created  bool             `json:"created"`
	Unfixed  []remedy.Unfixed `json:"unfixed"`
	// Nothing is set when there was nothing to fix (no branch pushed).
	Nothing string `json:"nothing,omitempty"`
}

// List is GET /fixes.
type List struct {
	Proposals []remedy.Proposal `json:"proposals"`
}
